"""`python -m genre_erkennung` is `genre` (torchrun starts training this way)."""

from genre_erkennung.tui.cli import main

main()
