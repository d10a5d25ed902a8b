"""`genre features`: the features of one whole song, to compare with the Vamp plugins'."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .. import common


class Format(StrEnum):
    npz = "npz"
    csv = "csv"


@common.handle_errors
def features(
    song: Annotated[Path, typer.Argument(help="A song file (any format ffmpeg reads).")],
    out: Annotated[Path, typer.Option("--out", help="The .npz file, or the folder for the CSV files.")],
    fmt: Annotated[
        Format,
        typer.Option("--format", help="npz (the golden files' keys) or csv (sonic-annotator's layout)."),
    ] = Format.npz,
    backend: Annotated[
        str | None, typer.Option("--backend", help="Feature backend: native or sonic-annotator.")
    ] = None,
    sample_rate: Annotated[
        int | None,
        typer.Option("--sample-rate", help="Decode to mono at HZ (default: audio.sample_rate)."),
    ] = None,
    config: common.ConfigOpt = None,
    workspace: common.WorkspaceOpt = None,
    verbose: common.VerboseOpt = False,
) -> None:
    """Features of one whole song (not chunked): qm-mfcc and bbc spectral contrast.

    Prints the written files on stdout. To compare with sonic-annotator on the file itself,
    pass the file's own rate as --sample-rate.
    """
    from genre_erkennung.core.features import file_features
    from genre_erkennung.core.features.export import save_csv, save_npz

    ctx = common.load(config, workspace, features__backend=backend, audio__sample_rate=sample_rate)
    settings = ctx.settings
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
