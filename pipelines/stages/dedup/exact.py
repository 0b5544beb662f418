"""ExactDuplicates: events with the same normalised content hash point at the first one's event_id.

Keyed by content hash, so every copy of a text meets the same state cell whichever worker read it.
Duplicates are marked (``duplicate_of``), counted and still delivered (stored), never dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.coders import StrUtf8Coder
from apache_beam.metrics import Metrics
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec

from pipelines.transforms.common import DEAD_LETTERS


def mark_duplicate(event: dict[str, Any], first_event_id: str | None) -> dict[str, Any]:
    """The event with duplicate_of set when an earlier event (a different id) had the same content."""
    if first_event_id is None or first_event_id == event["event_id"]:
        return {**event, "duplicate_of": None}
    return {**event, "duplicate_of": first_event_id}


class _FirstSeen(beam.DoFn):
    FIRST = ReadModifyWriteStateSpec("first_event_id", StrUtf8Coder())

    def __init__(self) -> None:
        self.duplicates = Metrics.counter("dedup", "exact_duplicates")

    def process(self, element: tuple[str, dict[str, Any]],
                first: Any = beam.DoFn.StateParam(FIRST)) -> Iterator[dict[str, Any]]:
        _, event = element
        seen = first.read()
        if seen is None:
            first.write(event["event_id"])
        out = mark_duplicate(event, seen)
        if out["duplicate_of"]:
            self.duplicates.inc()
        yield out


class ExactDuplicates(beam.PTransform):
    """Mark exact duplicates by content hash (state per hash). Out: (events, dead letters), the
    contract of every stage; this one rejects nothing, so its dead-letter output stays empty."""

    def expand(self, events: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        out = (
            events
            | "KeyByContentHash" >> beam.Map(lambda e: (e["content_hash"], e)).with_output_types(
                tuple[str, dict[str, Any]])
            | "FirstSeen" >> beam.ParDo(_FirstSeen()).with_outputs(DEAD_LETTERS, main="events")
        )
        return out.events, out[DEAD_LETTERS]
