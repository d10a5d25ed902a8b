"""`genre tui` (and bare `genre`): open the Textual app."""

from __future__ import annotations

from .. import common


@common.handle_errors
def tui(
    dataset: common.DatasetOpt = None,
    config: common.ConfigOpt = None,
    workspace: common.WorkspaceOpt = None,
    verbose: common.VerboseOpt = False,
) -> None:
    """Open the terminal UI: dataset, extraction, training and query in four panes (keys 1-4)."""
    ctx = common.load(config, workspace, dataset)
    from ..app import GenreApp  # Textual loads only when the UI opens

    GenreApp(ctx.settings, workspace=ctx.workspace).run()
