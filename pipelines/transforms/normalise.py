"""NormaliseText: clean the text (pipelines/text/normalise.py), take off fragment markers, hash it."""

from __future__ import annotations

from typing import Any

import apache_beam as beam

from core.records import Rejected, analysis_bound
from core.settings import PipelineSettings
from pipelines.text.normalise import normalise_text
from pipelines.transforms.common import StageFn, run_stage


def normalise_event(event: dict[str, Any], analysis_max_chars: int = PipelineSettings.analysis_max_chars) -> dict[str, Any]:
    """Replace the raw text with its normalised form; record marker, what was removed and the hash,
    and, for a text over ``analysis_max_chars``, how much of it later stages read (``truncated``)."""
    result = normalise_text(event["text"])
    if not result.text.strip():
        raise Rejected("normalise", "empty_text", "text is empty after normalisation "
                       f"(removed: {', '.join(result.removed) or 'nothing'})")
    marker = {"part": result.marker.part, "total": result.marker.total} if result.marker else None
    event = {**event, "text": result.text, "marker": marker, "removed": list(result.removed),
             "content_hash": result.content_hash}
    bound = analysis_bound(result.text, analysis_max_chars)
    if bound is not None:
        event["truncated"] = {"analysis_chars": bound}
    return event


class _Normalise(StageFn):
    stage = "normalise"

    def __init__(self, analysis_max_chars: int) -> None:
        super().__init__()
        self.analysis_max_chars = analysis_max_chars

    def apply(self, event: dict[str, Any]) -> dict[str, Any]:
        return normalise_event(event, self.analysis_max_chars)


class NormaliseText(beam.PTransform):
    """Outputs (events, dead letters). Later stages read at most ``analysis_max_chars`` of a text."""

    def __init__(self, analysis_max_chars: int = PipelineSettings.analysis_max_chars) -> None:
        super().__init__()
        self.analysis_max_chars = analysis_max_chars

    def stage_fn(self) -> StageFn:
        return _Normalise(self.analysis_max_chars)

    def expand(self, events: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        return run_stage(events, "Normalise", self.stage_fn())
