"""The failure and warning tables against the texts the installed yt-dlp emits.

Each case names where its words live in yt-dlp's source (the test reads that file, so a yt-dlp
that rewords a message fails here) and builds the message as yt-dlp reports it, with yt-dlp's
own objects where it composes one (login hints, HTTPError, GeoRestrictedError, ...).
Texts that come from YouTube's servers ("Sign in to confirm you're not a bot") are not in any
source; their cases say so and lean on the part yt-dlp adds (its cookie hint).
"""

import http.cookiejar
import inspect
import io
from pathlib import Path

import pytest
import yt_dlp
from yt_dlp.extractor.youtube import YoutubeIE
from yt_dlp.networking.common import Response
from yt_dlp.networking.exceptions import HTTPError
from yt_dlp.utils import ContentTooShortError, ExtractorError, UnsupportedError, UserNotLive

from genre_erkennung.core.ytdlp_messages import FAILURES, WARNINGS, classify, failure_line, warning_line

YT = Path(yt_dlp.__file__).parent
URL = "https://www.youtube.com/watch?v=abcdefghijk"


def _in_source(where: str, literal: str) -> None:
    text = (
        inspect.getsource(http.cookiejar) if where == "stdlib" else (YT / where).read_text(encoding="utf-8")
    )
    assert literal in text, f"{literal!r} is no longer in yt_dlp/{where}"


@pytest.fixture(scope="module")
def ie() -> YoutubeIE:
    return YoutubeIE(yt_dlp.YoutubeDL({"quiet": True}))


def _raised(fn) -> str:
    with pytest.raises(ExtractorError) as info:
        fn()
    return f"ERROR: [youtube] {info.value}"


def _http(status: int, reason: str) -> str:
    err = HTTPError(Response(io.BytesIO(b""), URL, {}, status=status, reason=reason))
    return f"ERROR: [generic] Unable to download webpage: {err} (caused by <HTTPError {status}: {reason}>)"


def _failure_cases(ie: YoutubeIE) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(kind, the message as yt-dlp reports it, [(source file, words it must hold)])."""
    hint = ie._youtube_login_hint
    common = "extractor/common.py"
    video = "extractor/youtube/_video.py"
    return [
        (
            "age-restricted",
            f"ERROR: [youtube] abcdefghijk: Sign in to confirm your age. This video may be "
            f"inappropriate for some users. {hint}",
            [
                (video, "'confirm your age', 'age-restricted', 'inappropriate'"),
                (video, "'sign in' in reason"),
            ],
        ),
        (
            "private",
            f"ERROR: [youtube] abcdefghijk: Private video. Sign in if you've been granted access. {hint}",
            [(video, "'skip': 'Private video'")],
        ),
        (
            "bot-check",  # YouTube's own words, then yt-dlp's cookie hint
            f"ERROR: [youtube] abcdefghijk: Sign in to confirm you’re not a bot. {hint}",
            [(common, "Use --cookies-from-browser or --cookies for the authentication")],
        ),
        (
            "bot-check",
            "ERROR: [youtube] abcdefghijk: All player responses are invalid. Your IP is likely being "
            "blocked by Youtube",
            [(video, "All player responses are invalid. Your IP is likely being blocked by Youtube")],
        ),
        ("bot-check", _raised(ie.raise_login_required), [(common, "only available for registered users")]),
        (
            "region-blocked",
            _raised(ie.raise_geo_restricted),
            [(common, "This video is not available from your location due to geo restriction")],
        ),
        (
            "region-blocked",
            "ERROR: [youtube] abcdefghijk: The uploader has not made this video available in your country",
            [(video, "The uploader has not made this video available in your country")],
        ),
        (
            "live",
            f"ERROR: [chzzk] {UserNotLive(video_id='x')}",
            [("utils/_utils.py", "is not currently live")],
        ),
        (
            "live",
            "ERROR: [eplus] x: This live event will begin at 2026-12-24 20:00:00 JST",
            [("extractor/eplus.py", "This live event will begin at")],
        ),
        (
            "live",
            "ERROR: [vimeo] x: This live event is scheduled for 2026-12-24T20:00:00",
            [("extractor/vimeo.py", "This live event is scheduled for")],
        ),
        ("rate-limited", _http(429, "Too Many Requests"), [("networking/exceptions.py", "f'HTTP Error {")]),
        (
            "rate-limited",
            "ERROR: [youtube] abcdefghijk: This content isn't available, try again later. The current "
            "session has been rate-limited by YouTube for up to an hour.",
            [(video, "This content isn't available, try again later"), (video, "rate-limited by YouTube")],
        ),
        ("forbidden", _http(403, "Forbidden"), [("networking/exceptions.py", "f'HTTP Error {")]),
        (
            "removed",
            "ERROR: [youtube] abcdefghijk: Video unavailable",
            [(video, "'skip': 'Video unavailable'")],
        ),
        (
            "removed",
            "ERROR: [youtube] abcdefghijk: This video has been removed for violating YouTube's policy on "
            "hate speech.",
            [(video, "This video has been removed for violating")],
        ),
        (
            "removed",
            "ERROR: [youtube] abcdefghijk: This video is not available.",
            [(video, "'skip': 'This video is not available.'")],
        ),
        ("drm", _raised(lambda: ie.report_drm("abcdefghijk")), [(common, "This video is DRM protected")]),
        (
            "unsupported",
            f"ERROR: {UnsupportedError(URL)}",
            [("utils/_utils.py", "f'Unsupported URL: {url}'")],
        ),
        (
            "no-audio",
            "ERROR: [generic] x: Requested format is not available. Use --list-formats for a list of "
            "available formats",
            [("YoutubeDL.py", "'Requested format is not available. Use --list-formats for a list")],
        ),
        (
            "cookie-file",
            "'/home/u/cookies.txt' does not look like a Netscape format cookies file",
            [("stdlib", "does not look like a Netscape format cookies file")],
        ),
        (
            "cookie-file",
            "Cookies file must be Netscape formatted, not JSON. See  https://github.com/yt-dlp/yt-dlp/wiki",
            [("cookies.py", "Cookies file must be Netscape formatted, not JSON")],
        ),
        (
            "timeout",
            "ERROR: [generic] Unable to download webpage: Connection to example.org timed out. "
            "(connect timeout=20)",
            [("networking/_requests.py", "timed out. (connect timeout=")],
        ),
    ]


def test_every_failure_maps_to_its_line(ie: YoutubeIE) -> None:
    cases = _failure_cases(ie)
    for kind, message, sources in cases:
        for where, literal in sources:
            _in_source(where, literal)
        known = classify(message, FAILURES)
        assert known is not None and known.kind == kind, f"{message!r} -> {known and known.kind}, not {kind}"
        line = failure_line(message, URL)
        assert line == f"{URL}: {known.line}" and "\n" not in line
    table_kinds = {k.kind for k in FAILURES}
    untested_here = {"connection-refused", "host-not-found"}  # OS texts; test_fetch.py meets the first
    assert table_kinds - untested_here == {kind for kind, _, _ in cases}


def test_an_unknown_failure_keeps_yt_dlp_first_line() -> None:
    line = failure_line("ERROR: [generic] x: Something new happened\nsecond line (caused by X)", URL)
    assert line == f"{URL}: Something new happened"
    assert failure_line("ERROR: unable to download video data: HTTP Error 410: Gone", URL) == (
        f"{URL}: HTTP Error 410: Gone"
    )


def test_actionable_warnings_map_and_the_rest_stay_quiet() -> None:
    video = "extractor/youtube/_video.py"
    ejs = "extractor/youtube/jsc/_builtin/ejs.py"
    cases = [
        (
            "no-js-runtime",
            "[youtube] abcdefghijk: No supported JavaScript runtime could be found. Only deno is enabled "
            "by default; to use another runtime add  --js-runtimes RUNTIME[:PATH]  to your command/config.",
            (video, "No supported JavaScript runtime could be found."),
        ),
        (
            "challenge-failed",
            "[youtube] abcdefghijk: n challenge solving failed: Some formats may be missing. Ensure you "
            "have a supported JavaScript runtime",
            (video, "n challenge solving failed: Some formats may be missing."),
        ),
        (
            "challenge-failed",
            "[youtube] abcdefghijk: Signature solving failed: Some formats may be missing.",
            (video, "Signature solving failed: Some formats may be missing."),
        ),
        (
            "challenge-failed",
            "[youtube] [jsc:deno] Challenge solver lib script version 0.1.0 is not supported (source: cache)",
            (ejs, "is not supported (source: {script.source.value}"),
        ),
        (
            "format-fallback",
            "Requested format is not available",
            ("YoutubeDL.py", "'Requested format is not available'"),
        ),
        (
            "format-fallback",
            "ffmpeg not found. The downloaded format may not be the best available. Installing ffmpeg",
            ("YoutubeDL.py", "The downloaded format may not be the best available"),
        ),
        (
            "partial",
            f"[download] Got error: {ContentTooShortError(10, 20)}. Retrying (1/2)...",
            ("downloader/common.py", "Got error: {msg}"),
        ),
        (
            "partial",
            "[download] Got error: Read timed out. Skipping fragment 3 ...",
            ("downloader/fragment.py", "Skipping fragment"),
        ),
    ]
    for kind, message, (where, literal) in cases:
        _in_source(where, literal)
        known = classify(message, WARNINGS)
        assert known is not None and known.kind == kind, f"{message!r} -> {known and known.kind}"
        assert warning_line(message) == known.line
    assert {k.kind for k in WARNINGS} == {kind for kind, _, _ in cases}
    for quiet in ("[download] Destination: x.webm", "[youtube] abcdefghijk: Downloading webpage"):
        assert warning_line(quiet) is None
