"""genre-erkennung: music genre recognition from the terminal."""

__version__ = "0.1.0"
