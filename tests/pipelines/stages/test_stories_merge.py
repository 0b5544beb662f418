"""Late merge (issue 16): an event that reports the event of two open stories merges the smaller
into the other, in the commit script, on a real redis-server. Ids already emitted stay; later
events of the absorbed story get the surviving id; a bridge between two *different* events does
not merge them."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from connectors.redis import RedisServer, make_redis
from core.schemas import load_schema
from core.settings import StorySettings
from pipelines.stages.stories.clustering import (
    StoryClusterer,
    StoryInput,
    same_event,
    story_id_for,
    story_similarity,
)
from pipelines.stages.stories.state import RedisStoryStore, story_from_json

T0 = 1_767_600_000.0  # 2026-01-05T08:00Z
HOUR = 3600.0
SHIPPING = {"id": "ner:org:valemar-shipping", "name": "Valemar Shipping", "type": "org"}
GDANSK = {"id": "geonames:3099434", "name": "Gdansk"}


def report(n: int, title: str, text: str, hours: float, source: str, **extra: Any) -> tuple[dict[str, Any], float]:
    return ({"event_id": f"{n:032x}", "source": source, "title": title, "text": text,
             "entities": [SHIPPING], "places": [GDANSK], **extra}, T0 + hours * HOUR)


# One grounding told three ways: the second report (60 h later, on the spill) is too far from the
# first to join it; the third, published in between and arriving last, is close to both.
GROUNDING = report(1, "Tanker Valemar Star runs aground off Gdansk, oil leaking",
                   "The tanker Valemar Star ran aground off Gdansk on Monday and began leaking oil into the Baltic, "
                   "the port authority said. Valemar Shipping said the crew of 19 was safe.", 0, "wire-a")
SPILL = report(2, "Oil spill from grounded tanker reaches Gdansk beaches",
               "Oil from the grounded tanker Valemar Star washed up on beaches near Gdansk, where volunteers cleaned "
               "the sand. Valemar Shipping said salvage crews were pumping the remaining cargo.", 60, "wire-b")
BRIDGE = report(3, "Valemar Star tanker: oil leak off Gdansk spreads toward beaches",
                "The Valemar Star tanker that ran aground off Gdansk kept leaking oil, and the slick spread toward the "
                "beaches. Valemar Shipping said the crew was safe and salvage crews were pumping cargo.", 30, "wire-c")


def store(server: RedisServer, namespace: str) -> RedisStoryStore:
    return RedisStoryStore(make_redis(server.url), namespace=namespace)


def test_an_event_close_to_two_stories_of_one_event_merges_them(redis_server: RedisServer,
                                                                redis_namespace: str) -> None:
    s = store(redis_server, redis_namespace)
    first, second = s.assign(*GROUNDING), s.assign(*SPILL)
    assert first.story_id != second.story_id  # 60 h apart: two stories at first
    bridge = s.assign(*BRIDGE)
    # the larger (here: older) story survives, the event joins it and says what it absorbed
    assert bridge.story_id == first.story_id and not bridge.is_new
    fields = bridge.to_fields()
    assert fields["story"]["merged_from"] == [second.story_id]
    assert (fields["story"]["event_count"], fields["story"]["source_count"]) == (3, 3)
    schema = load_schema("enriched-event")  # the field is in the event schema (optional, 1.5)
    Draft202012Validator({"$defs": schema["$defs"], **schema["properties"]["story"]}).validate(fields["story"])
    assert s.merged_into(second.story_id) == first.story_id
    assert s.story(second.story_id) == s.story(first.story_id)
    # events of stories that never merged carry no merged_from (the field is optional)
    assert "merged_from" not in first.to_fields()["story"]

    # a later copy of the absorbed story's event follows the merge to the surviving id
    copy = s.assign(*report(4, "Oil spill reaches Gdansk beaches", SPILL[0]["text"], 62, "wire-d",
                            duplicate_of=SPILL[0]["event_id"]))
    assert copy.story_id == first.story_id
    assert copy.story["event_count"] == 4
    assert copy.novelty_ratio == 0.0  # the absorbed story's sentences count as already told

    # replaying the bridging event: its first result, and the merge is not done twice
    again = s.assign(*BRIDGE)
    assert again.to_fields() == fields
    assert s.story(first.story_id)["event_count"] == 4  # type: ignore[index]


def test_the_redis_store_merges_as_the_single_process_clusterer_does(redis_server: RedisServer,
                                                                     redis_namespace: str) -> None:
    s, clusterer = store(redis_server, redis_namespace), StoryClusterer()
    for event, ts in (GROUNDING, SPILL, BRIDGE):
        want = clusterer.assign(StoryInput.from_event(event, ts))
        got = s.assign(event, ts)
        assert (got.story_id, got.is_new, got.story["merged_from"]) == (want.story_id, want.is_new,
                                                                       want.story["merged_from"])
    spill = story_id_for(SPILL[0]["event_id"])
    assert s.merged_into(spill) == clusterer.root(spill) != spill


def test_late_merges_can_be_turned_off(redis_server: RedisServer, redis_namespace: str) -> None:
    s = RedisStoryStore(make_redis(redis_server.url), StorySettings(merge_min_similarity=1.0), namespace=redis_namespace)
    ids = [s.assign(*e).story_id for e in (GROUNDING, SPILL, BRIDGE)]
    assert ids[0] != ids[1] and s.merged_into(ids[1]) == ids[1]


def _match(n: int, home: str, away: str, score: str, scorer: str, minutes: float, source: str
           ) -> tuple[dict[str, Any], float]:
    return ({"event_id": f"{n:032x}", "source": source, "title": f"Baltic Cup: {home} {score} {away}",
             "text": f"{home} and {away} finished {score} in the Baltic Cup group stage in Riga on Saturday. "
                     f"{scorer} scored for {home}. The tournament continues on Sunday with two more group matches, "
                     "and the top two teams in each group reach the semi-finals."}, T0 + minutes * 60)


def test_a_round_up_of_two_matches_does_not_merge_them(redis_server: RedisServer, redis_namespace: str) -> None:
    """The round-up resembles both matches' stories (which resemble each other), but the matches'
    scores disagree: the stories themselves are not one event, whatever one event bridges."""
    s = store(redis_server, redis_namespace)
    matches = [_match(1, "Estonia", "Latvia", "2-1", "Karl Tamm", 0, "wire-a"),
               _match(2, "Lithuania", "Finland", "0-0", "Nobody", 30, "wire-a")]
    a, b = (s.assign(*m).story_id for m in matches)
    assert a != b
    raw = [s.client.get(f"{redis_namespace}st:s:{sid}") for sid in (a, b)]
    sa, sb = (story_from_json(x) for x in raw if x is not None)
    assert story_similarity(sa, sb) >= StorySettings().merge_min_similarity and not same_event(sa, sb)
    roundup = ({"event_id": f"{9:032x}", "source": "wire-c", "title": "Baltic Cup: Estonia 2-1 Latvia, Lithuania 0-0 Finland",
                "text": "Estonia beat Latvia 2-1 and Lithuania and Finland drew 0-0 in the Baltic Cup group stage in "
                        "Riga on Saturday. Karl Tamm scored for Estonia. The tournament continues on Sunday and the "
                        "top two teams in each group reach the semi-finals."}, T0 + 2 * HOUR)
    got = s.assign(*roundup)
    assert got.story_id in (a, b) and "merged_from" not in got.to_fields()["story"]
    assert s.merged_into(a) == a and s.merged_into(b) == b
