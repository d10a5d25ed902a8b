"""`python -m genre_erkennung`: the `genre` command."""

from genre_erkennung.tui.cli import main

main()
