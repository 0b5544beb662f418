"""EmitEvents: stamp processed_at and enforce the EnrichedEvent schema where data leaves the pipeline."""

from __future__ import annotations

from typing import Any

import apache_beam as beam
import orjson

from core.records import PRIVATE_KEYS, Delivery, Rejected, bound_lists, utc_now_iso
from core.schemas import SchemaViolation, validate
from core.settings import PipelineSettings
from pipelines.transforms.common import StageFn, accept, run_stage


def finish_event(event: dict[str, Any], max_list_items: int = PipelineSettings.max_list_items, max_event_bytes: int = PipelineSettings.max_event_bytes
                 ) -> dict[str, Any]:
    """Set processed_at, bound the lists (`bound_lists`), and check the public part against
    config/schemas/enriched-event.v1.json and ``max_event_bytes`` (as JSON): an event the topic
    could not take is rejected here, with the reason, rather than failing the delivery step."""
    event = bound_lists({**event, "processed_at": utc_now_iso()}, max_list_items)
    public = {k: v for k, v in event.items() if k not in PRIVATE_KEYS}
    try:
        validate("enriched-event", public)
    except SchemaViolation as exc:
        raise Rejected("emit", "schema", str(exc)) from None
    size = len(orjson.dumps(public))
    if size > max_event_bytes:
        raise Rejected("emit", "oversized_event", f"the enriched event is {size} bytes as JSON, over "
                       f"pipeline.max_event_bytes ({max_event_bytes}) even with its lists bounded")
    return event


class _Emit(StageFn):
    stage = "emit"

    def __init__(self, max_list_items: int, max_event_bytes: int) -> None:
        super().__init__()
        self.max_list_items, self.max_event_bytes = max_list_items, max_event_bytes

    def apply(self, event: dict[str, Any]) -> Delivery:  # type: ignore[override]
        return accept(finish_event(event, self.max_list_items, self.max_event_bytes))


class EmitEvents(beam.PTransform):
    """In-flight events -> event Deliveries; outputs (deliveries, dead letters)."""

    def __init__(self, max_list_items: int = PipelineSettings.max_list_items, max_event_bytes: int = PipelineSettings.max_event_bytes) -> None:
        super().__init__()
        self.max_list_items, self.max_event_bytes = max_list_items, max_event_bytes

    def stage_fn(self) -> StageFn:
        return _Emit(self.max_list_items, self.max_event_bytes)

    def expand(self, events: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        return run_stage(events, "Emit", self.stage_fn())
