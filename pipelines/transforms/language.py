"""DetectLanguage: ISO 639-1 code and confidence per event (pipelines/text/language.py)."""

from __future__ import annotations

from typing import Any

import apache_beam as beam

from core.settings import LanguageSettings
from pipelines.text.language import detect_language
from pipelines.transforms.common import StageFn, run_stage


def detect_event_language(event: dict[str, Any], settings: LanguageSettings) -> dict[str, Any]:
    """Set event['language'] from the normalised text; the source's hint is kept beside it."""
    guess = detect_language(event["text"], min_letters=settings.min_letters,
                            min_confidence=settings.min_confidence)
    hint = event.get("language", {}).get("hint")
    return {**event, "language": {"code": guess.code, "confidence": guess.confidence, "hint": hint}}


class _Detect(StageFn):
    stage = "language"

    def __init__(self, settings: LanguageSettings) -> None:
        super().__init__()
        self.settings = settings

    def setup(self) -> None:
        detect_language("warm up the profiles once per worker, not on the first element")

    def apply(self, event: dict[str, Any]) -> dict[str, Any]:
        return detect_event_language(event, self.settings)


class DetectLanguage(beam.PTransform):
    """Outputs (events, dead letters)."""

    def __init__(self, settings: LanguageSettings) -> None:
        super().__init__()
        self.settings = settings

    def stage_fn(self) -> StageFn:
        return _Detect(self.settings)

    def expand(self, events: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        return run_stage(events, "DetectLanguage", self.stage_fn())
