"""Start-up: load the stages' models while the job is being submitted, not after.

With Prism the SDK worker runs in the pipeline process (connectors/toolchain.PrismServer), and each
DoFn loads what it needs in ``setup`` once the first bundle arrives: the place table and name lists
(pipelines/transforms/enrich.py, the bulk: seconds), the language profiles, the stories' word prior.
Until then the process mostly waits (the broker, Prism preparing the job, the worker connecting), so
a thread started first thing loads the same per-process caches meanwhile; a setup that comes
first simply waits for it (the caches are loaded under a lock or are idempotent). Nothing here
changes what is loaded, only when. Measured in bench/RESULTS.md ("Framework overhead ... and
start-up"): a mixed result, faster on a loaded machine (median 24.5 -> 19.2 s), 2.5-3.3 s slower in
two of three pairs at load ~3, where the load competes for the GIL with the job submission.
"""

from __future__ import annotations

import logging
import threading
import time

from core.settings import Settings

log = logging.getLogger(__name__)


def warm_up(settings: Settings) -> None:
    """Load every model the configured stages will load in their DoFn setups (per-process caches)."""
    started = time.perf_counter()
    p = settings.pipeline
    if p.enrichment.entities != "off":
        from pipelines.text.enrich import load_models

        load_models(p.enrichment)
    from core.schemas import prepare
    from pipelines.text.language import detect_language

    prepare("fragment", "enriched-event")  # validated on every record: compiled on the first otherwise

    detect_language("warm up the language profiles before the first event")
    if p.stories.enabled:
        from pipelines.stages.stories.clustering import default_scorer, stem_freqs
        from pipelines.stages.stories.crosslingual import default_cross_scorer
        from pipelines.stages.stories.prior import word_prior

        word_prior()
        stem_freqs()  # the stems' priors, built from the word prior
        default_scorer()
        default_cross_scorer()
    log.info("stage models loaded in %.1f s", time.perf_counter() - started)


def start_warm_up(settings: Settings) -> threading.Thread:
    """Run `warm_up` in a daemon thread; a failure is logged and left to the DoFn setups to meet again."""

    def run() -> None:
        try:
            warm_up(settings)
        except Exception:
            log.warning("warming up the stage models failed; the workers load them", exc_info=True)

    thread = threading.Thread(target=run, name="newswire-warm-up", daemon=True)
    thread.start()
    return thread
