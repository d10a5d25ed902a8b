"""Build the real-music benchmark from freely licensed Debian packages.

    python bench/music/build.py ROOT [--sources bench/music/sources.toml]
                                     [--cache bench/out/music-cache] [--debs DIR]

For every source in the table: `apt-get download PACKAGE=VERSION` into the cache (or take the
.deb from --debs, for offline use and tests), `dpkg-deb -x` it there (nothing is installed),
pick the listed tracks, render tracker modules to FLAC with ffmpeg's libopenmpt, copy the
rest byte for byte, and write ROOT/{train,test}/<genre>/<group>/<track> and ROOT/manifest.csv
(split, genre, path, package, version, member, artists, title, license, duration, sha256,
evidence). The same table and versions give the same tree; a re-run redoes nothing.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import hashlib
import io
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from genre_erkennung.core import audio
from genre_erkennung.core.atomic import atomic_path, atomic_write_text
from genre_erkennung.core.dataset import read_tags
from genre_erkennung.core.errors import AudioError

HERE = Path(__file__).resolve().parent
MODULES = {".mod", ".xm", ".it", ".s3m", ".mptm"}
COLUMNS = "split genre path package version member artists title license duration sha256 evidence".split()


class RecipeError(Exception):
    """A table or a package that cannot make the benchmark; the message says what to fix."""


@dataclass(frozen=True)
class Source:
    package: str
    version: str
    genre: str
    split: str
    artists: tuple[str, ...]
    license: str
    files: tuple[str, ...]
    evidence: str
    group: str = ""
    exclude: tuple[str, ...] = ()

    @property
    def folder(self) -> str:
        return self.group or self.package


@dataclass
class Track:
    source: Source
    member: str  # path inside the package (`archive!member` for a file inside a zip)
    read: Callable[[], bytes] = field(repr=False)


def load_table(path: Path) -> tuple[float, list[Source]]:
    """The sources, checked: known splits, and no package or artist on both sides."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    sources = []
    for i, raw in enumerate(data.get("source", [])):
        try:
            s = Source(
                raw["package"],
                raw["version"],
                raw["genre"],
                raw["split"],
                tuple(raw["artists"]),
                raw["license"],
                tuple(raw["files"]),
                raw["evidence"],
                raw.get("group", ""),
                tuple(raw.get("exclude", ())),
            )
        except KeyError as exc:
            raise RecipeError(f"{path}: source #{i + 1} lacks {exc}") from None
        if s.split not in ("train", "test"):
            raise RecipeError(f"{path}: {s.package}: split must be train or test, got {s.split!r}")
        sources.append(s)
    for what, keys in (("package", lambda s: [s.package]), ("artist", lambda s: s.artists)):
        sides: dict[str, set[str]] = {}
        for s in sources:
            for k in keys(s):
                sides.setdefault(k, set()).add(s.split)
        both = sorted(k for k, v in sides.items() if len(v) > 1)
        if both:
            raise RecipeError(f"{path}: {what} {both[0]!r} is on both sides; a source belongs to one split")
    return float(data.get("min_seconds", 30.0)), sources


def fetch(source: Source, cache: Path, debs: Path | None) -> Path:
    """The package's .deb at the pinned version: from --debs, the cache, or apt-get download."""
    name = f"{source.package}_{source.version.replace(':', '%3a')}_*.deb"
    for folder in [debs] if debs else [cache / "debs"]:
        found = sorted(folder.glob(name))
        if found:
            return found[0]
    if debs:
        raise RecipeError(f"{debs}: no {name} (offline mode takes .debs from this folder only)")
    (cache / "debs").mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["apt-get", "download", f"{source.package}={source.version}"],
        cwd=cache / "debs",
        capture_output=True,
        text=True,
    )
    found = sorted((cache / "debs").glob(name))
    if proc.returncode != 0 or not found:
        why = (proc.stderr.strip().splitlines() or ["no .deb appeared"])[-1]
        raise RecipeError(
            f"apt-get download {source.package}={source.version} failed ({why}); run "
            "`apt-get update`, or pin the version `apt-cache policy` lists in sources.toml"
        )
    return found[0]


def unpack(deb: Path, cache: Path) -> Path:
    """`dpkg-deb -x` into the cache once (to a temp folder first, so a crash leaves no half)."""
    target = cache / "unpacked" / deb.stem
    if target.is_dir():
        return target
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True)
    tmp.rename(target)
    return target


def tracks(source: Source, tree: Path) -> list[Track]:
    """The files the source names, in a stable order."""
    out: list[Track] = []
    for pattern in source.files:
        archive, _, inner = pattern.partition("!")
        for path in sorted(tree.glob(archive)):
            if not path.is_file() or _excluded(source, path.name):
                continue
            member = str(path.relative_to(tree))
            if not inner:
                out.append(Track(source, member, path.read_bytes))
                continue
            with zipfile.ZipFile(path) as z:
                for m in sorted(n for n in z.namelist() if fnmatch.fnmatch(n, inner)):
                    if not _excluded(source, Path(m).name):
                        out.append(Track(source, f"{member}!{m}", lambda p=path, m=m: _unzip(p, m)))
    if not out:
        raise RecipeError(f"{source.package}: no file matches {list(source.files)} (a new version?)")
    return out


def _excluded(source: Source, name: str) -> bool:
    return any(fnmatch.fnmatch(name, pat.rsplit("/", 1)[-1]) for pat in source.exclude)


def _unzip(path: Path, member: str) -> bytes:
    with zipfile.ZipFile(path) as z:
        return z.read(member)


def render(src: Path, target: Path) -> None:
    """A tracker module -> 16-bit 44.1 kHz stereo FLAC, via ffmpeg's libopenmpt demuxer."""
    with atomic_path(target) as tmp:
        cmd = [audio.find_ffmpeg(), "-nostdin", "-loglevel", "error", "-y", "-f", "libopenmpt"]
        cmd += ["-i", audio.ffmpeg_input(src), "-ar", "44100", "-sample_fmt", "s16", "-c:a", "flac"]
        cmd += ["-f", "flac", audio.ffmpeg_input(tmp)]
        subprocess.run(cmd, check=True)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "track"


def place(track: Track, root: Path, staging: Path, taken: set[Path]) -> tuple[Path, Path]:
    """Write one track into ROOT (unless an identical file is there); returns (file, original)."""
    s = track.source
    member_name = Path(track.member.rsplit("!", 1)[-1])
    original = staging / s.package / member_name.name
    original.parent.mkdir(parents=True, exist_ok=True)
    original.write_bytes(track.read())
    suffix = member_name.suffix.lower()
    if suffix in MODULES:
        ext = ".flac"
    elif suffix:
        ext = suffix
    else:  # e.g. blobwars' extension-less Ogg files
        ext = "." + audio.probe(original).format.split(",")[0]
    base = root / s.split / s.genre / s.folder / _slug(member_name.stem)
    target, n = base.with_suffix(ext), 1
    while target in taken:
        n += 1
        target = base.with_name(f"{base.name}-{n}").with_suffix(ext)
    taken.add(target)
    if suffix in MODULES:
        if not target.exists():
            render(original, target)
    elif not target.exists() or target.read_bytes() != original.read_bytes():
        with atomic_path(target) as tmp:
            shutil.copyfile(original, tmp)
    return target, original


def _unusable(path: Path, min_seconds: float) -> str:
    """Why a placed track cannot be a benchmark song ('' when it can)."""
    try:
        duration = audio.probe(path).duration or 0.0
    except AudioError as exc:
        return str(exc).removeprefix(f"{path}: ")
    return f"shorter than {min_seconds:g} s" if duration < min_seconds else ""


def build(root: Path, table: Path, cache: Path, debs: Path | None = None, log=print) -> list[dict[str, str]]:
    """Make ROOT from the table; returns the manifest rows (also written to ROOT/manifest.csv)."""
    if (
        "libopenmpt"
        not in subprocess.run(
            [audio.find_ffmpeg(), "-hide_banner", "-demuxers"], capture_output=True, text=True
        ).stdout
    ):
        raise RecipeError(f"{audio.find_ffmpeg()} lacks the libopenmpt demuxer: use Debian's ffmpeg")
    min_seconds, sources = load_table(table)
    staging = cache / "staging"
    rows, seen, taken = [], {}, set()
    for s in sources:
        deb = fetch(s, cache, debs)
        tree = unpack(deb, cache)
        kept = 0
        for t in tracks(s, tree):
            path, original = place(t, root, staging, taken)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            why = _unusable(path, min_seconds) or (f"same as {seen[digest]}" if digest in seen else "")
            if why:  # the project decodes with this same ffmpeg: what it cannot read is no song
                log(f"  skip {s.package}: {t.member} ({why})")
                path.unlink()
                continue
            duration = audio.probe(path).duration or 0.0
            seen[digest] = t.member
            tag = read_tags(original)
            rows.append(
                {
                    "split": s.split,
                    "genre": s.genre,
                    "path": str(path.relative_to(root)),
                    "package": s.package,
                    "version": s.version,
                    "member": t.member,
                    "artists": tag.get("artist") or "; ".join(s.artists),
                    "title": tag.get("title", ""),
                    "license": s.license,
                    "duration": f"{duration:.2f}",
                    "sha256": digest,
                    "evidence": s.evidence,
                }
            )
            kept += 1
        log(f"{s.split:5} {s.genre:11} {s.package} {s.version}: {kept} tracks")
    shutil.rmtree(staging, ignore_errors=True)
    rows.sort(key=lambda r: r["path"])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(root / "manifest.csv", buf.getvalue())
    return rows


def summary(rows: list[dict[str, str]]) -> str:
    """Songs and minutes per split and genre."""
    cells: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        cells.setdefault((r["genre"], r["split"]), []).append(float(r["duration"]))
    lines = [f"{'genre':12} {'train':>14} {'test':>14}"]
    for genre in sorted({g for g, _ in cells}):
        parts = []
        for split in ("train", "test"):
            d = cells.get((genre, split), [])
            parts.append(f"{len(d):4} ({sum(d) / 60:5.1f} min)")
        lines.append(f"{genre:12} " + " ".join(parts))
    lines.append(f"{len(rows)} songs, {sum(float(r['duration']) for r in rows) / 3600:.2f} h")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", type=Path, help="dataset root to create (ROOT/{train,test}/<genre>/)")
    p.add_argument("--sources", type=Path, default=HERE / "sources.toml")
    p.add_argument("--cache", type=Path, default=HERE.parent / "out" / "music-cache")
    p.add_argument("--debs", type=Path, help="take the .deb files from here instead of apt-get download")
    args = p.parse_args()
    try:
        rows = build(args.root, args.sources, args.cache, args.debs)
    except RecipeError as exc:
        sys.exit(f"error: {exc}")
    print(summary(rows))
    print(f"manifest: {args.root / 'manifest.csv'}")


if __name__ == "__main__":
    main()
