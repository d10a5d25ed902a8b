"""yt-dlp's messages -> one actionable line each: the failure table and the warning table.

yt-dlp reports a failure as text ("ERROR: [youtube] ID: Sign in to confirm your age. ..."), so the
tables match the texts yt-dlp's installed source emits (tests/test_fetch_messages.py checks each
pattern against those texts, read from the source). Order matters: the first match wins, and an
age-gate or a private video also carries yt-dlp's generic sign-in hint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

COOKIES_FIX = "pass --cookies FILE (or set query.cookies) with a Netscape cookie file exported from a browser"
UPGRADE_FIX = "upgrade yt-dlp: pip install -U 'yt-dlp[default,deno]' (YouTube changes often)"


@dataclass(frozen=True)
class Known:
    """One known yt-dlp message: `kind` names it, `line` says what happened and how to fix it."""

    kind: str
    pattern: re.Pattern[str]
    line: str

    def matches(self, text: str) -> bool:
        return self.pattern.search(text) is not None


def _k(kind: str, pattern: str, line: str) -> Known:
    return Known(kind, re.compile(pattern, re.IGNORECASE), line)


#: Failures of a download, most specific first.
FAILURES: tuple[Known, ...] = (
    _k(
        "cookie-file",
        r"does not look like a Netscape format cookies file|Cookies file must be Netscape formatted",
        "the cookie file is not in Netscape format: export it with a 'cookies.txt' browser extension "
        "(one line per cookie, tab-separated, '# Netscape HTTP Cookie File' on top)",
    ),
    _k(
        "age-restricted",
        r"confirm your age|age-restricted|inappropriate",
        f"age-restricted: only a signed-in adult account may fetch it; {COOKIES_FIX}",
    ),
    _k(
        "private",
        r"\bprivate video\b|\bvideo is private\b|\bplaylist is private\b",
        f"a private video: only its owner and those granted access can fetch it; with access, {COOKIES_FIX}",
    ),
    _k(
        "region-blocked",
        r"not available from your location|not made this video available in your country"
        r"|due to geo restriction",
        "blocked in this machine's country: query it from a network where it is available, or "
        "download it there and query the file",
    ),
    _k(
        "live",
        r"This live event (?:will begin|is scheduled|has not yet started)|is not currently live",
        "a live or upcoming stream: query it again once the recording is available "
        "(live streams are never fetched)",
    ),
    _k(
        "rate-limited",
        r"HTTP Error 429|rate-limited by YouTube|content isn't available, try again later",
        f"the site is rate-limiting this machine (HTTP 429): wait an hour, or {COOKIES_FIX}",
    ),
    _k(
        "bot-check",
        r"confirm you.re not a bot|--cookies for the authentication|Your IP is likely being blocked"
        r"|captcha challenge|Login details are needed|only available for registered users",
        "the site wants a signed-in visitor (a bot check, common from data centres and cloud "
        f"machines): {COOKIES_FIX}",
    ),
    _k(
        "forbidden",
        r"HTTP Error 403",
        f"the site refused the download (HTTP Error 403: Forbidden): if it needs a sign-in, "
        f"{COOKIES_FIX}; for YouTube, {UPGRADE_FIX}",
    ),
    _k(
        "removed",
        r"Video unavailable|This video is not available|has been removed|This video does not exist"
        r"|no longer available",
        "removed or unavailable: the site no longer serves it; check the URL in a browser",
    ),
    _k(
        "drm",
        r"DRM protected",
        "protected by DRM: it cannot be fetched; query a file of the song instead",
    ),
    _k(
        "unsupported",
        r"Unsupported URL",
        "no audio found at this address (yt-dlp: unsupported URL): give the page of one song or "
        "a direct link to an audio file",
    ),
    _k(
        "no-audio",
        r"Requested format is not available|No video formats found|no audio (?:stream|formats?)",
        "the page offers no audio stream that can be fetched",
    ),
    _k(
        "connection-refused",
        r"Connection refused",
        "connection refused (is the server up, the port right?)",
    ),
    _k(
        "host-not-found",
        r"Name or service not known|getaddrinfo failed|nodename nor servname"
        r"|Temporary failure in name resolution",
        "host not found (check the address and your network)",
    ),
    _k(
        "timeout",
        r"timed out",
        "the site did not answer in time: check your network and try again",
    ),
)

#: Warnings a user can act on; every other yt-dlp message stays out of sight (logged at debug).
WARNINGS: tuple[Known, ...] = (
    _k(
        "no-js-runtime",
        r"No supported JavaScript runtime could be found",
        "yt-dlp found no JavaScript runtime, so YouTube formats may be missing: reinstall "
        "genre-erkennung (it brings deno) or set query.js_runtime, e.g. 'node:/usr/bin/node'; "
        "`genre doctor` shows what yt-dlp finds",
    ),
    _k(
        "challenge-failed",
        r"(?:n challenge|Signature) solving failed|Challenge solver .* is not supported"
        r"|Hash mismatch on challenge solver|Failed to (?:load|read) (?:builtin )?challenge solver",
        f"yt-dlp could not solve YouTube's JavaScript challenge, so formats may be missing and the "
        f"download throttled: {UPGRADE_FIX}",
    ),
    _k(
        "format-fallback",
        r"Requested format is not available|may not be the best available|formats won't be merged",
        "yt-dlp fell back to another format than the best audio: the result may be larger or worse",
    ),
    _k(
        "partial",
        r"Skipping fragment|Downloaded \d+ bytes, expected \d+ bytes|Got error: .*Retrying",
        "the download was interrupted and resumed or retried: if it fails, try again later",
    ),
)


def classify(text: str, table: tuple[Known, ...]) -> Known | None:
    """The first entry of `table` whose pattern is in `text`."""
    return next((k for k in table if k.matches(text)), None)


def _plain(message: str) -> str:
    """yt-dlp's text without 'ERROR: [extractor] id: ' and ' (caused by ...)'."""
    text = message.removeprefix("ERROR: ").strip()
    text = re.sub(r"^\[[^\]]+\] (?:[^:\s]*: )?", "", text)
    text = re.sub(r" \(caused by .*\)$", "", text, flags=re.DOTALL)
    return text.splitlines()[0].strip() if text else ""


def failure_line(message: str, url: str) -> str:
    """One line for a failed download: the table's, else yt-dlp's own first line."""
    known = classify(message, FAILURES)
    if known is not None:
        return f"{url}: {known.line}"
    text = _plain(message)
    if "HTTP Error" in text:
        return f"{url}: {text[text.index('HTTP Error') :]}"
    return f"{url}: {text or 'download failed'}"


def warning_line(message: str) -> str | None:
    """One line for a warning a user can act on, or None for the rest."""
    known = classify(message, WARNINGS)
    return known.line if known else None
