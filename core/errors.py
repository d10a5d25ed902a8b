"""Errors a user can cause. Each carries one line that says what went wrong and how to fix it."""


class GenreError(Exception):
    """A failure the user can fix; the faces print `str(err)` as one line, no traceback."""

    exit_code = 1


class ConfigError(GenreError):
    """Bad configuration file or flag value (exit code 2, like a usage error)."""

    exit_code = 2


class ToolMissing(GenreError):
    """An external program (ffmpeg, sonic-annotator) is not installed."""


class AudioError(GenreError):
    """A file that cannot be decoded, or is too short to use."""


class ModelError(GenreError):
    """A saved model that is missing, damaged or does not match the features."""


class FetchError(GenreError):
    """A URL that yt-dlp could not download."""


class Cancelled(GenreError):
    """The user stopped a long job; what finished before is kept."""

    exit_code = 130


class NotExtracted(GenreError):
    """Dataset songs with no stored features (yet, or any more: a damaged entry was moved aside)."""
