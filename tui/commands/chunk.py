"""`genre chunk`: write 30-second mono WAV chunks, like the original split_30_seconds_mono step."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from genre_erkennung.core.errors import AudioError, GenreError

from .. import common


@common.handle_errors
def chunk(
    songs: Annotated[list[Path], typer.Argument(help="Song files (any format ffmpeg reads).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for <song>-000.wav ...")],
    config: common.ConfigOpt = None,
    workspace: common.WorkspaceOpt = None,
    verbose: common.VerboseOpt = False,
) -> None:
    """Cut songs into fixed-length mono chunks (32-bit float WAV at audio.sample_rate)."""
    from genre_erkennung.core import audio  # numpy: loaded by the command, not by `genre --help`

    ctx = common.load(config, workspace)
    a = ctx.settings.audio
    if out.exists() and not out.is_dir():
        raise GenreError(f"--out {out}: is a file; give a folder for the chunk WAVs")
    failed: list[tuple[Path, str]] = []
    for song in songs:
        try:
            n = 0
            for c in audio.chunks(song, a.sample_rate, a.chunk_seconds, a.min_chunk_seconds):
                target = out / f"{song.stem}-{c.index:03d}.wav"
                audio.write_wav(target, c.samples[: c.length], a.sample_rate)
                common.out.print(str(target))
                n += 1
            common.err.print(f"{song}: {n} chunks")
        except AudioError as exc:
            failed.append((song, str(exc)))
            common.err.print(Text(f"failed: {exc}", style="red"))
    if failed:
        common.err.print(Text(f"{len(failed)} of {len(songs)} songs failed:", style="bold red"))
        for _song, reason in failed:
            common.err.print(Text(f"  {reason}", style="red"))
        raise typer.Exit(1)
