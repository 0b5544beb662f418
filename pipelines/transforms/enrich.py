"""TagEntities: people, organisations and geocoded places per event (pipelines/text/entities.py,
pipelines/text/places.py). Gazetteers and the spaCy model load once per worker, in ``setup``.

Elements are tagged one at a time: measured on this machine, ``nlp.pipe`` batches were no faster
than single calls for ~1 KB fragments (bench/RESULTS.md), and per-element processing keeps each
event's timestamp and failure isolated.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import apache_beam as beam

from core.records import analysis_text
from core.settings import EnrichmentSettings
from pipelines.text.gazetteer import tokenize
from pipelines.transforms.common import StageFn, run_stage


def enrich_event(event: dict[str, Any], tagger: Any, resolver: Any) -> dict[str, Any]:
    """Attach entities, places, the focus place (an id from places, or null) and the countries named
    by demonyms (``nationalities``) to an event."""
    language = event["language"]["code"]
    text = analysis_text(event)
    tokens = tokenize(text)  # once per event, shared by both taggers
    entities = tagger.tag(text, language, tokens)
    result = resolver.resolve(text, language, entities, tokens).to_dict()
    return {**event, "entities": [e.to_dict() for e in entities], "places": result["places"],
            "focus_place": result["focus"], "nationalities": result["nationalities"]}


_MODELS_LOCK = threading.Lock()


@functools.cache
def _models(entities: str, demonyms: bool) -> tuple[Any, Any]:
    """The tagger and resolver, loaded once per worker process: the runner creates a DoFn instance
    per concurrent bundle, and the place table alone takes ~3.5 s and ~300 MB to load."""
    from pipelines.text.entities import EntityTagger
    from pipelines.text.places import PlaceResolver

    resolver = PlaceResolver(demonyms=demonyms)
    places = resolver.place_keys() if entities == "gazetteer" else None
    return EntityTagger(mode=entities, places=places), resolver


def load_models(settings: EnrichmentSettings) -> tuple[Any, Any]:
    """The (tagger, resolver) of ``settings``, loaded once per process by whichever thread asks first:
    a DoFn's setup, or pipelines/warmup.py while the job is still being submitted."""
    with _MODELS_LOCK:  # functools.cache does not stop two threads loading at once
        return _models(settings.entities, settings.demonyms)


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
