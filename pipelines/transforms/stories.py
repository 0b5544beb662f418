"""AssignStories: every event joins a story (``story_id``) and learns what it adds to it (``novelty``).

The Beam side of ``pipelines.text.stories`` and ``pipelines.text.novelty`` (read their docstrings)::

    events --KeyByDesk--> StoryDesk ---------------------> (story_id, event) --> Novelty --> events
                          (state per desk: routing index,                       (state per story_id:
                           story states, entity rarity)                          StoryMemory)

Why the story decision is one keyed step and not a fan-out like ``Deduplicate``
-------------------------------------------------------------------------------------
Dedup decides per key (``probe_entry`` stores the event whatever the verdict), so its state can be
split by key. A story decision cannot: scoring reads the candidate stories' state, and the outcome
(which story) must then be written to that story *and* to the routing index under every key of
the event. With Beam keyed state that is a read in one stateful step and a write in a later one,
i.e. a cycle, which a Beam graph cannot have (state belongs to one step). So the routing index,
the story states and the entity rarity live together in one :class:`~pipelines.text.stories.
StoryClusterer` per *desk* key, updated in one atomic step per event: exactly the single-process
semantics the text tests pin down. The desk key is a constant by default (one desk; the step
runs on one worker at a time); ``desk_key`` can shard it, e.g. by language, at the price that
stories never span desks. Novelty memory only needs the decided ``story_id``, so it is keyed by
story and runs in parallel.

Consistency: within a desk, decisions are sequential in arrival order (not event-time order); a
late event is scored against the stories as they are when it arrives. Across desks there is no
sharing. Novelty sees a story's events in the order they reach its key.

Links: an event that Deduplicate marked (``duplicate_of`` / ``near_duplicate_of``) joins the story
of the event it repeats, and one whose source gave a ``story_key`` joins the story of that source's
earlier event with the same key, while that story is open: a re-post or an updated live-blog entry
often has no quotes or entities in common with much else, but it is certainly the same story.

TTL: stories, routing entries and links unseen for ``max_gap_s`` (default 72 h) are dropped every
``expire_every_s`` of event time while events flow, and by an event-time timer at ``newest event +
max_gap_s`` when the desk goes idle. A story's novelty memory is cleared by a timer at its last
event + ``max_gap_s``.

Restart-safe state (later): everything a desk knows is one picklable :class:`_Desk` value and a
story's novelty memory one :class:`~pipelines.text.novelty.StoryMemory`, read and written once per
event in :class:`_StoryDesk` / :class:`_Novelty`. A Redis variant swaps those two reads/writes for
per-story hashes and per-key routing sets (``StoryState.to_state`` / ``StoryMemory.to_state`` are
JSON-ready) with ``EXPIRE max_gap_s``; with a shared store the desk no longer has to be one key: the
decision can run per event (``WATCH`` the candidate stories, retry on conflict).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from pipelines.events import iso_from_millis
from pipelines.text.novelty import DEFAULT_NOVELTY_SETTINGS, NoveltySettings, StoryMemory, novelty_step
from pipelines.text.stories import (
    DEFAULT_STORY_SETTINGS,
    StoryAssignment,
    StoryClusterer,
    StoryInput,
    StorySettings,
)
from pipelines.transforms.near_dedup import event_time_s

#: Fields this stage sets on every event.
STORY_FIELDS = ("story_id", "story", "novelty")

_EPSILON_S = 0.001


def one_desk(event: dict[str, Any]) -> str:
    """The default desk key: every event meets every story."""
    return "stories"


@dataclass
class _Desk:
    """A desk's whole state: the clusterer, links (event / story key -> story) and the next expiry time."""

    clusterer: StoryClusterer
    links: dict[str, tuple[str, float]] = field(default_factory=dict)  # link key -> (story_id, last ts)
    next_expiry: float = float("-inf")

    def expire(self, now: float) -> None:
        """Drop everything unseen for ``max_gap_s`` before ``now``."""
        self.clusterer.expire(now)
        horizon = now - self.clusterer.settings.max_gap_s
        self.links = {k: v for k, v in self.links.items() if v[1] >= horizon}


def link_keys(event: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(keys this event can follow to a known story, keys it files its own story under)."""
    follow = [f"e:{event[f]}" for f in ("duplicate_of", "near_duplicate_of") if event.get(f)]
    own = [f"e:{event['event_id']}"]
    if event.get("story_key"):
        key = f"k:{event.get('source')}\x1f{event['story_key']}"
        follow.append(key)
        own.append(key)
    return follow, own


def story_fields(assignment: StoryAssignment) -> dict[str, Any]:
    """The ``story`` object written on the event (the story as it is after this event)."""
    st = assignment.story
    return {
        "is_new": assignment.is_new,
        "score": round(assignment.score.score, 3) if assignment.score else None,
        "event_count": st["event_count"],
        "source_count": st["source_count"],
        "first_seen": iso_from_millis(int(st["first_seen"] * 1000)),
        "last_seen": iso_from_millis(int(st["last_seen"] * 1000)),
        "top_entities": st["top_entities"],
        "top_places": st["top_places"],
    }


class _StoryDesk(beam.DoFn):
    """State per desk: a StoryClusterer plus links. Emits (story_id, (event, ts))."""

    DESK = ReadModifyWriteStateSpec("desk", PickleCoder())
    DESK_PARAM = beam.DoFn.StateParam(DESK)
    IDLE = TimerSpec("idle", TimeDomain.WATERMARK)
    IDLE_PARAM = beam.DoFn.TimerParam(IDLE)

    def __init__(self, settings: StorySettings, expire_every_s: float) -> None:
        self.settings, self.expire_every_s = settings, expire_every_s
        self.new_stories = Metrics.counter("stories", "new_stories")
        self.joined = Metrics.counter("stories", "joined")
        self.linked = Metrics.counter("stories", "joined_by_link")

    def process(self, element: tuple[str, dict[str, Any]], ts: Any = beam.DoFn.TimestampParam,
                desk_state: Any = DESK_PARAM, idle: Any = IDLE_PARAM
                ) -> Iterator[tuple[str, tuple[dict[str, Any], float]]]:
        _, event = element
        t = event_time_s(event, ts)
        desk = desk_state.read() or _Desk(StoryClusterer(self.settings))
        if t >= desk.next_expiry:
            desk.expire(t)
            desk.next_expiry = t + self.expire_every_s
            idle.set(Timestamp(t + self.settings.max_gap_s + self.expire_every_s + _EPSILON_S))
        follow, own = link_keys(event)
        join = next((desk.links[k][0] for k in follow if k in desk.links), None)
        assignment = desk.clusterer.assign(StoryInput.from_event(event, t), join=join)
        for k in own:
            desk.links[k] = (assignment.story_id, t)
        desk_state.write(desk)
        (self.new_stories if assignment.is_new else self.linked if join else self.joined).inc()
        yield assignment.story_id, ({**event, "story_id": assignment.story_id, "story": story_fields(assignment)}, t)

    @on_timer(IDLE)
    def idle(self, fired: Any = beam.DoFn.TimestampParam, desk_state: Any = DESK_PARAM) -> None:
        desk = desk_state.read()
        if desk is None:
            return
        desk.expire(fired.micros / 1e6)
        if desk.clusterer.stories or desk.links:
            desk_state.write(desk)  # a late event refreshed something; the next event re-arms the timer
        else:
            desk_state.clear()


class _Novelty(beam.DoFn):
    """State per story: its StoryMemory; sets ``novelty`` = {ratio, new_sentences, repeated}."""

    MEMORY = ReadModifyWriteStateSpec("memory", PickleCoder())  # (StoryMemory, newest event time)
    MEMORY_PARAM = beam.DoFn.StateParam(MEMORY)
    EXPIRY = TimerSpec("expiry", TimeDomain.WATERMARK)
    EXPIRY_PARAM = beam.DoFn.TimerParam(EXPIRY)

    def __init__(self, settings: NoveltySettings, max_gap_s: float) -> None:
        self.settings, self.max_gap_s = settings, max_gap_s

    def process(self, element: tuple[str, tuple[dict[str, Any], float]],
                memory_state: Any = MEMORY_PARAM,
                expiry: Any = EXPIRY_PARAM) -> Iterator[dict[str, Any]]:
        _, (event, t) = element
        memory, newest = memory_state.read() or (StoryMemory(), float("-inf"))
        result = novelty_step(event.get("text") or "", memory, self.settings)
        if t > newest:
            newest = t
            expiry.set(Timestamp(t + self.max_gap_s + _EPSILON_S))
        memory_state.write((memory, newest))
        yield {**event, "novelty": {"ratio": round(result.novelty_ratio, 3),
                                    "new_sentences": list(result.new_sentences),
                                    "repeated": len(result.repeated_sentences)}}

    @on_timer(EXPIRY)
    def expire(self, memory_state: Any = MEMORY_PARAM) -> None:
        memory_state.clear()


class AssignStories(beam.PTransform):
    """Give every event ``story_id``, ``story`` (summary after this event) and ``novelty``.

    In: in-flight event dicts with ``event_id``, ``source``, ``text`` (normalised), ``origin``;
    optional ``entities`` / ``places`` (enrichment; quotes alone work without them),
    ``duplicate_of`` / ``near_duplicate_of`` (Deduplicate, run it first) and ``story_key``.
    Element timestamps are event time. Out: the same dicts plus :data:`STORY_FIELDS`.
    """

    def __init__(self, settings: StorySettings = DEFAULT_STORY_SETTINGS,
                 novelty: NoveltySettings = DEFAULT_NOVELTY_SETTINGS, *,
                 desk_key: Callable[[dict[str, Any]], str] = one_desk, expire_every_s: float = 3600.0) -> None:
        super().__init__()
        self.settings, self.novelty, self.desk_key = settings, novelty, desk_key
        self.expire_every_s = expire_every_s

    def expand(self, events: beam.PCollection) -> beam.PCollection:
        desk_key = self.desk_key
        return (
            events
            | "KeyByDesk" >> beam.Map(lambda e: (desk_key(e), e))
            | "StoryDesk" >> beam.ParDo(_StoryDesk(self.settings, self.expire_every_s))
            | "Novelty" >> beam.ParDo(_Novelty(self.novelty, self.settings.max_gap_s))
        )
