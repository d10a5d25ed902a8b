import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import make_audio

from genre_erkennung.core import audio
from genre_erkennung.core.errors import AudioError, GenreError

SR = 44100


def _raw_channels(path: Path, channels: int) -> np.ndarray:
    """Decode keeping every channel (no mixing at all) as the reference."""
    cmd = [
        audio.find_ffmpeg(),
        "-nostdin",
        "-loglevel",
        "error",
        "-i",
        audio.ffmpeg_input(path),
        "-f",
        "f32le",
        "-acodec",
        "pcm_f32le",
        "-ar",
        str(SR),
        "pipe:1",
    ]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype="<f4").reshape(-1, channels)


def test_find_ffmpeg_and_probe(tmp_path: Path) -> None:
    song = make_audio(tmp_path / "a.mp3", 3.0, channels=2)
    info = audio.probe(song)
    assert info.channels == 2
    assert info.sample_rate == SR
    assert info.codec == "mp3"
    assert info.duration == pytest.approx(3.0, abs=0.1)


def test_stereo_mono_is_the_mean_not_ffmpeg_ac1(tmp_path: Path) -> None:
    left_right = tmp_path / "lr.wav"
    src = (
        f"sine=frequency=300:sample_rate={SR}:duration=2[l];"
        f"anoisesrc=sample_rate={SR}:duration=2:amplitude=0.5[r];[l][r]join=inputs=2:channel_layout=stereo"
    )
    subprocess.run(
        [
            audio.find_ffmpeg(),
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-filter_complex",
            src,
            "-c:a",
            "pcm_f32le",
            audio.ffmpeg_input(left_right),
        ],
        check=True,
    )
    both = _raw_channels(left_right, 2)
    assert np.abs(both[:, 0] - both[:, 1]).max() > 0.1  # the channels really differ
    mono = audio.decode(left_right, SR)
    np.testing.assert_allclose(mono, both.mean(axis=1), atol=1e-7)
    scaled = subprocess.run(
        [
            audio.find_ffmpeg(),
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            audio.ffmpeg_input(left_right),
            "-ac",
            "1",
            "-f",
            "f32le",
            "pipe:1",
        ],
        capture_output=True,
        check=True,
    ).stdout
    ac1 = np.frombuffer(scaled, dtype="<f4")
    assert not np.allclose(ac1, mono, atol=1e-3), "-ac 1 differs from the mean; we must not match it"


def test_six_channels_are_averaged(tmp_path: Path) -> None:
    song = make_audio(tmp_path / "surround.flac", 1.0, channels=6, kind="white")
    info = audio.probe(song)
    assert info.channels == 6
    np.testing.assert_allclose(audio.decode(song, SR), _raw_channels(song, 6).mean(axis=1), atol=1e-6)


def test_resamples_to_the_configured_rate(tmp_path: Path) -> None:
    song = make_audio(tmp_path / "a.wav", 2.0, sample_rate=22050)
    assert len(audio.decode(song, SR)) == pytest.approx(2 * SR, abs=64)


def test_chunks_pad_long_tails_and_drop_short_ones(tmp_path: Path) -> None:
    song = make_audio(tmp_path / "a.wav", 25.0)
    chunks = list(audio.chunks(song, SR, 10.0, 4.0))
    assert [c.start for c in chunks] == [0.0, 10.0, 20.0]
    assert [c.length for c in chunks] == [10 * SR, 10 * SR, 5 * SR]
    assert all(len(c.samples) == 10 * SR for c in chunks)
    assert not chunks[-1].samples[5 * SR :].any()
    assert len(list(audio.chunks(song, SR, 10.0, 6.0))) == 2


def test_streaming_blocks_concatenate_to_the_whole(tmp_path: Path) -> None:
    song = make_audio(tmp_path / "a.ogg", 5.0, kind="pink")
    blocks = list(audio.stream(song, SR, 10_000))
    assert all(len(b) == 10_000 for b in blocks[:-1])
    np.testing.assert_array_equal(np.concatenate(blocks), audio.decode(song, SR))


@pytest.mark.parametrize(
    "name", ["-starts with dash.mp3", "Nachtfahrt über die Brücke [live] 'x'.mp3", "a:b.mp3", "--help.wav"]
)
def test_awkward_file_names(tmp_path: Path, name: str) -> None:
    song = make_audio(tmp_path / name, 2.0)
    assert audio.probe(song).duration == pytest.approx(2.0, abs=0.1)
    assert len(audio.decode(song, SR)) > SR


def test_zero_byte_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp3"
    empty.touch()
    with pytest.raises(AudioError, match="empty file"):
        audio.probe(empty)


def test_text_renamed_mp3(tmp_path: Path) -> None:
    fake = tmp_path / "fake.mp3"
    fake.write_text("this is not music\n" * 100)
    with pytest.raises(AudioError, match=r"not readable audio|no audio") as info:
        audio.probe(fake)
    assert "\n" not in str(info.value)


def test_truncated_mp3_decodes_what_is_there(tmp_path: Path) -> None:
    song = make_audio(tmp_path / "full.mp3", 20.0)
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(song.read_bytes()[: song.stat().st_size // 2])
    samples = audio.decode(cut, SR)
    assert 8 * SR < len(samples) < 12 * SR


def test_two_second_song_is_too_short(tmp_path: Path) -> None:
    song = make_audio(tmp_path / "short.mp3", 2.0)
    with pytest.raises(AudioError, match="too short"):
        list(audio.chunks(song, SR, 30.0, 10.0))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="no such file"):
        audio.probe(tmp_path / "nope.mp3")


def test_write_wav_is_float32(tmp_path: Path) -> None:
    x = (np.random.default_rng(0).standard_normal(1000) * 1e-4).astype(np.float32)
    audio.write_wav(tmp_path / "x.wav", x, SR)
    np.testing.assert_array_equal(audio.decode(tmp_path / "x.wav", SR), x)
    assert audio.probe(tmp_path / "x.wav").codec == "pcm_f32le"


def test_a_killed_decoder_is_an_error_not_a_short_song(tmp_path: Path) -> None:
    """ffmpeg stopped by a signal mid-file must not look like the song's end (a truncated entry)."""
    song = make_audio(tmp_path / "long.wav", 40.0, kind="pink")
    chunks = audio.chunks(song, SR, 10.0, 1.0)
    next(chunks)
    victims = subprocess.run(["pgrep", "-f", "-n", str(song)], capture_output=True, text=True).stdout.split()
    assert victims
    os.kill(int(victims[0]), signal.SIGKILL)
    with pytest.raises(GenreError, match="stopped by signal 9"):
        list(chunks)
