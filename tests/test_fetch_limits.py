"""Cookies, download limits and the JavaScript runtime, with real yt-dlp against 127.0.0.1."""

import functools
import http.server
import importlib.metadata
import json
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import genre_in_process, make_audio, make_dataset

from genre_erkennung.core import fetch
from genre_erkennung.core.config import QuerySettings
from genre_erkennung.core.errors import ConfigError, FetchError
from genre_erkennung.core.events import DownloadProgress, Message
from genre_erkennung.core.workspace import Workspace

COOKIE = "session=letmein"


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files, except: /private/* answers 403 without our cookie, /stream/* sends no
    Content-Length (the size is unknown until the end), like many live servers."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/private/") and COOKIE not in (self.headers.get("Cookie") or ""):
            self.send_error(403, "Forbidden")
            return
        if self.path.startswith("/stream/"):
            data = (Path(self.directory) / self.path.removeprefix("/stream/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "audio/x-wav")
            self.end_headers()
            self.wfile.write(data)
            self.close_connection = True
            return
        super().do_GET()

    def do_HEAD(self) -> None:
        if self.path.startswith("/private/") and COOKIE not in (self.headers.get("Cookie") or ""):
            self.send_error(403, "Forbidden")
            return
        super().do_HEAD()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("limits-www")
    (root / "private").mkdir()
    make_audio(root / "private" / "members.mp3", 2.0)
    make_audio(root / "big.wav", 2.0)  # 176 kB: over a 0.1 MB limit
    make_audio(root / "long.mp3", 3.0)
    make_audio(root / "short.mp3", 1.0)
    (root / "two.html").write_text(
        '<html><title>Zwei</title><audio src="long.mp3"></audio><audio src="short.mp3"></audio></html>'
    )
    handler = functools.partial(_Handler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    for name, field in (("hours", '"duration": "PT4H"'), ("huge", '"contentSize": "5000000000"')):
        (root / f"{name}.html").write_text(  # schema.org metadata, as many music sites publish it
            '<html><head><script type="application/ld+json">'
            '{"@context": "https://schema.org", "@type": "AudioObject", "name": "Mix", '
            f'"contentUrl": "{base}/long.mp3", "encodingFormat": "mp3", {field}}}'
            "</script></head><body></body></html>"
        )
    yield base
    server.shutdown()


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where tempfile puts the private cookie copy, so a test can see it is gone after."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _cookie_file(path: Path) -> Path:
    path.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t4102444800\tsession\tletmein\n")
    path.chmod(0o444)
    return path


def _left(ws: Workspace) -> list[str]:
    return sorted(p.name for p in ws.downloads.iterdir() if p.name != "index.json")


def test_cookie_file_is_sent_and_left_unchanged(site: str, tmp_path: Path, private_tmp: Path) -> None:
    url = f"{site}/private/members.mp3"
    ws = Workspace(tmp_path / "ws").ensure()
    with pytest.raises(FetchError, match=r"HTTP Error 403.*--cookies FILE"):
        fetch.fetch(url, ws)
    cookies = _cookie_file(tmp_path / "cookies.txt")
    before = (cookies.read_bytes(), cookies.stat().st_mtime_ns)
    [got] = fetch.fetch(url, ws, query=QuerySettings(cookies=str(cookies)))
    assert got.path.is_file() and got.path.read_bytes()[:3] in (b"ID3", b"\xff\xfb")
    assert (cookies.read_bytes(), cookies.stat().st_mtime_ns) == before
    assert list(private_tmp.iterdir()) == []  # the private copy is gone


def test_query_cookies_option_end_to_end(site: str, tmp_path: Path) -> None:
    """`genre query URL --cookies FILE` against the server that wants the cookie."""
    ds = make_dataset(tmp_path / "ds", {"tief": ("sine", 220.0), "hoch": ("sine", 1760.0)}, (2, 1), 3.0)
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        "[audio]\nchunk_seconds = 1.0\nmin_chunk_seconds = 0.5\n[training]\nepochs = 1\nthreads = 1\n"
    )
    ws = tmp_path / "ws"
    common = ("--workspace", ws, "--config", cfg)
    genre_in_process("train", "--dataset", ds, "--extract", "--name", "tiny", *common, check=True)
    cookies = _cookie_file(tmp_path / "cookies.txt")
    url = f"{site}/private/members.mp3"
    refused = genre_in_process("query", url, "--json", *common)
    assert refused.returncode == 1 and "HTTP Error 403" in json.loads(refused.stdout)["errors"][0]["error"]
    proc = genre_in_process("query", url, "--cookies", cookies, "--json", *common, check=True)
    [song] = json.loads(proc.stdout)["results"]
    assert song["source"] == url and len(song["chunks"]) == 2


def test_a_cookie_file_in_json_is_one_line(site: str, tmp_path: Path) -> None:
    bad = tmp_path / "cookies.json"
    bad.write_text('[{"domain": "127.0.0.1", "name": "session", "value": "letmein"}]\n')
    ws = Workspace(tmp_path / "ws").ensure()
    with pytest.raises(FetchError, match="not in Netscape format") as info:
        fetch.fetch(f"{site}/private/members.mp3", ws, query=QuerySettings(cookies=str(bad)))
    assert "\n" not in str(info.value)
    with pytest.raises(FetchError, match=r"cookie file .*: not found"):
        fetch.fetch(f"{site}/private/members.mp3", ws, query=QuerySettings(cookies=str(tmp_path / "no")))


@pytest.mark.parametrize("path", ["big.wav", "stream/big.wav"])
def test_a_file_over_max_megabytes_is_stopped_and_removed(site: str, tmp_path: Path, path: str) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    events: list = []
    with pytest.raises(FetchError, match=r"stopped: .* over query.max_megabytes = 0.1") as info:
        fetch.fetch(f"{site}/{path}", ws, report=events.append, query=QuerySettings(max_megabytes=0.1))
    assert "\n" not in str(info.value)
    assert _left(ws) == []
    assert fetch.Downloads(ws).cached(f"{site}/{path}") is None
    # the same file under the default limit arrives whole
    [got] = fetch.fetch(f"{site}/{path}", ws)
    assert got.path.stat().st_size > 100_000


@pytest.mark.parametrize(
    ("page", "key"),
    [("hours.html", "query.max_seconds = 10800"), ("huge.html", "query.max_megabytes = 1000")],
)
def test_known_duration_or_size_is_refused_before_any_byte(
    site: str, tmp_path: Path, page: str, key: str
) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    events: list = []
    with pytest.raises(FetchError, match=key):
        fetch.fetch(f"{site}/{page}", ws, report=events.append)
    assert not [e for e in events if isinstance(e, DownloadProgress)]
    assert _left(ws) == []


def test_too_long_file_url_is_refused_after_probing(site: str, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    with pytest.raises(FetchError, match=r"0:03 long, over query.max_seconds = 2"):
        fetch.fetch(f"{site}/long.mp3", ws, query=QuerySettings(max_seconds=2))
    assert _left(ws) == []


def test_a_playlist_skips_the_entry_over_the_limit_and_says_so(site: str, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    events: list = []
    got = fetch.fetch(f"{site}/two.html", ws, report=events.append, query=QuerySettings(max_seconds=2))
    assert [f.path.stat().st_size > 0 for f in got] == [True]
    [warning] = [e for e in events if isinstance(e, Message)]
    assert "an entry was skipped: 0:03 long, over query.max_seconds = 2" in warning.text
    assert _left(ws) == [got[0].path.name]


def test_live_streams_are_refused() -> None:
    q = QuerySettings()
    assert "live or upcoming" in str(fetch.refusal({"live_status": "is_live"}, q))
    assert "live or upcoming" in str(fetch.refusal({"live_status": "is_upcoming"}, q))
    assert fetch.refusal({"live_status": "was_live", "duration": 600}, q) is None


def _deno() -> tuple[str, str]:
    exe = Path(sys.executable).with_name("deno")
    return str(exe), importlib.metadata.version("deno")


def test_yt_dlp_resolves_the_bundled_deno() -> None:
    exe, version = _deno()
    rt = fetch.js_runtime(QuerySettings())
    assert rt.report == f"JS runtimes: deno-{version}"  # yt-dlp's own verbose header
    assert (rt.name, rt.version, rt.supported, rt.path) == ("deno", version, True, exe)


def test_query_js_runtime_overrides_it(tmp_path: Path) -> None:
    exe, version = _deno()
    rt = fetch.js_runtime(QuerySettings(js_runtime=f"deno:{exe}"))
    assert rt.report == f"JS runtimes: deno-{version}" and rt.path == exe and rt.supported
    assert fetch.ydl_options(QuerySettings(js_runtime=f"deno:{exe}"))["js_runtimes"] == {
        "deno": {"path": exe}
    }
    nothing = fetch.js_runtime(QuerySettings(js_runtime=f"node:{tmp_path}"))  # a folder without node
    assert nothing.report == "JS runtimes: none" and nothing.version is None and not nothing.supported
    with pytest.raises(ConfigError, match="unknown runtime 'ruby'"):
        fetch.js_runtime(QuerySettings(js_runtime="ruby"))
    with pytest.raises(ConfigError, match="does not exist"):
        fetch.js_runtime(QuerySettings(js_runtime=f"node:{tmp_path / 'nope'}"))


@pytest.mark.skipif(shutil.which("node") is None, reason="no node on PATH")
def test_node_is_judged_by_yt_dlp_own_minimum() -> None:
    from yt_dlp.utils._jsruntime import NodeJsRuntime

    rt = fetch.js_runtime(QuerySettings(js_runtime=f"node:{shutil.which('node')}"))
    new_enough = tuple(int(p) for p in str(rt.version).split(".")[:3]) >= NodeJsRuntime.MIN_SUPPORTED_VERSION
    assert rt.path == shutil.which("node") and rt.supported == new_enough
    assert rt.report.endswith("(unsupported)") == (not new_enough)


def test_actionable_warnings_become_one_message_each() -> None:
    events: list = []
    log = fetch._Log("https://example.invalid/v", events.append)
    no_runtime = (
        "[youtube] x: No supported JavaScript runtime could be found. Only deno is enabled by default"
    )
    log.warning(no_runtime)
    log.warning(no_runtime)
    log.warning("Falling back to generic n function search")
    log.debug("[download] Destination: x.webm")
    [message] = events
    assert isinstance(message, Message) and message.level == "warning"
    assert "query.js_runtime" in message.text and "\n" not in message.text
