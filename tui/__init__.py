"""Terminal faces of the engine: the Typer CLI and the Textual app."""

# Installed as genre_erkennung.tui; as plain `tui` it would be a second copy (see core/__init__.py).
if __name__ != "genre_erkennung.tui":
    raise ImportError(f"import genre_erkennung.tui, not {__name__} (see the README's Development section)")
