"""One module per `genre` subcommand (or sub-app); `tui/cli.py` wires them together."""
