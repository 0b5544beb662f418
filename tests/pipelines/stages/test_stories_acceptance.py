"""Issue 16's acceptance cases, on a fresh namespace of a real redis-server (RedisStoryStore, the
pipeline's story state): short reports of one event join, stock quotes never join, a tournament's
matches stay apart, and a story does not chain through pairwise-similar events."""

from __future__ import annotations

import itertools
from typing import Any

from connectors.redis import RedisServer, make_redis
from core.settings import StorySettings
from pipelines.stages.stories.clustering import (
    Rarity,
    StoryInput,
    StoryState,
    default_scorer,
    evidence,
    story_features,
    vectors,
)
from pipelines.stages.stories.state import RedisStoryStore

T0 = 1_767_600_000.0  # 2026-01-05T08:00Z
NATO = {"id": "org:nato", "name": "NATO", "type": "org"}
FINLAND = {"id": "geonames:660013", "name": "Finland"}
RUSSIA = {"id": "geonames:2017370", "name": "Russia"}


def event(n: int, title: str, text: str, minutes: float, source: str = "wire",
          entities: tuple[dict[str, Any], ...] = (), places: tuple[dict[str, Any], ...] = ()) -> tuple[dict[str, Any], float]:
    ts = T0 + minutes * 60
    return ({"event_id": f"{n:032x}", "source": source, "title": title, "text": text,
             "entities": list(entities), "places": list(places)}, ts)


def assign_all(server: RedisServer, namespace: str, events: list[tuple[dict[str, Any], float]]) -> list[str]:
    store = RedisStoryStore(make_redis(server.url), namespace=namespace)
    return [store.assign(e, ts).story_id for e, ts in events]


def test_three_short_drone_reports_join_one_story_on_a_fresh_stack(redis_server: RedisServer,
                                                                    redis_namespace: str) -> None:
    reports = [
        event(1, "NATO jets scrambled over Finland after Russian drones crossed the border",
              "NATO fighter jets were scrambled over eastern Finland on Monday after several Russian drones "
              "crossed the border, the Finnish defence ministry said.", 0, "wire-a", (NATO,), (FINLAND, RUSSIA)),
        event(2, "Finland asks NATO for Article 4 consultations over drone incursion",
              "Finland asked NATO for consultations under Article 4 after drones entered its airspace near the "
              "Russian border on Monday, the president's office said.", 40, "wire-b", (NATO,), (FINLAND, RUSSIA)),
        event(3, "Two NATO fighters patrol eastern Finland",
              "Two NATO fighter jets were sent to patrol eastern Finland after the drones crossed into its "
              "airspace, an alliance official said.", 75, "wire-c", (NATO,), (FINLAND,)),
    ]
    assert len(set(assign_all(redis_server, redis_namespace, reports))) == 1


def test_the_issues_one_line_drone_reports_join_with_gazetteer_enrichment(redis_server: RedisServer,
                                                                         redis_namespace: str) -> None:
    """The three reports exactly as issue 16 quotes them, tagged by the shipped gazetteer."""
    from pipelines.text.entities import EntityTagger
    from pipelines.text.places import PlaceResolver

    tagger, resolver = EntityTagger(mode="gazetteer"), PlaceResolver(demonyms=True)
    lines = ["NATO jets scrambled over Finland after Russian drones crossed the border",
             "Finland asked NATO for consultations under Article 4 after drones entered its airspace",
             "Two NATO fighter jets were sent to patrol eastern Finland"]
    reports = []
    for i, line in enumerate(lines):
        ents = tagger.tag(line, "en")
        places = resolver.resolve(line, "en", ents).to_dict()["places"]
        reports.append(event(i, line, line + ".", 30 * i, f"wire-{i}", tuple(e.to_dict() for e in ents),
                             tuple(places)))
    assert len(set(assign_all(redis_server, redis_namespace, reports))) == 1


def test_stock_quoted_phrases_alone_never_join(redis_server: RedisServer, redis_namespace: str) -> None:
    stock = ("We have to wait and see what happens next, as far as I'm concerned it was going to be a "
             "difficult day")
    events = [
        event(1, "Harbour crane collapses in Gdansk", f'A crane collapsed at the Gdansk container terminal. "{stock}," '
              "the port manager said.", 0),
        event(2, "Striker ruled out with knee injury", f'The club said its top scorer will miss six weeks with a knee '
              f'injury. "{stock}," the coach said.', 20),
        event(3, "Bakery chain raises bread prices", f'The country\'s largest bakery chain raised bread prices by '
              f'eight percent. "{stock}," its chief executive said.', 40),
    ]
    assert len(set(assign_all(redis_server, redis_namespace, events))) == 3


def _match(n: int, home: str, away: str, score: str, scorer: str, minutes: float, source: str
           ) -> tuple[dict[str, Any], float]:
    return event(n, f"Baltic Cup: {home} {score} {away}",
                 f"{home} and {away} finished {score} in the Baltic Cup group stage in Riga on Saturday. "
                 f"{scorer} scored for {home}. The tournament continues on Sunday with two more group matches, "
                 "and the top two teams in each group reach the semi-finals.", minutes, source)


def test_a_tournaments_separate_matches_stay_separate_stories(redis_server: RedisServer,
                                                              redis_namespace: str) -> None:
    events = [
        _match(1, "Estonia", "Latvia", "2-1", "Karl Tamm", 0, "wire-a"),
        _match(2, "Lithuania", "Finland", "0-0", "Nobody", 30, "wire-a"),
        _match(3, "Estonia", "Latvia", "2-1", "Karl Tamm", 45, "wire-b"),
        _match(4, "Poland", "Sweden", "3-2", "Piotr Nowak", 180, "wire-a"),
        _match(5, "Lithuania", "Finland", "0-0", "Nobody", 200, "wire-b"),
    ]
    got = assign_all(redis_server, redis_namespace, events)
    assert got[0] == got[2] and got[1] == got[4]  # two outlets on one match: one story
    assert len({got[0], got[1], got[3]}) == 3     # three matches: three stories


CHAIN = ["glacier", "avalanche", "village", "rescuers", "helicopter", "dogs", "survivors", "rubble", "blizzard", "shelter", "generators", "hospital", "ambulance", "surgeons", "blood", "donors", "vaccine", "clinic", "nurses", "paediatric", "ward", "funding", "ministry", "audit", "contract", "tender", "court", "appeal", "verdict"]


def _chain_event(k: int) -> tuple[dict[str, Any], float]:
    window = CHAIN[3 * k: 3 * k + 9]  # each event shares two thirds of its words with the next
    text = " ".join(window).capitalize() + ". " + " ".join(reversed(window)).capitalize() + "."
    return event(k, " ".join(window[3:6]).title(), text, 30 * k, f"outlet-{k}")  # its headline: what it shares with both neighbours


def test_a_story_does_not_chain_through_pairwise_similar_events(redis_server: RedisServer,
                                                                redis_namespace: str) -> None:
    events = [_chain_event(k) for k in range(7)]
    # each neighbour pair alone would join ...
    for (a, ta), (b, tb) in itertools.pairwise(events):
        rarity, item_a, item_b = Rarity(), StoryInput.from_event(a, ta), StoryInput.from_event(b, tb)
        fa, fb = story_features(item_a), story_features(item_b)
        story = StoryState("x", ta, ta)
        story.add(item_a, fa, vectors(fa, rarity), StorySettings(founder_weight=1.0))
        assert default_scorer().probability(evidence(fb, vectors(fb, rarity), tb, story)) >= StorySettings().join_threshold
    # ... but the story is about what its first events said: the chain's far end is another story
    got = assign_all(redis_server, redis_namespace, events)
    assert got[0] == got[1]
    assert got[-1] != got[0]


def test_stories_score_on_publication_time_not_arrival() -> None:
    from pipelines.stages.stories.transform import story_time_s

    arrived = {"origin": {"timestamp_ms": int(T0 * 1000)}}
    assert story_time_s({**arrived, "published_at": "2026-01-04T20:00:00Z"}) == T0 - 12 * 3600
    assert story_time_s({**arrived, "published_at": "2026-01-06T08:00:00Z"}) == T0  # in the future: arrival
    assert story_time_s({**arrived, "published_at": "yesterday"}) == T0
    assert story_time_s(arrived) == T0
    # a date alone (a feed without times) stands for the whole day: scored at its noon
    day = {**arrived, "published_at": "2026-01-04T00:00:00Z", "published_precision": "day"}
    assert story_time_s(day) == T0 - 20 * 3600
