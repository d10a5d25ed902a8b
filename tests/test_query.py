import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import genre_in_process, make_audio, refused_port, run_genre
from query_helpers import GENRES, tiny_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return tiny_model(tmp_path_factory)


@pytest.fixture(scope="module")
def site(http_root: tuple[str, Path]) -> str:
    base, root = http_root
    make_audio(root / "query tone.mp3", 8.0, freq=350.0, channels=2)
    make_audio(root / "query noise.ogg", 7.0, kind="white", seed=77)
    (root / "player.html").write_text(
        '<html><title>Player</title><audio src="query%20noise.ogg"></audio></html>'
    )
    (root / "readme.txt").write_text("just text\n")
    return base


def test_query_file_prints_votes_and_verdict(trained: tuple[Path, Path], tmp_path: Path) -> None:
    ws, _ = trained
    song = make_audio(tmp_path / "Ein Ton – ü.mp3", 10.0, freq=310.0)
    proc = run_genre("query", song, "--workspace", ws, check=True)
    assert "The song is 100% sinus" in proc.stdout
    assert "sinus — 4 of 4 chunks" in proc.stdout
    assert "0:00–0:03" in proc.stdout and "runner-up" in proc.stdout


def test_query_url_json_owns_stdout(trained: tuple[Path, Path], site: str) -> None:
    ws, _ = trained
    url = f"{site}/query%20tone.mp3"
    proc = run_genre("query", url, f"{site}/player.html", "--workspace", ws, "--json", check=True)
    doc = json.loads(proc.stdout)
    assert doc["model"] == "tiny" and doc["errors"] == []
    tone, page = doc["results"]
    assert tone["source"] == url and tone["title"] == "query tone"
    assert tone["duration"] == pytest.approx(8.0, abs=0.1)
    assert [c["index"] for c in tone["chunks"]] == [0, 1, 2]
    assert tone["chunks"][2]["start"] == 6.0 and tone["chunks"][2]["end"] == pytest.approx(8.0, abs=0.1)
    assert set(tone["chunks"][0]["probabilities"]) == set(GENRES)
    assert tone["verdict"]["majority"] == "sinus" and tone["verdict"]["share"] == 1.0
    assert [g for g, _ in tone["verdict"]["ranking"]] == ["sinus", "rauschen"]
    assert page["verdict"]["majority"] == "rauschen"
    again = run_genre("query", url, "--workspace", ws, "--json", check=True)
    assert json.loads(again.stdout)["results"][0]["chunks"] == tone["chunks"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("{site}/missing.mp3", "HTTP Error 404"),
        ("{site}/readme.txt", "not usable audio"),
        ("http://127.0.0.1:{port}/song.mp3", "connection refused"),
        ("ftp://127.0.0.1/song.mp3", "only http:// and https://"),
    ],
)
def test_bad_urls_are_one_line_each(trained: tuple[Path, Path], site: str, path: str, expected: str) -> None:
    ws, _ = trained
    url = path.format(site=site, port=refused_port())
    proc = genre_in_process("query", url, "--workspace", ws, "--json")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["results"] == [] and doc["errors"][0]["source"] == url
    assert expected in doc["errors"][0]["error"]
    assert "Traceback" not in proc.stderr


def test_folder_of_songs_and_junk(trained: tuple[Path, Path], tmp_path: Path) -> None:
    ws, _ = trained
    folder = tmp_path / "mixed"
    make_audio(folder / "a.wav", 5.0, freq=300.0)
    make_audio(folder / "deeper" / "-b.flac", 5.0, kind="white", seed=5)
    (folder / "cover.jpg").write_bytes(b"\xff\xd8 not really")
    (folder / "fake.mp3").write_text("text")
    make_audio(folder / "short.mp3", 0.5)
    out_csv = tmp_path / "out.csv"
    proc = genre_in_process("query", folder, "--workspace", ws, "--json", "--csv", out_csv)
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert [Path(r["source"]).name for r in doc["results"]] == ["a.wav", "-b.flac"]
    errors = {Path(e["source"]).name: e["error"] for e in doc["errors"]}
    assert set(errors) == {"fake.mp3", "short.mp3"} and "too short" in errors["short.mp3"]
    rows = pd.read_csv(out_csv)
    assert len(rows) == 4 and {"p_sinus", "p_rauschen", "genre", "start", "end"} <= set(rows.columns)
    assert set(rows["model"]) == {"tiny"}
    genre_in_process("query", folder / "a.wav", "--workspace", ws, "--csv", out_csv, check=True)
    assert len(pd.read_csv(out_csv)) == 6


def test_no_model_says_train_one(tmp_path: Path) -> None:
    song = make_audio(tmp_path / "a.wav", 12.0)
    proc = genre_in_process("query", song, "--workspace", tmp_path / "empty")
    assert proc.returncode == 1
    assert "no trained model" in proc.stderr and "genre train" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_model_with_other_features_is_refused(trained: tuple[Path, Path], tmp_path: Path) -> None:
    ws, _ = trained
    other = tmp_path / "ws"
    shutil.copytree(ws / "models", other / "models")
    card_path = other / "models" / "tiny" / "model.json"
    card = json.loads(card_path.read_text())
    card["features"]["config"]["feature_version"] = -1
    card["features"]["config_key"] = "0000000000000000"
    card_path.write_text(json.dumps(card))
    song = make_audio(tmp_path / "a.wav", 5.0)
    proc = genre_in_process("query", song, "--workspace", other)
    assert proc.returncode == 1
    assert "trained on other features" in proc.stderr and "Traceback" not in proc.stderr


def test_empty_source_and_unwritable_csv_fail_before_any_work(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    ws, _ = trained
    empty = genre_in_process("query", "", "--workspace", ws, "--json")
    assert empty.returncode == 1 and "an empty source" in json.loads(empty.stdout)["errors"][0]["error"]
    song = make_audio(tmp_path / "a.wav", 5.0)
    folder = genre_in_process("query", song, "--workspace", ws, "--csv", tmp_path)
    assert folder.returncode == 1 and "is a folder" in folder.stderr and folder.stdout == ""
    missing = genre_in_process("query", song, "--workspace", ws, "--csv", tmp_path / "no" / "x.csv")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
