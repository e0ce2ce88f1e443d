"""Connhub: an organization's database connections, kept safely, tested live, and described."""

__version__ = "0.1.0"
