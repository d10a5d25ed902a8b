"""The sonic-annotator backend against the real host and Vamp plugins (../shared/vamp in CI).

Every test needs `sonic-annotator` on PATH and both plugin libraries on VAMP_PATH (`make test`
sets both where ../shared/vamp or $GENRE_SHARED/vamp exists); without them they skip with the
reason, and under CI=true they fail. Failure paths run the real host behind a small shell script
that logs each call and then sabotages it (a kill, a crash, a damaged temp WAV) before or while
the real binary runs.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import genre_in_process, make_dataset
from test_features_native import assert_parity

from genre_erkennung.core import audio, demo, store
from genre_erkennung.core.config import Settings
from genre_erkennung.core.dataset import content_key, scan
from genre_erkennung.core.errors import Cancelled, ToolMissing
from genre_erkennung.core.extract import extract, extract_song
from genre_erkennung.core.features import TRANSFORMS, frame_counts, sonic
from genre_erkennung.core.features.native import NativeBackend
from genre_erkennung.core.features.sonic import SonicBackend, csv_name, host_status
from genre_erkennung.core.workspace import Workspace

pytestmark = pytest.mark.usefixtures("sonic_host")

DATA = Path(__file__).resolve().parent / "data"
GOLDEN_FILES = sorted((DATA / "golden").glob("*.npz"))
KEYS = ("mfcc", "sc_peaks", "sc_valleys")
CODECS = {"mp3": ["-c:a", "libmp3lame", "-b:a", "192k"], "flac": ["-c:a", "flac", "-sample_fmt", "s16"]}


def music(path: Path, genre: str, seconds: float, sample_rate: int, channels: int = 2, seed: int = 0) -> Path:
    """A demo song (drums, bass, chords: music-like spectra) encoded by ffmpeg as `path`."""
    mix = demo.render(genre, seconds, sample_rate, (seed,))
    if channels == 1:
        mix = mix.mean(axis=0, keepdims=True)
    cmd = [audio.find_ffmpeg(), "-nostdin", "-loglevel", "error", "-y", "-f", "f32le"]
    cmd += ["-ar", str(sample_rate), "-ac", str(channels), "-i", "pipe:0", *CODECS[path.suffix[1:]]]
    pcm = np.ascontiguousarray(mix.T, dtype="<f4").tobytes()
    subprocess.run([*cmd, audio.ffmpeg_input(path)], input=pcm, check=True)
    return path


def wrapper(tmp: Path, sonic_host: str, sabotage: str = "") -> tuple[Path, Path]:
    """A script to set as features.sonic_annotator: logs each call, runs `sabotage` (shell, with
    $OUT = the --csv-basedir and $WAVS = the inputs), then execs the real host. Returns the
    script and the log (one line per call: its arguments)."""
    log = tmp / "host-calls.log"
    script = tmp / "sonic-annotator-wrapper"
    script.write_text(
        "#!/bin/bash\n"
        f"printf '%s\\n' \"$*\" >> {shlex.quote(str(log))}\n"
        'OUT=""; WAVS=(); prev=""\n'
        'for a in "$@"; do [ "$prev" = --csv-basedir ] && OUT=$a; [[ $a == *.wav ]] && WAVS+=("$a");'
        " prev=$a; done\n"
        "ulimit -c 0\n"  # a crash below must not leave a core file
        f"if [ ${{#WAVS[@]}} -gt 0 ]; then\n:\n{sabotage}\nfi\n"
        f'exec {shlex.quote(sonic_host)} "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, log


def runs(log: Path) -> list[str]:
    """The logged calls that computed features (not `-l` or `-v`)."""
    return [line for line in log.read_text().splitlines() if ".wav" in line] if log.exists() else []


def signal_once(marker: Path, sig: str) -> str:
    """Sabotage: on the first run only (`marker` made atomically), send `sig` to the host once it
    writes its first CSV."""
    m = shlex.quote(str(marker))
    return (
        f"if mkdir {m} 2>/dev/null; then me=$$\n"  # mkdir: only one of two hosts starting at once wins
        '  ( for i in $(seq 1000); do ls "$OUT"/*.csv >/dev/null 2>&1 && break; sleep 0.01; done;'
        f" kill -{sig} $me ) &\nfi"
    )


def settings_with(host: Path | str, chunk: float = 2.0, workers: int = 2) -> Settings:
    s = Settings()
    s.audio.chunk_seconds, s.audio.min_chunk_seconds = chunk, 1.0
    s.features.backend, s.features.sonic_annotator = "sonic-annotator", str(host)
    s.extraction.workers = workers
    return s


def leftovers(folder: Path) -> list[str]:
    """Files in a store folder besides entries, failure records, its manifest and its lock file:
    what a failed song must not leave (scratch files, a partial entry)."""
    keep = ("config.json", ".locks")
    return sorted(
        p.name
        for p in folder.iterdir()
        if not (p.suffix == ".npz" or p.name.endswith(".failed.json") or p.name in keep)
    )


# --- the numbers ------------------------------------------------------------------------------


def test_host_status_lists_both_plugins(sonic_host: str) -> None:
    status = host_status()
    assert status.path == sonic_host and status.version[0].isdigit()
    assert status.missing == [] and status.problem() is None
    assert set(status.transforms) == set(TRANSFORMS)


@pytest.mark.parametrize("npz", GOLDEN_FILES, ids=lambda p: p.stem)
def test_golden_files(npz: Path) -> None:
    """The host on our decode of each golden WAV gives the golden numbers (SPEC.md section 6)."""
    gold = np.load(npz)
    ours = SonicBackend().whole_file(npz.with_suffix(".wav"), None)
    assert int(ours["n_samples"]) == int(gold["n_samples"])
    for key in ("mfcc_timestamps", "sc_timestamps"):
        assert ours[key].shape == gold[key].shape and np.abs(ours[key] - gold[key]).max() <= 1e-6
    for key in KEYS:
        assert_parity(ours[key], gold[key], f"{npz.stem} {key}")
        # the same plugins: equal to the CSVs' 6 significant digits, not just within tolerance
        np.testing.assert_allclose(ours[key], gold[key], rtol=5.01e-6, atol=1e-30, err_msg=key)


SONGS = [  # (name, genre, seconds, source rate, channels): odd lengths, both codecs, three rates
    ("rock.mp3", "rock", 9.137, 44100, 2),
    ("jazz.flac", "jazz", 8.713, 48000, 2),
    ("electronic.flac", "electronic", 7.071, 22050, 1),
    ("ambient.mp3", "ambient", 6.389, 22050, 2),
]


@pytest.fixture(scope="module")
def songs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("music")
    return {
        name: music(base / name, g, sec, sr, ch, seed=i) for i, (name, g, sec, sr, ch) in enumerate(SONGS)
    }


@pytest.mark.parametrize("name", [s[0] for s in SONGS])
def test_equals_native_on_music(name: str, songs: dict[str, Path]) -> None:
    """Whole file at its own rate, and its 2-s chunks at 44.1 kHz: the host's arrays equal the
    native backend's within the parity tolerances."""
    path = songs[name]
    sonic, native = SonicBackend(), NativeBackend(torch.device("cpu"))
    ours, theirs = native.whole_file(path, None), sonic.whole_file(path, None)
    assert int(theirs["sample_rate"]) == audio.probe(path).sample_rate
    for key in (*KEYS, "mfcc_timestamps", "sc_timestamps"):
        assert theirs[key].shape == ours[key].shape, key
    for key in KEYS:
        assert_parity(ours[key], theirs[key], f"{name} {key} (whole file)")
    chunks = np.stack([c.samples for c in audio.chunks(path, 44100, 2.0, 1.0)])
    a, b = native.batch(chunks, 44100), sonic.batch(chunks, 44100)
    assert b.mfcc.shape == (len(chunks), frame_counts(88200)[0], 20)
    for key in ("mfcc", "peaks", "valleys"):
        x, y = getattr(a, key), getattr(b, key)
        assert_parity(x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1]), f"{name} {key} (chunks)")


def host_csvs(sonic_host: str, song: Path, out: Path) -> None:
    out.mkdir()
    cmd = [sonic_host, *(a for t in TRANSFORMS for a in ("-d", t)), "-w", "csv", "--csv-basedir", str(out)]
    subprocess.run([*cmd, str(song)], check=True, capture_output=True)


def test_features_csv_matches_the_host(sonic_host: str, songs: dict[str, Path], tmp_path: Path) -> None:
    """`genre features --format csv` against sonic-annotator run on the file itself: the native
    backend within the tolerances, the sonic-annotator backend byte for byte."""
    song = songs["jazz.flac"]  # libsndfile reads FLAC, so the host decodes it by itself
    host_csvs(sonic_host, song, tmp_path / "host")
    for backend in ("native", "sonic-annotator"):
        out = tmp_path / backend
        args = ["features", song, "--out", out, "--format", "csv", "--sample-rate", "48000"]
        result = genre_in_process(*args, "--backend", backend, check=True)
        assert result.stdout.split() == [str(out / csv_name(song.stem, t)) for t in TRANSFORMS]
        for t in TRANSFORMS:
            ours = (out / csv_name(song.stem, t)).read_text()
            host = (tmp_path / "host" / csv_name(song.stem, t)).read_text()
            if backend == "sonic-annotator":
                assert ours == host, t
                continue
            rows = [np.array(r.split(","), dtype=np.float64) for r in ours.splitlines()]
            want = [np.array(r.split(","), dtype=np.float64) for r in host.splitlines()]
            assert len(rows) == len(want), t
            np.testing.assert_allclose(np.stack(rows)[:, 0], np.stack(want)[:, 0], atol=1e-6)
            assert_parity(np.stack(rows)[:, 1:], np.stack(want)[:, 1:], f"{t} csv")


def test_golden_csvs_byte_for_byte(tmp_path: Path) -> None:
    """The stored CSVs came from this host on noise_oddlen_44k.wav; our whole-file path through
    ffmpeg, a float WAV and the host writes the same bytes."""
    wav = DATA / "golden" / "noise_oddlen_44k.wav"
    args = ["features", wav, "--out", tmp_path, "--format", "csv", "--backend", "sonic-annotator"]
    genre_in_process(*args, "--sample-rate", "44100", check=True)
    for t in TRANSFORMS:
        name = csv_name(wav.stem, t)
        assert (tmp_path / name).read_bytes() == (DATA / "sonic-annotator-csv" / name).read_bytes(), t


# --- the pipeline -----------------------------------------------------------------------------

GENRES = {"sinus": ("sine", 330.0), "rauschen": ("white", 0.0)}


def test_extract_train_query_end_to_end(sonic_host: str, tmp_path: Path) -> None:
    """`genre extract` with features.backend = "sonic-annotator" fills its own store with one
    host process per song (all three transforms each); `genre train` and `genre query` use it."""
    ds = make_dataset(tmp_path / "ds", GENRES, per_split=(3, 1), seconds=5.0)
    host, log = wrapper(tmp_path, sonic_host)
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[audio]\nchunk_seconds = 2.0\nmin_chunk_seconds = 1.0\n[features]\nbackend = "sonic-annotator"\n'
        f"sonic_annotator = {json.dumps(str(host))}\n[extraction]\nworkers = 2\n"
        "[training]\nepochs = 4\npatience = 4\nbatch_size = 8\nthreads = 1\n"
    )
    ws = tmp_path / "ws"
    common = ["--config", cfg, "--workspace", ws]
    extracted = genre_in_process("extract", "--dataset", ds, *common, check=True)
    assert "8 extracted" in extracted.stderr
    calls = runs(log)
    for call in calls:  # all three transforms in each process
        assert [t for t in TRANSFORMS if f"-d {t}" in call] == list(TRANSFORMS)
        assert "--csv-stdout" not in call
    native = Settings()
    native.audio.chunk_seconds, native.audio.min_chunk_seconds = 2.0, 1.0
    (folder,) = (ws / "features").iterdir()
    assert folder.name != store.config_key(native)  # a separate config key
    assert json.loads((folder / "config.json").read_text())["backend"] == "sonic-annotator"
    assert len(list(folder.glob("*.npz"))) == 8 and leftovers(folder) == []
    chunks = [int(np.load(p)["lengths"].shape[0]) for p in folder.glob("*.npz")]
    assert sorted(c.count(".wav") for c in calls) == sorted(chunks)  # one process per song

    trained = genre_in_process("train", "--dataset", ds, *common, "--name", "sonic", check=True)
    assert "saved model sonic" in trained.stderr
    card = json.loads((ws / "models" / "sonic" / "model.json").read_text())
    assert card["features"]["backend"] == "sonic-annotator"
    assert card["features"]["config_key"] == folder.name

    known = ds / "test" / "sinus" / "sinus song 0.mp3"
    new = make_dataset(tmp_path / "new", {"sinus": ("sine", 350.0)}, per_split=(1, 0), seconds=4.0)
    new_song = next((new / "train" / "sinus").iterdir())
    queried = genre_in_process("query", known, new_song, "--model", "sonic", "--json", *common, check=True)
    doc = json.loads(queried.stdout)
    assert doc["model"] == "sonic" and doc["errors"] == []
    assert [r["verdict"]["majority"] for r in doc["results"]] == ["sinus", "sinus"]
    assert len(runs(log)) == 9  # the stored song was not computed again, the new one once


# --- failures ---------------------------------------------------------------------------------


def extract_dataset(tmp: Path, settings: Settings, songs: int, seconds: float):
    ds = make_dataset(tmp / "ds", {"x": ("white", 0.0)}, per_split=(songs, 0), seconds=seconds)
    ws = Workspace(tmp / "ws")
    return (lambda **kw: extract(scan(ds).songs, settings, ws, **kw)), ws


@pytest.mark.parametrize("sig", ["KILL", "SEGV"])
def test_killed_or_crashed_host_fails_one_song_and_the_batch_goes_on(
    sig: str, sonic_host: str, tmp_path: Path
) -> None:
    """Killed from outside: the song fails this run and is retried by the next. Crashed: the
    failure is recorded (like a bad file) until --retry-failed. Neither leaves a partial entry."""
    host, log = wrapper(tmp_path, sonic_host, signal_once(tmp_path / "signalled", sig))
    run, _ = extract_dataset(tmp_path, settings_with(host), songs=3, seconds=16.0)  # 8-9 chunks
    result = run()
    assert result.done == 2 and len(result.failed) == 1, result.failed
    (path, reason), name = result.failed[0], signal.Signals[f"SIG{sig}"].name
    assert name in reason and "\n" not in reason
    folder = result.store
    assert len(list(folder.glob("*.npz"))) == 2 and leftovers(folder) == []
    again = run()
    if sig == "KILL":
        assert "killed" in reason and not list(folder.glob("*.failed.json"))
        assert (again.done, again.cached, again.failed) == (1, 2, [])
    else:
        assert "crashed" in reason and "--retry-failed" in reason
        assert again.done == 0 and again.failed == [(path, reason)]  # recorded, not rerun
        retried = run(retry_failed=True)
        assert (retried.done, retried.cached, retried.failed) == (1, 2, [])
    assert len(runs(log)) == 4


@pytest.mark.parametrize(
    "damage",
    [
        'head -c 4000 "${WAVS[1]}" > "$OUT/../cut" && mv "$OUT/../cut" "${WAVS[1]}"',  # header says more
        'printf "not a wav file" > "${WAVS[1]}"',
    ],
    ids=["truncated", "garbage"],
)
def test_a_temp_wav_it_cannot_read_leaves_no_entry(damage: str, sonic_host: str, tmp_path: Path) -> None:
    host, _ = wrapper(tmp_path, sonic_host, damage)
    run, _ = extract_dataset(tmp_path, settings_with(host), songs=1, seconds=6.0)
    result = run()
    assert result.done == 0 and len(result.failed) == 1
    reason = result.failed[0][1]
    assert "sonic-annotator" in reason and "chunk-00001" in reason and "\n" not in reason, reason
    assert not list(result.store.glob("*.npz")) and leftovers(result.store) == []


def test_cancel_kills_the_host(sonic_host: str, tmp_path: Path) -> None:
    """Cancelling mid-song stops the running host at once: no entry, no process left."""
    pid_file = tmp_path / "host.pid"
    host, _ = wrapper(tmp_path, sonic_host, f"echo $$ > {shlex.quote(str(pid_file))}")
    settings = settings_with(host, chunk=3.0)
    song = make_dataset(tmp_path / "ds", {"x": ("pink", 0.0)}, per_split=(1, 0), seconds=60.0)
    song = next((song / "train" / "x").iterdir())
    st = store.store_for(Workspace(tmp_path / "ws").ensure(), settings)
    cancel = threading.Event()

    def cancel_when_the_host_runs() -> None:
        while not pid_file.exists() or not pid_file.read_text().strip():
            time.sleep(0.01)
        cancel.set()

    threading.Thread(target=cancel_when_the_host_runs, daemon=True).start()
    with pytest.raises(Cancelled):
        extract_song(song, content_key(song), st, settings, SonicBackend(str(host)), cancel)
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(int(pid_file.read_text()), 0)
    assert not list(st.folder.glob("*.npz")) and leftovers(st.folder) == []


def test_missing_plugin_names_the_transform_and_vamp_path(
    sonic_host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """VAMP_PATH pointing elsewhere: one error line that names the transforms and VAMP_PATH,
    before any song is touched; with one library present, only the other one's transforms."""
    real = Path(os.environ["VAMP_PATH"].split(os.pathsep)[0])
    only_qm = tmp_path / "only-qm"
    only_qm.mkdir()
    for f in real.glob("qm-vamp-plugins.*"):
        (only_qm / f.name).symlink_to(f)
    song = DATA / "golden" / "chord_44k.wav"
    for vamp_path, missing in ((tmp_path / "nowhere", TRANSFORMS), (only_qm, TRANSFORMS[1:])):
        monkeypatch.setenv("VAMP_PATH", str(vamp_path))
        args = ["features", song, "--out", tmp_path / "x.npz", "--backend", "sonic-annotator"]
        result = genre_in_process(*args)
        assert result.returncode == 1 and not (tmp_path / "x.npz").exists()
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and f"VAMP_PATH={vamp_path}" in line, line
        assert [t for t in TRANSFORMS if t in line] == list(missing), line
        assert ("and qm-vamp-plugins" in line) == (len(missing) == 3) and "install bbc-vamp-plugins" in line
    ds = make_dataset(tmp_path / "ds", {"x": ("white", 0.0)}, per_split=(1, 0), seconds=11.0)
    extracted = genre_in_process(
        "extract", "--dataset", ds, "--workspace", tmp_path / "ws", "--backend", "sonic-annotator"
    )
    assert extracted.returncode == 1 and "error: " in extracted.stderr
    assert TRANSFORMS[1] in extracted.stderr and "VAMP_PATH" in extracted.stderr
    assert not list((tmp_path / "ws").glob("features/*/*.npz"))
    with pytest.raises(ToolMissing, match="VAMP_PATH"):
        SonicBackend(sonic_host)


def test_a_long_mix_takes_one_run_per_chunks_per_run(
    sonic_host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mix longer than CHUNKS_PER_RUN chunks is split into runs (bounded temp space) that give
    the same numbers as one run."""
    host, log = wrapper(tmp_path, sonic_host)
    chunks = np.stack([c.samples for c in audio.chunks(DATA / "golden" / "sweep_44k.wav", 44100, 1.0, 0.5)])
    whole = SonicBackend(str(host)).batch(chunks, 44100)
    monkeypatch.setattr(sonic, "CHUNKS_PER_RUN", 2)
    split = SonicBackend(str(host)).batch(chunks, 44100)
    n = len(chunks)
    assert [c.count(".wav") for c in runs(log)] == [n] + [2] * (n // 2) + [1] * (n % 2)
    for key in ("mfcc", "peaks", "valleys"):
        np.testing.assert_array_equal(getattr(split, key), getattr(whole, key))
