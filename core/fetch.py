"""Download a URL's audio with yt-dlp's Python API into WORKSPACE/downloads/.

Files are named by us (extractor, id and a short hash), never by the remote title, and a manifest
(`index.json`) remembers what each URL gave, so a URL already downloaded is not fetched again.
yt-dlp writes `*.part` files and renames them when complete; the manifest is only updated after
that, so an interrupted download never counts as done. Nothing of yt-dlp reaches stdout.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .atomic import atomic_write_json
from .errors import Cancelled, FetchError
from .events import Downloaded, DownloadProgress, Message, Reporter, ignore
from .workspace import Workspace

#: Extractors whose ids are only a file name, unique per site at best: the URL goes into the key.
_GENERIC = {"Generic", "HTML5MediaEmbed"}


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


class _Quiet:
    """yt-dlp logger that keeps the last error instead of printing anything."""

    def __init__(self) -> None:
        self.last_error = ""

    def debug(self, msg: str) -> None:
        pass

    def info(self, msg: str) -> None:
        pass

    def warning(self, msg: str) -> None:
        pass

    def error(self, msg: str) -> None:
        self.last_error = msg


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:limit] or "audio"


def _key(info: dict[str, Any], url: str) -> str:
    extractor, ident = info.get("extractor_key") or "unknown", str(info.get("id") or "")
    scope = info.get("webpage_url") or url if extractor in _GENERIC else ""
    digest = hashlib.sha256(f"{extractor}\0{ident}\0{scope}".encode()).hexdigest()[:10]
    return f"{_slug(extractor, 20).lower()}-{_slug(ident)}-{digest}"


def _one_line(message: str, url: str) -> str:
    text = message.removeprefix("ERROR: ").strip()
    text = re.sub(r"^\[[^\]]+\] [^:]*: ", "", text)
    text = re.sub(r" \(caused by .*\)$", "", text)
    if "Unsupported URL" in text:
        return f"{url}: no audio found at this address (yt-dlp: unsupported URL)"
    if "Connection refused" in text:
        return f"{url}: connection refused (is the server up, the port right?)"
    if "HTTP Error" in text:
        return f"{url}: {text[text.index('HTTP Error') :]}"
    if "Name or service not known" in text or "getaddrinfo failed" in text:
        return f"{url}: host not found (check the address and your network)"
    return f"{url}: {text.splitlines()[0] if text else 'download failed'}"


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


def fetch(
    url: str,
    workspace: Workspace,
    max_items: int = 20,
    report: Reporter = ignore,
    cancel: threading.Event | None = None,
) -> list[Fetched]:
    """Every audio entry behind `url` (at most `max_items`), downloaded or from the cache."""
    check_url(url)
    downloads = Downloads(workspace, report)
    if (hit := downloads.cached(url)) is not None:
        for f in hit:
            report(Downloaded(url, str(f.path), f.title, cached=True))
        return hit
    import yt_dlp

    log = _Quiet()

    def hook(d: dict[str, Any]) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("download cancelled")
        if d.get("status") == "downloading":
            total = d.get("total_bytes") or d.get("total_bytes_estimate")
            report(DownloadProgress(url, int(d.get("downloaded_bytes") or 0), total and int(total)))

    opts = {
        "format": "bestaudio/best",
        "quiet": True,
        "noprogress": True,
        "no_warnings": True,
        "logger": log,
        "progress_hooks": [hook],
        "playlistend": max_items,
        "socket_timeout": 20,
        "retries": 2,
        "noplaylist": False,
        "color": {"stdout": "never", "stderr": "never"},
    }
    fetched: list[Fetched] = []
    try:
        with yt_dlp.YoutubeDL(opts) as ydl:
            info = ydl.extract_info(url, download=False)
            entries = list(info.get("entries") or [])[:max_items] if "entries" in info else [info]
            for entry in entries:
                if entry is None:
                    continue
                key = _key(entry, url)
                ydl.params["outtmpl"] = {"default": str(downloads.folder / f"{key}.%(ext)s")}
                done = ydl.process_ie_result(entry, download=True)
                path = _downloaded_path(done, ydl)
                title = str(entry.get("title") or path.stem)
                fetched.append(Fetched(url, path, title, key, False))
                report(Downloaded(url, str(path), title))
    except Cancelled:
        raise
    except yt_dlp.utils.DownloadError as exc:
        if isinstance(getattr(exc, "exc_info", [None, None])[1], Cancelled):
            raise Cancelled("download cancelled") from None
        raise FetchError(_one_line(log.last_error or str(exc), url)) from None
    if not fetched:
        raise FetchError(f"{url}: the page lists no audio entries")
    downloads.remember(url, fetched)
    return fetched


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
