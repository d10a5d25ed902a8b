"""`genre doctor`: what this machine has and lacks for genre-erkennung, one line per check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from .. import common

if TYPE_CHECKING:
    from genre_erkennung.core.doctor import Check

#: How each status looks on a terminal (the word stays readable without colour).
STYLES = {"ok": ("ok  ", "green"), "warn": ("WARN", "yellow"), "fail": ("FAIL", "bold red")}


def line(check: Check) -> Text:
    """`ok   ffmpeg       /usr/bin/ffmpeg (7.1)` and, for a problem, its fix after `->`."""
    word, style = STYLES[check.status]
    text = Text.assemble((word, style), "  ", (f"{check.name:<15}", "bold"), " ", check.detail)
    if check.fix:
        text.append(f" -> {check.fix}", style="dim")
    return text


@common.handle_errors
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")] = False,
    config: common.ConfigOpt = None,
    workspace: common.WorkspaceOpt = None,
    verbose: common.VerboseOpt = False,
) -> None:
    """Check ffmpeg and its codecs, yt-dlp and its JavaScript runtime, torch and the GPUs,
    sonic-annotator, the workspace and the config; exit 1 if something the default commands need
    is missing."""
    from genre_erkennung.core.doctor import diagnose

    show = None if as_json else (lambda c: common.out.print(line(c)))
    report = diagnose(Path(config) if config else None, workspace, on_check=show)
    if as_json:
        common.out.print(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        problems = sum(c.status == "fail" for c in report.checks)
        summary = (
            "everything the default commands need is here"
            if report.ok
            else f"{problems} missing: the FAIL lines say what the default commands need and how to get it"
        )
        common.err.print(Text(summary, style="bold" if report.ok else "bold red"))
    if not report.ok:
        raise typer.Exit(1)
