"""pipelines/warmup.py: the start-up thread loads what the DoFn setups then take from the cache."""

from __future__ import annotations

from core import schemas
from core.settings import load_settings
from pipelines.stages.stories.clustering import stem_freqs
from pipelines.stages.stories.prior import word_prior
from pipelines.text import language
from pipelines.text.enrich import _models, load_models
from pipelines.warmup import start_warm_up


def test_warm_up_thread_loads_the_models_the_enrich_setup_then_reuses() -> None:
    settings = load_settings(environ={})  # the shipped config: gazetteer entities, stories on
    schemas._compiled.cache_clear()
    start_warm_up(settings).join(300)
    loaded = _models.cache_info().currsize
    assert loaded >= 1 and word_prior.cache_info().currsize == 1 and stem_freqs.cache_info().currsize == 1
    assert schemas._compiled.cache_info().currsize >= 2  # the fragment and event validators compiled
    assert language._PROFILES  # langdetect's profiles loaded
    tagger, resolver = load_models(settings.pipeline.enrichment)  # what _Tag.setup calls
    assert _models.cache_info().currsize == loaded  # nothing loaded twice
    text = "The minister spoke in Oslo on Monday."
    places = resolver.resolve(text, "en", tagger.tag(text, "en")).to_dict()["places"]
    assert any("Oslo" in str(p) for p in places)

