"""NormaliseText: clean the text (pipelines/text/normalise.py), take off fragment markers, hash it."""

from __future__ import annotations

from typing import Any

import apache_beam as beam

from pipelines.events import Rejected
from pipelines.text.normalise import content_hash, normalise_text
from pipelines.transforms.common import StageFn, run_stage


def normalise_event(event: dict[str, Any]) -> dict[str, Any]:
    """Replace the raw text with its normalised form; record marker, what was removed and the hash."""
    result = normalise_text(event["text"])
    if not result.text.strip():
        raise Rejected("normalise", "empty_text", "text is empty after normalisation "
                       f"(removed: {', '.join(result.removed) or 'nothing'})")
    marker = {"part": result.marker.part, "total": result.marker.total} if result.marker else None
    return {**event, "text": result.text, "marker": marker, "removed": list(result.removed),
            "content_hash": content_hash(result.text)}


class _Normalise(StageFn):
    stage = "normalise"

    def apply(self, event: dict[str, Any]) -> dict[str, Any]:
        return normalise_event(event)


class NormaliseText(beam.PTransform):
    """Outputs (events, dead letters)."""

    def expand(self, events: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        return run_stage(events, "Normalise", _Normalise())
