"""Queries when things go wrong: other models' CSVs, fatal errors under --json, a model of another
feature backend, damaged store entries, a read-only workspace, a damaged download index, a
folder of junk and Ctrl-C in the middle of it (issue 17 items 2 and 4-8, issue 11 item 2)."""

from __future__ import annotations

import csv
import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import genre_in_process, make_audio
from query_helpers import fresh_workspace, tiny_model

from genre_erkennung.core import audio
from genre_erkennung.core.dataset import content_key

GENRE = Path(sys.executable).with_name("genre")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory)[0]


@pytest.fixture
def ws(trained: Path, tmp_path: Path) -> Path:
    return fresh_workspace(trained, tmp_path / "ws")


@pytest.fixture(scope="module")
def site(http_root: tuple[str, Path]) -> str:
    base, root = http_root
    make_audio(root / "robust tone.mp3", 5.0, freq=320.0)
    make_audio(root / "robust other.wav", 4.0, freq=360.0)
    return base


def _stderr_lines(proc: subprocess.CompletedProcess, prefix: str) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ln.startswith(prefix)]


def _copy_model(ws: Path, name: str, genres: list[str]) -> None:
    """Another model with the same weights under other genre names."""
    shutil.copytree(ws / "models" / "tiny", ws / "models" / name)
    card_path = ws / "models" / name / "model.json"
    card = json.loads(card_path.read_text())
    card["name"], card["genres"] = name, genres
    card_path.write_text(json.dumps(card))


def _entry(ws: Path, song: Path) -> Path:
    (path,) = ws.glob(f"features/*/{content_key(song)}.npz")
    return path


# --------------------------------------------------------------------------- 17.2 --csv


def test_csv_names_the_model_and_refuses_other_genres(ws: Path, tmp_path: Path) -> None:
    _copy_model(ws, "odd", ["chirp, jazz", 'say "hi"'])
    song = make_audio(tmp_path / "a.wav", 5.0, freq=300.0)
    votes = tmp_path / "votes.csv"
    genre_in_process("query", song, "--model", "tiny", "--workspace", ws, "--csv", votes, check=True)
    rows = pd.read_csv(votes)
    assert list(rows.columns) == [
        *("model", "source", "title", "chunk", "start", "end", "genre"),
        *("p_rauschen", "p_sinus"),
    ]
    assert set(rows["model"]) == {"tiny"} and len(rows) == 2
    before = votes.read_bytes()

    new_song = make_audio(tmp_path / "b.wav", 5.0, freq=280.0)
    refused = genre_in_process("query", new_song, "--model", "odd", "--workspace", ws, "--csv", votes)
    assert refused.returncode == 2 and refused.stdout == ""
    (line,) = refused.stderr.strip().splitlines()
    assert "write to a new file" in line and '"p_chirp, jazz"' in line
    assert votes.read_bytes() == before
    assert not list(ws.glob(f"features/*/{content_key(new_song)}.npz"))  # refused before any work

    fresh = tmp_path / "odd.csv"
    genre_in_process("query", song, "--model", "odd", "--workspace", ws, "--csv", fresh, check=True)
    text = fresh.read_text()
    assert '"p_chirp, jazz","p_say ""hi"""' in text.splitlines()[0]
    header, *body = list(csv.reader(text.splitlines()))
    assert header[-2:] == ["p_chirp, jazz", 'p_say "hi"'] and len(body) == 2
    assert all(len(r) == len(header) and r[0] == "odd" for r in body)
    assert {r[6] for r in body} <= {"chirp, jazz", 'say "hi"'}

    legacy = tmp_path / "legacy.csv"
    legacy.write_text("source,title,chunk,start,end,genre,p_sinus,p_rauschen\nx,x,0,0,3,sinus,1,0\n")
    old = genre_in_process("query", song, "--model", "tiny", "--workspace", ws, "--csv", legacy)
    assert old.returncode == 2 and "no model column" in old.stderr


# --------------------------------------------------------------------------- 17.7 --json


def test_json_is_one_document_even_on_fatal_errors(ws: Path, tmp_path: Path) -> None:
    song = make_audio(tmp_path / "a.wav", 4.0)
    cfg = tmp_path / "my config.toml"
    cfg.write_text('[query]\nmodel = "removed-since"\n')
    proc = genre_in_process("query", song, "--workspace", ws, "--config", cfg, "--json")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["model"] is None and doc["results"] == [] and doc["complete"] is False
    (error,) = doc["errors"]
    assert error["source"] is None
    assert error["error"].startswith(f"[query] model in {cfg}: no model named 'removed-since'")
    assert proc.stderr.strip() == f"error: {error['error']}"

    flag = genre_in_process("query", song, "--workspace", ws, "--model", "nope", "--json")
    assert json.loads(flag.stdout)["errors"][0]["error"].startswith("--model: no model named 'nope'")

    bad = tmp_path / "bad.toml"
    bad.write_text("[query]\nmodle = 1\n")
    config_error = genre_in_process("query", song, "--workspace", ws, "--config", bad, "--json")
    assert config_error.returncode == 2
    assert "unknown key 'query.modle'" in json.loads(config_error.stdout)["errors"][0]["error"]

    empty = genre_in_process("query", song, "--workspace", tmp_path / "empty", "--json")
    assert "no trained model" in json.loads(empty.stdout)["errors"][0]["error"]


# --------------------------------------------------------------------------- issue 11.2


def test_model_of_another_backend_needs_model_features(ws: Path, tmp_path: Path) -> None:
    song = make_audio(tmp_path / "a.wav", 4.0, freq=330.0)
    cfg = tmp_path / "sonic.toml"  # a host that is not there: using it would fail loudly
    cfg.write_text(
        '[features]\nbackend = "sonic-annotator"\nsonic_annotator = "/nonexistent/sonic-annotator"\n'
    )
    refused = genre_in_process("query", song, "--workspace", ws, "--config", cfg)
    assert refused.returncode == 2 and refused.stdout == ""
    (line,) = refused.stderr.strip().splitlines()
    assert "trained on native features" in line and "selects sonic-annotator" in line
    assert "--model-features" in line
    assert not (ws / "features").exists() or not list((ws / "features").glob("*/*.npz"))

    own = genre_in_process("query", song, "--workspace", ws, "--config", cfg, "--model-features", "--json")
    assert own.returncode == 0, own.stderr
    assert json.loads(own.stdout)["results"][0]["verdict"]["majority"] == "sinus"


# --------------------------------------------------------------------------- 17.4 damaged entries


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_damaged_entry_is_set_aside_and_extracted_again(ws: Path, tmp_path: Path, damage: str) -> None:
    first = make_audio(tmp_path / "first.wav", 5.0, freq=300.0)
    second = make_audio(tmp_path / "second.flac", 4.0, kind="white", seed=3)
    args = ("query", first, second, "--workspace", ws, "--json")
    before = json.loads(genre_in_process(*args, check=True).stdout)["results"]
    entry = _entry(ws, first)
    data = entry.read_bytes()
    entry.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])

    proc = genre_in_process(*args)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["results"] == before  # both songs, the same votes
    (warning,) = _stderr_lines(proc, "warning:")
    assert str(first) in warning and "damaged" in warning and "extracting again" in warning
    (aside,) = (entry.parent / "damaged").iterdir()
    assert (
        aside.read_bytes() == data[: len(data) // 2] if damage == "truncated" else aside.stat().st_size == 0
    )
    with np.load(entry) as z:  # a whole entry again
        assert z["mfcc"].shape[0] == 2


# --------------------------------------------------------------------------- 17.5 read-only


def _unprivileged() -> list[str]:
    """Root writes anywhere: run without the capabilities that let it (CI may run as root)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv (util-linux): no way to make a folder read-only")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


def _chmod_tree(root: Path, writable: bool) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | 0o200 if writable else mode & ~0o222)


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*")}


def test_read_only_workspace_still_classifies(ws: Path, tmp_path: Path, site: str) -> None:
    cached = make_audio(tmp_path / "cached.wav", 4.0, freq=300.0)
    new = make_audio(tmp_path / "new.wav", 4.0, kind="white", seed=9)
    url, unfetched = f"{site}/robust%20tone.mp3", f"{site}/robust%20other.wav"
    genre_in_process("query", cached, url, "--workspace", ws, check=True)
    before = _tree(ws)
    _chmod_tree(ws, writable=False)
    try:
        cmd = [*_unprivileged(), str(GENRE), "query", str(cached), str(new), url, unfetched]
        proc = subprocess.run(
            [*cmd, "--workspace", str(ws), "--json"], capture_output=True, text=True, timeout=300
        )
    finally:
        _chmod_tree(ws, writable=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    assert [r["source"] for r in doc["results"]] == [str(cached), str(new), url]
    (error,) = doc["errors"]
    assert error["source"] == unfetched
    assert f"{ws / 'downloads'} is not writable" in error["error"] and "--workspace" in error["error"]
    (warning,) = _stderr_lines(proc, "warning:")
    assert "is not writable" in warning and str(ws / "features") in warning
    assert _tree(ws) == before


# --------------------------------------------------------------------------- 17.8 downloads index


def test_damaged_download_index_is_kept_aside(ws: Path, site: str) -> None:
    url = f"{site}/robust%20tone.mp3"
    genre_in_process("query", url, "--workspace", ws, "--json", check=True)
    index = ws / "downloads" / "index.json"
    index.write_text('{"urls": {"http://')
    proc = genre_in_process("query", url, "--workspace", ws, "--json", check=True)
    assert json.loads(proc.stdout)["results"][0]["source"] == url
    (warning,) = _stderr_lines(proc, "warning:")
    (aside,) = (ws / "downloads").glob("index.damaged-*.json")
    assert str(index) in warning and "damaged" in warning and aside.name in warning
    assert aside.read_text() == '{"urls": {"http://'
    assert url in json.loads(index.read_text())["urls"]


# --------------------------------------------------------------------------- 17.6 junk, Ctrl-C


@pytest.fixture
def ffmpeg_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The real ffmpeg behind a wrapper that logs every start (GENRE_FFMPEG)."""
    log, wrapper = tmp_path / "ffmpeg.log", tmp_path / "bin" / "ffmpeg"
    wrapper.parent.mkdir()
    real = shlex.quote(audio.find_ffmpeg())
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {shlex.quote(str(log))}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("GENRE_FFMPEG", str(wrapper))
    audio.find_ffmpeg.cache_clear()
    yield log
    audio.find_ffmpeg.cache_clear()


def _junk(folder: Path, text: int, binary: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(text):
        (folder / f"junk {i:04d}.mp3").write_text(f"not a song {i}\n")
    for i in range(binary):
        (folder / f"noise {i:04d}.mp3").write_bytes(rng.integers(0, 256, 512, dtype=np.uint8).tobytes())


def test_junk_is_rejected_by_its_bytes_or_one_probe(ws: Path, tmp_path: Path, ffmpeg_log: Path) -> None:
    folder = tmp_path / "junk"
    make_audio(folder / "0 tone.wav", 4.0, freq=300.0)
    make_audio(folder / "1 noise.mp3", 4.0, kind="white", seed=4)
    _junk(folder, text=30, binary=5)
    (folder / "cover.flac").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (folder / "empty.ogg").write_bytes(b"")
    ffmpeg_log.unlink(missing_ok=True)  # count only the query's ffmpeg starts

    proc = genre_in_process("query", folder, "--workspace", ws, "--json")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert [Path(r["source"]).name for r in doc["results"]] == ["0 tone.wav", "1 noise.mp3"]
    errors = {Path(e["source"]).name: e["error"] for e in doc["errors"]}
    assert len(errors) == 37 and "not audio (a text file)" in errors["junk 0007.mp3"]
    assert "not audio (a PNG image)" in errors["cover.flac"] and "empty file" in errors["empty.ogg"]
    starts = ffmpeg_log.read_text().splitlines()
    probed = Counter(Path(s.split(" -i file:", 1)[1]).name for s in starts if " -loglevel " not in s)
    expected = ["0 tone.wav", "1 noise.mp3", *(f"noise {i:04d}.mp3" for i in range(5))]
    assert probed == Counter(expected)  # the real songs and unknown binaries: one probe each
    assert sum(" -loglevel " in s for s in starts) == 2  # one decode per song
    assert proc.stderr.strip().splitlines()[-1] == "query: 39 of 39 files looked at: 2 classified, 37 failed"


def test_ctrl_c_keeps_what_was_classified(ws: Path, tmp_path: Path) -> None:
    folder = tmp_path / "big"
    make_audio(folder / "0 tone.wav", 4.0, freq=300.0)
    make_audio(folder / "1 noise.flac", 4.0, kind="white", seed=6)
    _junk(folder, text=0, binary=2000)  # a probe each: many seconds of work
    proc = subprocess.Popen(
        [str(GENRE), "query", str(folder), "--workspace", str(ws), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, signalled as a terminal would
    )
    lines: queue.Queue[str | None] = queue.Queue()
    stderr: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for ln in proc.stderr:
            stderr.append(ln)
            lines.put(ln)
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 240
    try:
        while True:  # progress arrives while it works: wait until both songs are classified
            ln = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert ln is not None, f"ended before any progress line: {''.join(stderr)}"
            m = re.search(r"looked at: (\d+) classified", ln)
            if m and int(m.group(1)) >= 2:
                break
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.stdout is not None
        out = proc.stdout.read()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    reader.join(timeout=10)
    text = "".join(stderr)
    assert proc.returncode == 130, text
    doc = json.loads(out)
    assert doc["complete"] is False
    assert [Path(r["source"]).name for r in doc["results"]] == ["0 tone.wav", "1 noise.flac"]
    assert len(doc["errors"]) < 2000 and all("not readable audio" in e["error"] for e in doc["errors"])
    assert "interrupted: " in text and '"complete": false' in text and "Traceback" not in text
