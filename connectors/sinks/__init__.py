"""Sink connectors: take enriched events OUT of the pipeline into storage."""
