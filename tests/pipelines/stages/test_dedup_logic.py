"""Exact, near-duplicate and fragment detection on hand-written fixture articles and the shared samples."""

from __future__ import annotations

import json
import pickle

import pytest

from core.settings import DedupSettings
from pipelines.stages.dedup.logic import (
    DedupIndex,
    KeyHits,
    canonical_url,
    fingerprint,
    judge,
    minhash_signature,
    probe_bucket,
    sentence_keys,
)
from pipelines.text.normalise import normalise_text
from tests.paths import ARTICLES, SAMPLES

HOUR = 3600.0


def text(name: str) -> str:
    """A fixture (or 'shared:NAME' sample) as the pipeline sees it: normalised."""
    path = SAMPLES / name.removeprefix("shared:") if name.startswith("shared:") else ARTICLES / name
    return normalise_text(path.read_text(encoding="utf-8")).text


@pytest.fixture
def index() -> DedupIndex:
    """An index that has seen the Turku fire article and some unrelated news."""
    idx = DedupIndex()
    for i, name in enumerate(["helsinki-tram-line.txt", "turku-port-fire.txt", "tallinn-ferry-strike.txt"]):
        assert idx.add(name, text(name), ts=i * 60.0).match is None
    return idx


def test_exact_repost_is_a_duplicate_of_the_first_event(index: DedupIndex) -> None:
    verdict = index.add("repost", text("turku-port-fire.repost.txt"), ts=600.0)
    assert verdict.match is not None
    assert (verdict.match.kind, verdict.match.event_id) == ("exact", "turku-port-fire.txt")
    assert verdict.match.as_fields()["duplicate_of"] == "turku-port-fire.txt"


def test_same_url_is_a_duplicate_even_after_an_edit(index: DedupIndex) -> None:
    idx = DedupIndex()
    idx.add("first", text("turku-port-fire.txt"), 0.0, url="https://www.turku-daily.example/news/port-fire/")
    verdict = idx.add("again", text("turku-port-fire.edited.txt"), 60.0,
                      url="http://turku-daily.example/news/port-fire?utm_source=rss#comments")
    assert verdict.match is not None and (verdict.match.kind, verdict.match.event_id) == ("same_url", "first")


def test_one_word_edit_is_a_near_duplicate(index: DedupIndex) -> None:
    verdict = index.add("edited", text("turku-port-fire.edited.txt"), ts=600.0)
    m = verdict.match
    assert m is not None and (m.kind, m.event_id) == ("near_duplicate", "turku-port-fire.txt")
    assert m.similarity > 0.85
    assert m.as_fields()["near_duplicate_of"] == "turku-port-fire.txt"
    assert m.as_fields()["duplicate_of"] is None


def test_rewrapped_truncated_excerpt_with_marker_is_contained(index: DedupIndex) -> None:
    raw = (ARTICLES / "turku-port-fire.excerpt-3-26.txt").read_text(encoding="utf-8")
    normalised = normalise_text(raw)
    assert normalised.marker is not None and (normalised.marker.part, normalised.marker.total) == (3, 26)
    verdict = index.add("excerpt", normalised.text, ts=600.0)
    m = verdict.match
    assert m is not None and (m.kind, m.event_id) == ("contained", "turku-port-fire.txt")
    assert m.containment >= 0.8
    assert m.similarity < 0.45  # plain Jaccard would not have called this a duplicate


def test_full_article_arriving_after_its_excerpt_contains_it() -> None:
    idx = DedupIndex()
    idx.add("excerpt", text("turku-port-fire.excerpt-3-26.txt"), 0.0)
    m = idx.add("article", text("turku-port-fire.txt"), 60.0).match
    assert m is not None and (m.kind, m.event_id) == ("contains", "excerpt")


def test_same_event_from_another_outlet_is_not_a_duplicate(index: DedupIndex) -> None:
    assert index.add("other", text("turku-port-fire.other-outlet.txt"), 600.0).match is None


def test_shared_samples_same_story_but_not_duplicates() -> None:
    idx = DedupIndex()
    assert idx.add("article", text("shared:russia-warns-finland-sweden.txt"), 0.0).match is None
    assert idx.add("liveblog", text("shared:liveblog-fragment-2-26.txt"), 60.0).match is None


def test_entries_older_than_the_ttl_no_longer_match() -> None:
    settings = DedupSettings(ttl_s=72 * HOUR)
    idx = DedupIndex(settings)
    idx.add("first", text("turku-port-fire.txt"), 0.0)
    assert idx.match(text("turku-port-fire.edited.txt"), ts=71 * HOUR) is not None
    assert idx.match(text("turku-port-fire.edited.txt"), ts=73 * HOUR) is None
    idx.expire(before_ts=73 * HOUR - settings.ttl_s)
    assert len(idx) == 0


def test_state_is_bounded_and_serialisable() -> None:
    settings = DedupSettings(max_bucket_entries=3)
    idx = DedupIndex(settings)
    article = text("turku-port-fire.txt")
    for i in range(10):
        idx.add(f"copy-{i}", article, float(i))
    assert max(len(b) for b in idx.state.values()) <= 3
    again = idx.add("copy-10", article, 10.0).match
    assert again is not None and again.event_id == "copy-0"  # the first one is kept
    restored = pickle.loads(pickle.dumps(idx.state))
    assert restored == idx.state
    assert json.loads(json.dumps(idx.state)) is not None


def test_keys_do_not_depend_on_the_process_or_on_line_wrapping() -> None:
    article, excerpt = text("turku-port-fire.txt"), text("turku-port-fire.excerpt-3-26.txt")
    assert minhash_signature(article) == minhash_signature(article)
    assert fingerprint(article).band_keys == fingerprint(text("turku-port-fire.repost.txt")).band_keys
    shared = set(sentence_keys(excerpt)) & set(sentence_keys(article))
    assert len(shared) >= len(sentence_keys(excerpt)) - 1  # only the cut-off last sentence differs


def test_two_workers_meet_in_keyed_state() -> None:
    """Each key's step runs where its key lives; the verdict only needs the per-key hits."""
    state: dict[str, tuple] = {}  # stands for Beam keyed state, partitioned by key across workers
    article, edited = fingerprint(text("turku-port-fire.txt")), fingerprint(text("turku-port-fire.edited.txt"))
    for key in article.keys:
        _, state[key] = probe_bucket(state.get(key, ()), key, article, "a", 0.0)
    hits = []
    for key in reversed(edited.keys):  # any order, any worker
        found, state[key] = probe_bucket(state.get(key, ()), key, edited, "b", 5.0)
        if found:
            hits.append(KeyHits(key, tuple(found)))
    m = judge(edited, hits)
    assert m is not None and (m.kind, m.event_id) == ("near_duplicate", "a")


def test_canonical_url_drops_tracking_and_fragment() -> None:
    assert canonical_url("HTTP://www.Example.com/a/b/?utm_medium=x&id=3#top") == "https://example.com/a/b?id=3"
