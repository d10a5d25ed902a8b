import re
from pathlib import Path

import pytest

from genre_erkennung.core import config
from genre_erkennung.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults() -> None:
    s = config.load()
    assert s.audio.sample_rate == 44100
    assert s.audio.chunk_seconds == 30.0
    assert s.audio.min_chunk_seconds == 10.0
    assert s.features.backend == "native"
    assert s.training.model == "merged"
    assert s.training.batch_size == 50


def test_sample_config_loads_and_documents_every_key() -> None:
    sample = ROOT / "sample_config.toml"
    loaded = config.load(sample)
    assert config.as_dict(loaded) == config.as_dict(config.Settings())
    text = sample.read_text()
    section = ""
    documented = set()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if m := re.match(r"\[(\w+)\]", line):
            section = m.group(1) + "."
        elif m := re.match(r"(\w+) = ", line):
            assert lines[i - 1].startswith("#"), f"{line!r} has no comment above it"
            documented.add(section + m.group(1))
    assert documented == {key for key, _, _ in config.describe()}


def test_user_config_then_file_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GENRE_NO_USER_CONFIG")
    user = config.user_config_path()
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text("[training]\nepochs = 7\nbatch_size = 9\n")
    extra = tmp_path / "c.toml"
    extra.write_text("[training]\nepochs = 8\n")
    s = config.load(extra)
    assert (s.training.epochs, s.training.batch_size) == (8, 9)
    config.override(s, "training.epochs", 3)
    config.override(s, "training.batch_size", None)
    assert (s.training.epochs, s.training.batch_size) == (3, 9)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[audio]\nsample_rat = 1\n", r"unknown key 'audio.sample_rat'"),
        ("[audio]\nsample_rate = 'fast'\n", r"audio.sample_rate must be an integer"),
        ("[audio]\nsample_rate = 100\n", r"audio.sample_rate must be between 8000 and 192000"),
        ("[training]\nmodel = 'cnn'\n", r"training.model must be one of merged, mfcc, contrast"),
        ("[training]\nbalance = 1\n", r"training.balance must be true or false"),
        ("audio = 3\n", r"\[audio\] must be a table"),
        ("[audio\n", r"not valid TOML"),
        ("[audio]\nchunk_seconds = 5\n", r"min_chunk_seconds \(10\) must not exceed"),
    ],
)
def test_bad_config_names_file_key_and_expectation(tmp_path: Path, text: str, expected: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=expected) as info:
        config.load(bad)
    assert str(bad) in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 2


def test_float_keys_take_integers(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[audio]\nchunk_seconds = 20\nmin_chunk_seconds = 5\n")
    assert config.load(f).audio.chunk_seconds == 20.0
