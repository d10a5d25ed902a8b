"""The engine: dataset, audio, features, store, training and query. Never imports a UI toolkit."""

# The folder is installed (and type-checked, through the genre_erkennung/core link) as
# genre_erkennung.core. Imported as plain `core` from the repository root it would be a second
# copy of every module, whose exceptions no `except GenreError` catches: refuse that.
if __name__ != "genre_erkennung.core":
    raise ImportError(f"import genre_erkennung.core, not {__name__} (see the README's Development section)")
