"""TagEntities: people, organisations and geocoded places per event (pipelines/text/entities.py,
pipelines/text/places.py). Gazetteers and the spaCy model load once per worker, in ``setup``.

Elements are tagged one at a time: measured on this machine, ``nlp.pipe`` batches were no faster
than single calls for ~1 KB fragments (bench/RESULTS.md), and per-element processing keeps each
event's timestamp and failure isolated.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam

from core.settings import EnrichmentSettings
from pipelines.text.enrich import enrich_event, load_models
from pipelines.transforms.common import StageFn, run_stage


class _Tag(StageFn):
    stage = "enrich"

    def __init__(self, settings: EnrichmentSettings) -> None:
        super().__init__()
        self.settings = settings

    def setup(self) -> None:
        self._tagger, self._resolver = load_models(self.settings)

    def apply(self, event: dict[str, Any]) -> dict[str, Any]:
        return enrich_event(event, self._tagger, self._resolver)


class TagEntities(beam.PTransform):
    """Outputs (events, dead letters)."""

    def __init__(self, settings: EnrichmentSettings) -> None:
        super().__init__()
        self.settings = settings

    def stage_fn(self) -> StageFn:
        return _Tag(self.settings)

    def expand(self, events: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        return run_stage(events, "TagEntities", self.stage_fn())
