"""Typed settings, loaded from TOML with validation.

Precedence: built-in defaults < user config (platformdirs) < `--config FILE` < command-line flags.
Every problem names the file, the key and what is expected, in one line.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from .errors import ConfigError

APP_NAME = "genre-erkennung"


def _opt(
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] | None = None,
    doc: str = "",
) -> Any:
    """A dataclass field that carries its validation rule."""
    meta = {"low": low, "high": high, "choices": choices, "doc": doc}
    return field(default=default, metadata=meta)


@dataclass
class AudioSettings:
    sample_rate: int = _opt(44100, low=8000, high=192000, doc="decode rate in Hz")
    chunk_seconds: float = _opt(30.0, low=1.0, high=600.0, doc="chunk length in seconds")
    min_chunk_seconds: float = _opt(10.0, low=0.1, high=600.0, doc="shortest tail chunk kept")


@dataclass
class FeatureSettings:
    backend: str = _opt("native", choices=("native", "sonic-annotator", "musicnn"))
    sonic_annotator: str = _opt("", doc="path of the sonic-annotator binary ('' = search PATH)")
    device: str = _opt("auto", choices=("auto", "cpu", "cuda"))
    musicnn: str = _opt("msd", choices=("msd", "mtt"), doc="musicnn weights: msd or mtt")
    musicnn_resampler: str = _opt(
        "soxr-hq", choices=("soxr-hq", "kaiser-best"), doc="musicnn's resampler to 16 kHz"
    )


@dataclass
class ExtractionSettings:
    workers: int = _opt(0, low=0, high=256, doc="decode processes (0 = all cores)")


@dataclass
class TrainingSettings:
    model: str = _opt("merged", choices=("merged", "mfcc", "contrast", "linear", "mlp"))
    epochs: int = _opt(50, low=1, high=10000)
    batch_size: int = _opt(50, low=1, high=65536)
    learning_rate: float = _opt(1e-3, low=1e-7, high=10.0)
    seed: int = _opt(0, low=0, high=2**32 - 1)
    patience: int = _opt(10, low=1, high=10000)
    early_stop: str = _opt(
        "loss", choices=("loss", "accuracy"), doc="what early stopping watches on the validation chunks"
    )
    validation_share: float = _opt(0.15, low=0.0, high=0.9)
    validation_group: str = _opt(
        "song",
        choices=("song", "folder", "artist", "album"),
        doc="what the validation songs are kept apart by (folder: ROOT/train/<genre>/<folder>/)",
    )
    augment_gain_db: float = _opt(
        0.0, low=0.0, high=24.0, doc="random gain per training chunk, up to +-this many dB (0 = off)"
    )
    time_mask: float = _opt(0.0, low=0.0, high=0.5, doc="blank up to this share of each training chunk")
    ensemble: int = _opt(
        1, low=1, high=32, doc="members trained with other seeds and validation songs; queries average them"
    )
    device: str = _opt("auto", choices=("auto", "cpu", "cuda"))
    balance: bool = _opt(True, doc="class weights in the loss when genres are imbalanced")
    threads: int = _opt(0, low=0, high=256, doc="CPU torch threads (0 = measure 1 vs 2)")


@dataclass
class ModelSettings:
    """Layer widths and dropout rates (the defaults are the original pipeline's)."""

    mfcc_conv: int = _opt(100, low=1, high=4096, doc="filters of the first MFCC convolution")
    mfcc_bottleneck: int = _opt(20, low=1, high=4096, doc="filters of the second MFCC convolution")
    mfcc_lstm: int = _opt(300, low=1, high=4096, doc="MFCC branch LSTM units")
    mfcc_dropout: float = _opt(0.4, low=0.0, high=0.95)
    contrast_conv: int = _opt(100, low=1, high=4096, doc="spectral-contrast convolution filters")
    contrast_lstm: int = _opt(100, low=1, high=4096, doc="spectral-contrast LSTM units")
    contrast_dropout: float = _opt(0.2, low=0.0, high=0.95)
    head: int = _opt(1000, low=1, high=65536, doc="units of the merged head's hidden layer")


@dataclass
class QuerySettings:
    model: str = _opt("", doc="model used when --model is not given ('' = newest)")
    max_items: int = _opt(20, low=1, high=10000, doc="playlist entries fetched at most")
    js_runtime: str = _opt("", doc="yt-dlp's JavaScript runtime as NAME[:PATH] ('' = the bundled deno)")
    cookies: str = _opt("", doc="Netscape cookie file for sites that ask you to sign in ('' = none)")
    max_seconds: float = _opt(10800.0, low=1.0, high=864000.0, doc="longest recording fetched (s)")
    max_megabytes: float = _opt(1000.0, low=0.01, high=1e6, doc="largest download (MB)")

    min_confidence: float = _opt(
        0.0, low=0.0, high=1.0, doc="below this calibrated mean probability a song is 'uncertain'"
    )


@dataclass
class ClusterSettings:
    """Where extraction and folder queries run: here, or on a Ray cluster (`genre-erkennung[cluster]`)."""

    engine: str = _opt("local", choices=("local", "ray"), doc="local processes, or tasks on Ray")
    address: str = _opt("", doc="Ray cluster to join, e.g. 10.0.0.1:6379 ('' = start one here)")
    task_cpus: float = _opt(1.0, low=0.1, high=256.0, doc="CPUs Ray reserves for each song")
    task_gpus: float = _opt(0.0, low=0.0, high=16.0, doc="GPUs Ray reserves for each song (features there)")
    ship: str = _opt("auto", choices=("auto", "bytes"), doc="auto or bytes: when to send songs to workers")


@dataclass
class Settings:
    workspace: str = _opt("", doc="where features, models and downloads live ('' = default)")
    dataset: str = _opt("", doc="dataset root holding train/ and test/")
    audio: AudioSettings = field(default_factory=AudioSettings)
    features: FeatureSettings = field(default_factory=FeatureSettings)
    extraction: ExtractionSettings = field(default_factory=ExtractionSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    query: QuerySettings = field(default_factory=QuerySettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)


def user_config_path() -> Path:
    """The per-user config file (it need not exist)."""
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[tp]


def _check_value(source: str, key: str, value: Any, f: dataclasses.Field) -> Any:
    tp = _TYPES[f.type] if isinstance(f.type, str) else f.type
    meta = f.metadata
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, tp) and not (tp is not bool and isinstance(value, bool))
    if not ok:
        raise ConfigError(f"{source}: {key} must be {_type_name(tp)}, got {value!r}")
    if meta.get("choices") and value not in meta["choices"]:
        choices = ", ".join(meta["choices"])
        raise ConfigError(f"{source}: {key} must be one of {choices}, got {value!r}")
    low, high = meta.get("low"), meta.get("high")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{source}: {key} must be between {low:g} and {high:g}, got {value!r}")
    return value


def _apply(obj: Any, data: dict[str, Any], source: str, prefix: str = "") -> None:
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{source}: unknown key {dotted!r} (known here: {known})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: [{dotted}] must be a table, got {value!r}")
            _apply(current, value, source, f"{dotted}.")
        else:
            setattr(obj, key, _check_value(source, dotted, value, fields[key]))


def _check_consistency(s: Settings, source: str) -> None:
    if s.audio.min_chunk_seconds > s.audio.chunk_seconds:
        raise ConfigError(
            f"{source}: audio.min_chunk_seconds ({s.audio.min_chunk_seconds:g}) must not exceed "
            f"audio.chunk_seconds ({s.audio.chunk_seconds:g})"
        )


def load_file(settings: Settings, path: Path) -> None:
    """Overlay one TOML file onto `settings`."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    _apply(settings, data, str(path))
    _check_consistency(settings, str(path))


def override(settings: Settings, dotted: str, value: Any) -> None:
    """Apply a command-line flag (`None` means: not given)."""
    if value is None:
        return
    *parents, key = dotted.split(".")
    obj = settings
    for p in parents:
        obj = getattr(obj, p)
    f = {f.name: f for f in dataclasses.fields(obj)}[key]
    setattr(obj, key, _check_value("command line", dotted, value, f))
    _check_consistency(settings, "command line")


def config_files(config: Path | None = None, *, use_user_config: bool = True) -> list[Path]:
    """The files `load` reads, lowest precedence first."""
    files = []
    user = user_config_path()
    if use_user_config and not os.environ.get("GENRE_NO_USER_CONFIG") and user.is_file():
        files.append(user)
    if config is not None:
        files.append(Path(config))
    return files


def load(config: Path | None = None, *, use_user_config: bool = True) -> Settings:
    """Defaults, then the user's config file, then `config`. Flags are applied by the caller."""
    settings = Settings()
    for path in config_files(config, use_user_config=use_user_config):
        load_file(settings, path)
    return settings


def key_source(dotted: str, config: Path | None = None) -> Path | None:
    """The config file whose value of `dotted` (e.g. query.model) is in effect; None: the default.
    For messages that must say where a setting came from (the files were already validated)."""
    for path in reversed(config_files(config)):
        try:
            data: Any = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        for part in dotted.split("."):
            data = data.get(part) if isinstance(data, dict) else None
        if data is not None:
            return path
    return None


def as_dict(settings: Any) -> dict[str, Any]:
    """Plain dict of a settings dataclass (for model cards and JSON)."""
    return dataclasses.asdict(settings)


def describe() -> list[tuple[str, Any, str]]:
    """(key, default, doc) of every setting, for docs and the sample-config test."""
    rows: list[tuple[str, Any, str]] = []

    def walk(obj: Any, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            else:
                rows.append((f"{prefix}{f.name}", value, f.metadata.get("doc", "")))

    walk(Settings(), "")
    return rows
