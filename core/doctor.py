"""What a fresh box has and lacks, one line per check with its fix: `genre doctor` and the TUI.

Each check runs the real thing where it can (ffmpeg decodes a generated second of each codec, torch
computes on each device, yt-dlp reports its JavaScript runtime, sonic-annotator lists its
transforms). `fail` marks what the default commands need (ffmpeg and its codecs, the JS runtime
for YouTube, torch, a writable workspace, a valid config); `warn` what is optional or advisable.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import audio
from . import config as config_mod
from .config import Settings
from .errors import GenreError
from .workspace import Workspace, from_settings
from .ytdlp_messages import UPGRADE_FIX

#: yt-dlp older than this is likely to have lost YouTube to a site change.
YT_DLP_MAX_AGE_DAYS = 60
#: Below this much free space in the workspace, say so (features and downloads need room).
LOW_DISK_BYTES = 2 * 10**9
#: (label, file suffix, ffmpeg encoder arguments) of the codecs a music library and the web use.
CODECS = (
    ("mp3", ".mp3", ["-c:a", "libmp3lame"]),
    ("opus/webm", ".webm", ["-c:a", "libopus"]),
    ("m4a/aac", ".m4a", ["-c:a", "aac"]),
    ("flac", ".flac", ["-c:a", "flac"]),
    ("ogg", ".ogg", ["-c:a", "libvorbis"]),
)


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether everything the default commands need is here."""
        return all(c.status != "fail" for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks]}


def diagnose(
    config: Path | None = None, workspace: Path | None = None, on_check: Callable[[Check], None] | None = None
) -> Report:
    """Every check, in the order a user fixes things; `on_check` sees each line as it is made."""
    report = Report()

    def add(*checks: Check) -> None:
        for c in checks:
            report.checks.append(c)
            if on_check is not None:
                on_check(c)

    settings, check = _config(config)
    add(check)
    if workspace is not None:
        settings.workspace = str(workspace)
    for step in (_workspace, _ffmpeg, _yt_dlp, _js_runtime, _torch, _sonic):
        try:
            add(*step(settings))
        except Exception as exc:  # a check that breaks is itself a finding, never a crash
            add(Check(step.__name__.strip("_").replace("_", "-"), "fail", f"the check itself failed: {exc}"))
    return report


def _config(path: Path | None) -> tuple[Settings, Check]:
    user = config_mod.user_config_path()
    read_user = user.is_file() and not os.environ.get("GENRE_NO_USER_CONFIG")
    files = [p for p in (user if read_user else None, path) if p]
    try:
        settings = config_mod.load(path)
    except GenreError as exc:
        return Settings(), Check("config", "fail", str(exc), "fix the file (see sample_config.toml)")
    if files:
        shown = ", ".join(str(p) for p in files)
    elif os.environ.get("GENRE_NO_USER_CONFIG"):
        shown = f"none (built-in defaults; GENRE_NO_USER_CONFIG skips {user})"
    else:
        shown = f"none (built-in defaults; {user} is read when it exists)"
    return settings, Check("config", "ok", shown)


def _workspace(settings: Settings) -> list[Check]:
    ws: Workspace = from_settings(settings)
    try:
        ws.ensure()
        with tempfile.NamedTemporaryFile(dir=ws.root, prefix=".doctor-"):
            pass
    except (GenreError, OSError) as exc:
        why = f"{ws.root}: not writable ({exc.strerror})" if isinstance(exc, OSError) else str(exc)
        return [Check("workspace", "fail", why, "pass --workspace DIR with a folder you can write")]
    free = shutil.disk_usage(ws.root).free
    detail = f"{ws.root} writable, {free / 1e9:.1f} GB free"
    if free < LOW_DISK_BYTES:
        return [Check("workspace", "warn", detail, "free space, or use --workspace DIR elsewhere")]
    return [Check("workspace", "ok", detail)]


def _run(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout, check=False)


def _ffmpeg(settings: Settings) -> list[Check]:
    audio.find_ffmpeg.cache_clear()
    try:
        exe = audio.find_ffmpeg()
        first = _run([exe, "-hide_banner", "-version"]).stdout.split("\n", 1)[0]
    except GenreError as exc:
        return [Check("ffmpeg", "fail", str(exc).split(": ", 1)[0], str(exc).split(": ", 1)[-1])]
    except OSError as exc:
        why = f"{exc.filename}: cannot run it ({exc.strerror})"
        return [Check("ffmpeg", "fail", why, "fix or unset GENRE_FFMPEG")]
    version = first.split()[2] if first.startswith("ffmpeg version") else "unknown version"
    return [Check("ffmpeg", "ok", f"{exe} ({version})"), _codecs(exe)]


def _codecs(exe: str) -> Check:
    """Decode a generated second of each codec through the app's own decoder."""
    good: list[str] = []
    bad: list[str] = []
    untested: list[str] = []
    with tempfile.TemporaryDirectory(prefix="genre-doctor-") as tmp:
        for label, suffix, encoder in CODECS:
            sample = Path(tmp) / f"tone{suffix}"
            tone = ["-f", "lavfi", "-i", "sine=frequency=440:duration=1"]
            made = _run([exe, "-nostdin", "-loglevel", "error", *tone, *encoder, audio.ffmpeg_input(sample)])
            if made.returncode != 0:
                untested.append(label)
                continue
            try:
                n = audio.decode(sample, 44100).size
                (good if 0.8 * 44100 <= n <= 1.2 * 44100 else bad).append(label)
            except GenreError as exc:
                bad.append(f"{label} ({exc})")
    if bad:
        return Check(
            "codecs",
            "fail",
            f"cannot decode {', '.join(bad)}",
            "install a full ffmpeg (apt install ffmpeg) or pip install imageio-ffmpeg and unset GENRE_FFMPEG",
        )
    detail = f"decodes {', '.join(good)} (a generated second of each)"
    if untested:
        return Check(
            "codecs",
            "warn",
            f"{detail}; not tested: {', '.join(untested)} (this ffmpeg cannot encode a sample)",
            "a full ffmpeg build (apt install ffmpeg) has every codec",
        )
    return Check("codecs", "ok", detail)


def yt_dlp_age(version: str, today: dt.date) -> int | None:
    """Days since a yt-dlp release (versions are dates: 2026.10.26, 2026.10.26.1)."""
    try:
        y, m, d = (int(p) for p in version.split(".")[:3])
        return (today - dt.date(y, m, d)).days
    except ValueError:
        return None


def _yt_dlp(settings: Settings) -> list[Check]:
    from yt_dlp.version import __version__ as version

    age = yt_dlp_age(version, dt.date.today())
    checks = []
    if age is not None and age > YT_DLP_MAX_AGE_DAYS:
        checks.append(Check("yt-dlp", "warn", f"{version}, {age} days old", UPGRADE_FIX))
    else:
        checks.append(Check("yt-dlp", "ok", f"{version}" + (f", {age} days old" if age is not None else "")))
    try:
        checks.append(Check("yt-dlp-ejs", "ok", importlib.metadata.version("yt-dlp-ejs")))
    except importlib.metadata.PackageNotFoundError:
        checks.append(
            Check(
                "yt-dlp-ejs",
                "fail",
                "not installed: yt-dlp cannot solve YouTube's JavaScript challenges",
                "pip install 'yt-dlp[default,deno]'",
            )
        )
    return checks


def _js_runtime(settings: Settings) -> list[Check]:
    from .fetch import js_runtime

    try:
        rt = js_runtime(settings.query)
    except GenreError as exc:
        return [Check("js-runtime", "fail", str(exc), "fix query.js_runtime (NAME or NAME:PATH)")]
    how = f"query.js_runtime = {rt.setting!r}" if rt.setting else "the deno installed with the app"
    if rt.version is None:
        return [
            Check(
                "js-runtime",
                "fail",
                f"yt-dlp finds no {rt.name} ({how}), so YouTube formats go missing",
                "pip install 'yt-dlp[default,deno]' here, or set query.js_runtime = 'node:PATH'",
            )
        ]
    if not rt.supported:
        return [
            Check(
                "js-runtime",
                "fail",
                f"{rt.name} {rt.version} at {rt.path} is too old for yt-dlp ({how})",
                f"upgrade {rt.name}, or unset query.js_runtime to use the bundled deno",
            )
        ]
    return [Check("js-runtime", "ok", f"{rt.name} {rt.version} at {rt.path}, supported by yt-dlp ({how})")]


def _gpu_present() -> bool:
    return shutil.which("nvidia-smi") is not None or Path("/dev/nvidiactl").exists()


def _torch(settings: Settings) -> list[Check]:
    try:
        import torch
    except ImportError as exc:
        return [Check("torch", "fail", f"cannot import torch ({exc})", "pip install torch")]
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
    gpus = torch.cuda.device_count() if torch.version.cuda else 0
    detail = f"{torch.__version__}, {build}, {gpus} GPU{'s' if gpus != 1 else ''} visible"
    if not torch.version.cuda and _gpu_present():
        torch_check = Check(
            "torch",
            "warn",
            f"{detail}, but this machine has an NVIDIA GPU",
            "install a CUDA build: pip install torch --index-url https://download.pytorch.org/whl/cu128",
        )
    elif torch.version.cuda and gpus == 0 and _gpu_present():
        torch_check = Check("torch", "warn", f"{detail}: CUDA sees no GPU", "check the driver: nvidia-smi")
    else:
        torch_check = Check("torch", "ok", detail)
    done: list[str] = []
    failed: list[str] = []
    for device in ["cpu", *(f"cuda:{i}" for i in range(gpus))]:
        try:
            value = (torch.arange(4.0, device=device) * 2).sum().item()
            (done if value == 12.0 else failed).append(device)
        except Exception as exc:  # a broken driver raises many kinds
            failed.append(f"{device} ({str(exc).splitlines()[0]})")
    if failed:
        ops = Check("tensor-ops", "fail", f"failed on {', '.join(failed)}", "reinstall torch for this box")
    else:
        ops = Check("tensor-ops", "ok", f"a tiny tensor op runs on {', '.join(done)}")
    return [torch_check, ops]


def _sonic(settings: Settings) -> list[Check]:
    from .features.sonic import host_status

    needed = settings.features.backend == "sonic-annotator"
    missing = "fail" if needed else "warn"
    optional = "" if needed else " (optional: only features.backend = 'sonic-annotator' needs it)"
    try:
        host = host_status(settings.features.sonic_annotator)
    except GenreError as exc:
        what, _, fix = str(exc).partition(": ")
        return [Check("sonic-annotator", missing, what + optional, fix)]
    checks = [Check("sonic-annotator", "ok", f"{host.path} ({host.version})")]
    if host.missing:
        detail = f"missing {', '.join(host.missing)}{optional}"
        checks.append(Check("vamp-plugins", missing, detail, host.problem() or ""))
    else:
        where = f"VAMP_PATH={host.vamp_path}" if host.vamp_path else "the default Vamp folders"
        checks.append(Check("vamp-plugins", "ok", f"{', '.join(host.transforms)} (from {where})"))
    return checks
