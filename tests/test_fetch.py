from pathlib import Path

import pytest
from conftest import make_audio, refused_port

from genre_erkennung.core import fetch
from genre_erkennung.core.errors import FetchError
from genre_erkennung.core.events import Downloaded, DownloadProgress
from genre_erkennung.core.workspace import Workspace


@pytest.fixture(scope="module")
def site(http_root: tuple[str, Path]) -> str:
    base, root = http_root
    make_audio(root / "fetch song.mp3", 3.0, channels=2)
    make_audio(root / "embedded.ogg", 2.0, freq=880)
    (root / "page.html").write_text(
        "<html><head><title>Ein Lied</title></head><body>"
        '<audio controls src="embedded.ogg"></audio></body></html>'
    )
    return base


def test_direct_mp3_then_cached_without_network(site: str, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    events: list = []
    url = f"{site}/fetch%20song.mp3"
    [got] = fetch.fetch(url, ws, report=events.append)
    assert got.path.parent == ws.downloads and got.path.suffix == ".mp3"
    assert got.path.read_bytes()[:3] in (b"ID3", b"\xff\xfb")
    assert not got.cached
    assert any(isinstance(e, DownloadProgress) for e in events)
    assert any(isinstance(e, Downloaded) and not e.cached for e in events)
    assert not list(ws.downloads.glob("*.part"))
    [again] = fetch.fetch(url, ws)
    assert again.cached and again.path == got.path


def test_html_page_with_audio_element(site: str, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    [got] = fetch.fetch(f"{site}/page.html", ws)
    assert got.path.suffix == ".ogg" and got.title.startswith("Ein Lied")
    assert "Lied" not in got.path.name  # the file name is ours, not the remote title


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("{site}/missing.mp3", "HTTP Error 404"),
        ("http://127.0.0.1:{port}/x.mp3", "connection refused"),
        ("ftp://127.0.0.1/x.mp3", "only http:// and https://"),
        ("file:///etc/passwd", "only http:// and https://"),
    ],
)
def test_errors_are_one_line(site: str, tmp_path: Path, url: str, expected: str) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    with pytest.raises(FetchError, match=expected) as info:
        fetch.fetch(url.format(site=site, port=refused_port()), ws)
    assert "\n" not in str(info.value)
    assert not [p for p in ws.downloads.iterdir() if p.name != "index.json"]
