"""Download a URL's audio with yt-dlp's Python API into WORKSPACE/downloads/.

Files are named by us (extractor, id and a short hash), never by the remote title, and a manifest
(`index.json`) remembers what each URL gave, so a URL already downloaded is not fetched again.
yt-dlp writes `*.part` files and renames them when complete; the manifest is only updated after
that, so an interrupted download never counts as done. Nothing of yt-dlp reaches stdout: its
warnings a user can act on become `Message` events (one line each), the rest go to this module's
logger at debug level (the CLI shows them with --verbose).

Limits (query.max_seconds, query.max_megabytes) hold before a byte is fetched where the site says
the duration or size (yt-dlp's `match_filter`), during the download where it does not (the
progress hook stops it and the partial file is removed), and after it for a plain file URL whose
duration only ffmpeg can tell. The user's cookie file is only read: yt-dlp gets a private copy,
because it writes its cookie jar back to `cookiefile` when it closes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .atomic import atomic_write_json
from .config import QuerySettings
from .errors import AudioError, Cancelled, ConfigError, FetchError, GenreError
from .events import Downloaded, DownloadProgress, Message, Reporter, ignore
from .workspace import Workspace
from .ytdlp_messages import failure_line, warning_line

_LOG = logging.getLogger(__name__)

#: Extractors whose ids are only a file name, unique per site at best: the URL goes into the key.
_GENERIC = {"Generic", "HTML5MediaEmbed"}
_LIVE = {"is_live", "is_upcoming", "post_live"}


@dataclass(frozen=True)
class Fetched:
    """One downloaded audio file (an entry of a playlist, or the URL itself)."""

    url: str
    path: Path
    title: str
    key: str
    cached: bool


def is_url(source: str) -> bool:
    return "://" in source


def check_url(url: str) -> None:
    scheme = urlparse(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchError(f"{url}: only http:// and https:// URLs can be fetched (got {scheme}://)")
    if not urlparse(url).netloc:
        raise FetchError(f"{url}: no host in this URL")


# ----------------------------------------------------------------- the JavaScript runtime


@dataclass(frozen=True)
class JsRuntime:
    """What yt-dlp, configured as fetch() configures it, reports about its JavaScript runtime."""

    setting: str  # query.js_runtime ('' = yt-dlp's default: deno, found beside the app)
    name: str
    path: str | None  # the binary yt-dlp would run, None when it found none
    version: str | None
    supported: bool
    report: str  # yt-dlp's own words, e.g. "JS runtimes: deno-2.9.8"


def js_runtimes(setting: str) -> dict[str, dict[str, str | None]]:
    """yt-dlp's `js_runtimes` option from query.js_runtime (NAME[:PATH], as yt-dlp's CLI takes it)."""
    from yt_dlp.globals import supported_js_runtimes

    name, _, path = (setting or "deno").partition(":")
    name = name.strip().lower()
    known = supported_js_runtimes.value
    if name not in known:
        raise ConfigError(
            f"query.js_runtime = {setting!r}: unknown runtime {name!r}; yt-dlp supports "
            f"{', '.join(known)} (as NAME or NAME:PATH)"
        )
    if path and not os.path.exists(os.path.expanduser(path)):
        raise ConfigError(f"query.js_runtime = {setting!r}: {path} does not exist")
    return {name: {"path": os.path.expanduser(path) if path else None}}


def js_runtime(query: QuerySettings) -> JsRuntime:
    """Ask yt-dlp (its verbose header) which runtime it resolves; no network is used."""
    import yt_dlp
    from yt_dlp.globals import supported_js_runtimes

    log = _Log("", ignore)
    options = ydl_options(query) | {"verbose": True, "logger": log}
    [(name, cfg)] = options["js_runtimes"].items()
    with yt_dlp.YoutubeDL(options):
        pass
    report = next((m.removeprefix("[debug] ") for m in log.debug_lines if "JS runtimes:" in m), "")
    words = report.removeprefix("JS runtimes: ")
    found = re.match(rf"{re.escape(name)}(?:-ng)?-(\S+)", words)
    info = supported_js_runtimes.value[name](path=cfg["path"]).info if found else None
    return JsRuntime(
        query.js_runtime,
        name,
        info.path if info else None,
        found.group(1) if found else None,
        bool(found) and "(unsupported)" not in words,
        report,
    )


# ----------------------------------------------------------------- yt-dlp's messages


class _Log:
    """yt-dlp logger: actionable warnings become one Message each, the rest go to debug logging;
    the last error is kept for the one-line failure."""

    def __init__(self, url: str, report: Reporter) -> None:
        self.url = url
        self.report = report
        self.last_error = ""
        self.debug_lines: list[str] = []
        self._said: set[str] = set()

    def _note(self, msg: str) -> None:
        line = warning_line(msg)
        if line is not None and line not in self._said:
            self._said.add(line)
            self.report(Message(f"{self.url}: {line}" if self.url else line, "warning"))
        _LOG.debug("yt-dlp: %s", msg)

    def debug(self, msg: str) -> None:
        self.debug_lines.append(msg)
        self._note(msg)

    def info(self, msg: str) -> None:
        self._note(msg)

    def warning(self, msg: str) -> None:
        self._note(msg)

    def error(self, msg: str) -> None:
        if msg.strip():
            self.last_error = msg
        _LOG.debug("yt-dlp: %s", msg)


# ----------------------------------------------------------------- limits


def _clock(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def too_long(seconds: float, query: QuerySettings) -> str:
    return (
        f"{_clock(seconds)} long, over query.max_seconds = {query.max_seconds:g}: raise query.max_seconds "
        "in your config to fetch longer recordings"
    )


def too_large(nbytes: float, query: QuerySettings) -> str:
    return (
        f"{nbytes / 1e6:.1f} MB, over query.max_megabytes = {query.max_megabytes:g}: raise "
        "query.max_megabytes in your config to fetch larger files"
    )


def refusal(info: dict[str, Any], query: QuerySettings) -> str | None:
    """Why an entry is not fetched, from what the site says before the download (None: fetch it)."""
    if info.get("is_live") or info.get("live_status") in _LIVE:
        return "a live or upcoming stream: query it again once the recording is available"
    duration = info.get("duration")
    if duration and duration > query.max_seconds:
        return too_long(duration, query)
    size = info.get("filesize") or info.get("filesize_approx")
    if size and size > query.max_megabytes * 1e6:
        return too_large(size, query)
    return None


class _OverLimit(Exception):
    """Raised in the progress hook to stop a download that passed query.max_megabytes."""


class _Guard:
    """yt-dlp's match_filter and progress hook for one fetch: limits, cancel, progress events."""

    def __init__(self, url: str, query: QuerySettings, report: Reporter, cancel: threading.Event | None):
        self.url, self.query, self.report, self.cancel = url, query, report, cancel
        self.refused: dict[str, str] = {}  # entry id -> why (yt-dlp asks more than once per entry)

    def match_filter(self, info: dict[str, Any], *, incomplete: bool | set[str] = False) -> str | None:
        why = refusal(info, self.query)
        if why is not None:
            self.refused[_ident(info)] = why
        return why

    def hook(self, d: dict[str, Any]) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("download cancelled")
        if d.get("status") != "downloading":
            return
        got = int(d.get("downloaded_bytes") or 0)
        exact = d.get("total_bytes")
        if max(got, int(exact or 0)) > self.query.max_megabytes * 1e6:
            raise _OverLimit(f"stopped: {too_large(max(got, int(exact or 0)), self.query)}")
        total = exact or d.get("total_bytes_estimate")
        self.report(DownloadProgress(self.url, got, total and int(total)))


@contextmanager
def private_cookies(path: str) -> Iterator[str | None]:
    """A private copy of the user's cookie file for yt-dlp to read and overwrite; removed after."""
    if not path:
        yield None
        return
    src = Path(path).expanduser()
    try:
        data = src.read_bytes()
    except FileNotFoundError:
        raise FetchError(f"cookie file {src}: not found (fix --cookies or query.cookies)") from None
    except OSError as exc:
        raise FetchError(f"cookie file {src}: cannot read it ({exc.strerror})") from None
    fd, copy = tempfile.mkstemp(prefix="genre-cookies-", suffix=".txt")  # mode 0600: cookies are secrets
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield copy
    finally:
        Path(copy).unlink(missing_ok=True)


# ----------------------------------------------------------------- the downloads folder


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:limit] or "audio"


def _key(info: dict[str, Any], url: str) -> str:
    extractor, ident = info.get("extractor_key") or "unknown", str(info.get("id") or "")
    scope = info.get("webpage_url") or url if extractor in _GENERIC else ""
    digest = hashlib.sha256(f"{extractor}\0{ident}\0{scope}".encode()).hexdigest()[:10]
    return f"{_slug(extractor, 20).lower()}-{_slug(ident)}-{digest}"


class Downloads:
    """The downloads folder and its manifest."""

    def __init__(self, workspace: Workspace, report: Reporter = ignore) -> None:
        self.folder = workspace.downloads
        self.folder.mkdir(parents=True, exist_ok=True)
        self.index_path = self.folder / "index.json"
        self.report = report

    def _index(self) -> dict[str, Any]:
        """The manifest. A damaged one is never dropped silently: it is kept aside under a new
        name, a new index starts, and one line says so (earlier URLs are looked up again)."""
        try:
            raw = self.index_path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise FetchError(f"{self.index_path}: cannot read it ({exc.strerror})") from None
        try:
            data = json.loads(raw)
            if isinstance(data, dict):
                return data
            why = "not a JSON object"
        except ValueError as exc:
            why = f"not valid JSON: {exc}"
        aside = self.folder / f"index.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.json"
        try:
            if self.index_path.read_bytes() != raw:  # another process has just replaced it
                return self._index()
            self.index_path.rename(aside)
            kept = f"kept it as {aside.name} and started a new one (earlier URLs are looked up again)"
        except OSError as exc:
            kept = f"cannot move it aside ({exc.strerror}); earlier URLs are looked up again"
        self.report(Message(f"{self.index_path} was damaged ({why}): {kept}", "warning"))
        return {}

    def cached(self, url: str) -> list[Fetched] | None:
        index = self._index()
        keys = index.get("urls", {}).get(url)
        if not keys:
            return None
        items = [index.get("items", {}).get(k) for k in keys]
        if not all(item and (self.folder / item["file"]).is_file() for item in items):
            return None
        return [
            Fetched(url, self.folder / i["file"], i["title"], k, True)
            for k, i in zip(keys, items, strict=True)
        ]

    def remember(self, url: str, fetched: list[Fetched]) -> None:
        index = self._index()
        items = index.setdefault("items", {})
        for f in fetched:
            items[f.key] = {"file": f.path.name, "title": f.title, "url": f.url}
        index.setdefault("urls", {})[url] = [f.key for f in fetched]
        atomic_write_json(self.index_path, index)

    def files(self, key: str) -> set[Path]:
        """What yt-dlp wrote for `key` (the file, or its .part and fragments); keys are glob-safe."""
        return set(self.folder.glob(f"{key}.*"))


# ----------------------------------------------------------------- fetch


def ydl_options(query: QuerySettings, max_items: int = 20) -> dict[str, Any]:
    """The yt-dlp options every fetch uses (hooks, logger and cookies are added per fetch)."""
    return {
        "format": "bestaudio/best",  # audio only whenever the site offers it
        "quiet": True,
        "noprogress": True,
        "playlistend": max_items,
        "socket_timeout": 20,
        "retries": 2,
        "noplaylist": False,
        "color": {"stdout": "never", "stderr": "never"},
        "js_runtimes": js_runtimes(query.js_runtime),
    }


def fetch(
    url: str,
    workspace: Workspace,
    max_items: int = 20,
    report: Reporter = ignore,
    cancel: threading.Event | None = None,
    query: QuerySettings | None = None,
) -> list[Fetched]:
    """Every audio entry behind `url` (at most `max_items`), downloaded or from the cache."""
    check_url(url)
    query = query or QuerySettings()
    downloads = Downloads(workspace, report)
    if (hit := downloads.cached(url)) is not None:
        for f in hit:
            report(Downloaded(url, str(f.path), f.title, cached=True))
        return hit
    import yt_dlp

    log, guard = _Log(url, report), _Guard(url, query, report, cancel)
    opts = ydl_options(query, max_items) | {
        "logger": log,
        "progress_hooks": [guard.hook],
        "match_filter": guard.match_filter,
    }
    fetched: list[Fetched] = []
    with private_cookies(query.cookies) as cookiefile:
        if cookiefile:
            opts["cookiefile"] = cookiefile
        try:
            with yt_dlp.YoutubeDL(opts) as ydl:
                info = ydl.extract_info(url, download=False)
                entries = list(info.get("entries") or [])[:max_items] if "entries" in info else [info]
                for entry in (e for e in entries if e is not None):
                    if (got := _fetch_entry(ydl, entry, url, downloads, guard, query, report)) is not None:
                        fetched.append(got)
        except GenreError:
            raise
        except (yt_dlp.utils.DownloadError, yt_dlp.cookies.CookieLoadError) as exc:
            cause = getattr(exc, "exc_info", [None, None])[1]
            if isinstance(cause, GenreError):
                raise cause from None
            raise FetchError(failure_line(log.last_error or str(exc), url)) from None
    refused = list(guard.refused.values())
    if not fetched:
        raise FetchError(f"{url}: {refused[0]}" if refused else f"{url}: the page lists no audio entries")
    for why in refused:  # some entries of a playlist
        report(Message(f"{url}: an entry was skipped: {why}", "warning"))
    downloads.remember(url, fetched)
    return fetched


def _fetch_entry(
    ydl: Any,
    entry: dict[str, Any],
    url: str,
    downloads: Downloads,
    guard: _Guard,
    query: QuerySettings,
    report: Reporter,
) -> Fetched | None:
    """Download one entry; None when the limits refused it (the reason is in `guard.refused`),
    before any byte, during the download, or after it. A refused entry leaves no file behind."""
    key, ident = _key(entry, url), _ident(entry)
    before = downloads.files(key)
    ydl.params["outtmpl"] = {"default": str(downloads.folder / f"{key}.%(ext)s")}
    try:
        done = ydl.process_ie_result(entry, download=True)
    except BaseException as exc:
        cause = exc if isinstance(exc, GenreError | _OverLimit) else getattr(exc, "exc_info", [None, None])[1]
        if not isinstance(cause, Cancelled):  # a cancelled download keeps its .part to resume
            for partial in downloads.files(key) - before:
                partial.unlink(missing_ok=True)
        if isinstance(cause, _OverLimit):
            guard.refused[ident] = str(cause)
            return None
        raise
    if ident in guard.refused:
        return None
    path = _downloaded_path(done, ydl)
    if done.get("vcodec") not in (None, "none"):
        report(Message(f"{url}: the site offers no audio-only format, so its video came too", "warning"))
    if not done.get("duration") and (why := _too_long_after_probe(path, query)):
        path.unlink(missing_ok=True)
        guard.refused[ident] = why
        return None
    title = str(entry.get("title") or path.stem)
    report(Downloaded(url, str(path), title))
    return Fetched(url, path, title, key, False)


def _ident(info: dict[str, Any]) -> str:
    return str(info.get("id") or info.get("url") or "")


def _too_long_after_probe(path: Path, query: QuerySettings) -> str | None:
    """The duration limit for a download whose length only ffmpeg can tell (a plain file URL)."""
    from .audio import probe

    try:
        seconds = probe(path).duration
    except AudioError:
        return None  # not audio at all: the query says so when it decodes it
    return too_long(seconds, query) if seconds is not None and seconds > query.max_seconds else None


def _downloaded_path(info: dict[str, Any], ydl: Any) -> Path:
    for d in info.get("requested_downloads") or []:
        if d.get("filepath"):
            return Path(d["filepath"])
    return Path(ydl.prepare_filename(info))


def forget(workspace: Workspace, url: str, path: Path) -> None:
    """Drop a download that turned out not to be audio, so it is neither kept nor cached."""
    path.unlink(missing_ok=True)
    downloads = Downloads(workspace)
    index = downloads._index()
    if url in index.get("urls", {}):
        del index["urls"][url]
        atomic_write_json(downloads.index_path, index)
