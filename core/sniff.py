"""Reject what is plainly not audio from its first bytes, before starting ffmpeg.

A folder of thousands of junk files would otherwise cost one ffmpeg start each (about 16 ms on
an idle core, several times that under load). Only text and the signatures of formats that hold
no audio are rejected here; every other file, any audio format and any binary not listed,
goes to ffmpeg, which decides. So no song is ever refused by this check.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from .errors import AudioError

HEAD = 4096

#: Leading bytes of formats that never carry a song.
_NOT_AUDIO = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"PK\x05\x06", "a ZIP archive"),
    (b"\x7fELF", "a program"),
    (b"\x1f\x8b\x08", "a gzip archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x93NUMPY", "a NumPy array"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Office document"),
)


def _kind(head: bytes) -> str | None:
    for magic, what in _NOT_AUDIO:
        if head.startswith(magic):
            return what
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    if _is_text(head):
        return "a text file"
    return None


def _is_text(head: bytes) -> bool:
    """UTF-8 without control characters. Every audio format has binary bytes (headers, sizes,
    samples) within its first few KiB; ffmpeg's text formats (playlists, concat lists) name
    other files and are no song themselves."""
    if not head or b"\x00" in head:
        return False
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\t\n\r\f\v" for c in text.removeprefix("\ufeff"))


def reject_non_audio(path: Path) -> None:
    """Raise AudioError if the file's first bytes show it is not audio; else do nothing."""
    if not path.is_file():
        return  # never open a FIFO or device; the probe reports what it is
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD)
    except OSError:
        return  # ffmpeg's probe says what is wrong, in its words
    what = _kind(head)
    if what is not None:
        raise AudioError(f"{path}: not audio ({what})")
