"""Connhub's benchmark: `python -m bench` measures a running `connhub serve` against its ceilings."""
