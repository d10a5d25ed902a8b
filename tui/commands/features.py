"""`genre features`: the features of one whole song, to compare with the Vamp plugins' (or musicnn's)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .. import common


class Format(StrEnum):
    npz = "npz"
    csv = "csv"
    tags = "tags"


@common.handle_errors
def features(
    song: Annotated[Path, typer.Argument(help="A song file (any format ffmpeg reads).")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="The .npz file, the folder for the CSV files, or a .json for tags."),
    ] = None,
    fmt: Annotated[
        Format,
        typer.Option(
            "--format",
            help="npz (the golden files' keys), csv (sonic-annotator's layout) or tags (musicnn's 50).",
        ),
    ] = Format.npz,
    backend: Annotated[
        str | None, typer.Option("--backend", help="Feature backend: native, sonic-annotator or musicnn.")
    ] = None,
    sample_rate: Annotated[
        int | None,
        typer.Option("--sample-rate", help="Decode to mono at HZ (default: audio.sample_rate)."),
    ] = None,
    config: common.ConfigOpt = None,
    workspace: common.WorkspaceOpt = None,
    verbose: common.VerboseOpt = False,
) -> None:
    """Features of one whole song (not chunked): qm-mfcc and bbc spectral contrast, or musicnn.

    Prints the written files on stdout. To compare with sonic-annotator on the file itself,
    pass the file's own rate as --sample-rate. `--format tags` prints musicnn's tag scores
    (the mean over the song's 3-s patches; features.musicnn picks msd or mtt).
    """
    from genre_erkennung.core.errors import GenreError
    from genre_erkennung.core.features import file_features
    from genre_erkennung.core.features.export import save_csv, save_npz

    if fmt is Format.tags:
        backend = "musicnn"
    ctx = common.load(config, workspace, features__backend=backend, audio__sample_rate=sample_rate)
    settings = ctx.settings
    if settings.features.backend == "musicnn":
        _musicnn(song, out, fmt, ctx)
        return
    if out is None:
        raise GenreError(f"--format {fmt.value} writes files: pass --out")
    if fmt is Format.tags:
        raise GenreError("--format tags needs the musicnn backend")
    result = file_features(song, settings.audio.sample_rate, settings.features)
    if fmt is Format.npz:
        save_npz(out, result)
        written = [out]
    else:
        written = save_csv(out, song.stem, result)
    for path in written:
        common.out.print(str(path), markup=False)
    common.err.print(
        f"{song}: {len(result['mfcc'])} MFCC frames, {len(result['sc_peaks'])} contrast frames "
        f"at {int(result['sample_rate'])} Hz ({settings.features.backend})",
        markup=False,
    )


def _musicnn(song: Path, out: Path | None, fmt: Format, ctx: common.Context) -> None:
    """Per-patch embeddings (npz) or the song's tag scores (a table, or JSON with --out)."""
    import numpy as np
    from rich.table import Table

    from genre_erkennung.core.atomic import atomic_write_json
    from genre_erkennung.core.errors import GenreError
    from genre_erkennung.core.features.export import save_npz
    from genre_erkennung.core.features.musicnn import MusicnnBackend

    if fmt is Format.csv:
        raise GenreError("--format csv is for the Vamp features; use npz or tags with musicnn")
    if fmt is Format.npz and out is None:
        raise GenreError("--format npz writes a file: pass --out")
    import torch

    torch.set_num_threads(1)  # one core decodes, one computes (see features.file_features)
    variant = ctx.settings.features.musicnn
    result = MusicnnBackend(ctx.settings.features, ctx.workspace).whole_file(song)
    patches = len(result["embeddings"])
    common.err.print(f"{song}: {patches} patches of 3 s (musicnn {variant})", markup=False)
    if fmt is Format.npz:
        assert out is not None  # checked before the work
        save_npz(out, result)
        common.out.print(str(out), markup=False)
        return
    scores = result["taggram"].mean(axis=0)
    ranked = [(str(result["tags"][i]), round(float(scores[i]), 4)) for i in np.argsort(-scores)]
    if out is not None:
        doc = {"source": str(song), "model": f"musicnn {variant}", "patches": patches, "tags": ranked}
        atomic_write_json(out, doc)
        common.out.print(str(out), markup=False)
        return
    table = Table(title=f"musicnn {variant} tags (mean over {patches} patches)", title_justify="left")
    table.add_column("tag")
    table.add_column("score", justify="right")
    for tag, score in ranked:
        table.add_row(tag, f"{score:.3f}")
    common.out.print(table)
