"""Newswire: shared settings, schemas and the command-line entry point."""

__version__ = "0.1.0"
