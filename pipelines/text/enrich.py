"""Entities, places, the focus place and nationalities of one event, and the models that find them
(pipelines/text/entities.py, pipelines/text/places.py), loaded once per process.

No Beam here: the stage (pipelines/transforms/enrich.py), the plain-loop bench, the start-up warm-up
(pipelines/warmup.py) and the job launcher that loads the models once for several jobs
(newswire/workers.py) all call these.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from core.records import analysis_text
from core.settings import EnrichmentSettings
from pipelines.text.gazetteer import tokenize


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
