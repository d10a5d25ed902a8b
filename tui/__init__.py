"""Terminal faces of the engine: the Typer CLI and the Textual app."""
