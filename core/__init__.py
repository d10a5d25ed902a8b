"""The engine: dataset, audio, features, store, training and query. Never imports a UI toolkit."""
