"""EmitEvents: stamp processed_at and enforce the EnrichedEvent schema where data leaves the pipeline."""

from __future__ import annotations

from typing import Any

import apache_beam as beam

from newswire.schemas import SchemaViolation, validate
from pipelines.events import Rejected, utc_now_iso
from pipelines.io import Delivery
from pipelines.transforms.common import PRIVATE_KEYS, StageFn, accept, run_stage


def finish_event(event: dict[str, Any]) -> dict[str, Any]:
    """Set processed_at and check the public part against config/schemas/enriched-event.v1.json."""
    event = {**event, "processed_at": utc_now_iso()}
    try:
        validate("enriched-event", {k: v for k, v in event.items() if k not in PRIVATE_KEYS})
    except SchemaViolation as exc:
        raise Rejected("emit", "schema", str(exc)) from None
    return event


class _Emit(StageFn):
    stage = "emit"

    def apply(self, event: dict[str, Any]) -> Delivery:  # type: ignore[override]
        return accept(finish_event(event))


class EmitEvents(beam.PTransform):
    """In-flight events -> event Deliveries; outputs (deliveries, dead letters)."""

    def expand(self, events: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        return run_stage(events, "Emit", _Emit())
