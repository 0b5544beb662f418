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
    is_update,
    judge,
    lsh_band_keys,
    minhash_signature,
    probe_bucket,
    sentence_key,
    sentence_keys,
    sentence_words,
    sentences,
    window_hashes,
    words,
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


def test_keys_are_the_ones_redis_already_holds() -> None:
    """Band, sentence and shingle hashes are what earlier versions computed (pinned values): a
    faster way to compute them must not orphan the state a running store holds."""
    signature = tuple((i * 2654435761) % (1 << 32) for i in range(126))
    keys = lsh_band_keys(signature)
    assert (len(keys), keys[0], keys[41]) == (42, "b00:f435948a20001c92", "b41:110d03ec690ac081")
    assert window_hashes(["the", "port", "of", "Turku", "é"]).tolist() == [
        17927509978494348665, 8508336073668621517, 13588137799408562375]
    fp = fingerprint("A ship caught fire in the port of Turku on Monday night. "
                     "Firefighters fought the blaze for six hours.")
    assert fp.band_keys[:2] == ("b00:8ff6715849ad8c76", "b01:51b23f5d8c258779")
    assert fp.sentence_keys == ("s:93b169d81de3f96f", "s:a80d23f9250cb309")


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


# ------------------------------------------------------------------ versions of one page (live blogs)

BLOG = "https://www.daily.example/live/storm-aila/"


def said(name: str) -> list[str]:
    """The fixture's sentences that dedup keys (at least ``min_sentence_words`` words)."""
    return [x for x in sentences(text(name)) if len(x.split()) >= DedupSettings().min_sentence_words]


def page(idx: DedupIndex, event_id: str, body: str, ts: float, source: str = "daily", **kw: str) -> object:
    """Add a version of the live blog (its URL, ``source``) and return its match."""
    return idx.add(event_id, body, ts, url=kw.pop("url", BLOG), source=source, **kw).match


def test_a_live_blog_update_is_an_update_of_the_version_it_supersedes() -> None:
    idx = DedupIndex()
    assert page(idx, "v1", text("liveblog-storm.update-1.txt"), 0.0) is None
    m = page(idx, "v3", text("liveblog-storm.update-3.txt"), 600.0, url=BLOG + "?utm_source=rss#entry-3")
    assert m is not None and (m.kind, m.event_id) == ("update", "v1")
    assert round(m.containment, 3) == round(4 / 7, 3)  # 3 of its 7 sentences are new
    fields = m.as_fields()
    assert (fields["update_of"], fields["duplicate_of"], fields["near_duplicate_of"]) == ("v1", None, None)
    # the next entry updates the latest version, not the first
    v4 = text("liveblog-storm.update-3.txt") + "\n\n" + " ".join(sentences(text("kyiv-wheat-exports.txt"))[:2])
    m4 = page(idx, "v4", v4, 1200.0)
    assert m4 is not None and (m4.kind, m4.event_id) == ("update", "v3")


def test_an_update_with_60_percent_new_sentences_is_not_a_duplicate() -> None:
    """The case from issue 15: before, the same URL made it a ``same_url`` duplicate (and its estimated
    Jaccard with the earlier version is above ``near_duplicate_jaccard``: a near-duplicate test
    would call it one too)."""
    lines = said("turku-port-fire.txt")
    idx = DedupIndex()
    page(idx, "before", " ".join(lines[:8]), 0.0)
    m = page(idx, "after", " ".join(lines[:20]), 60.0)
    assert m is not None and (m.kind, m.event_id) == ("update", "before")
    assert m.containment == 0.4 and m.similarity >= DedupSettings().near_duplicate_jaccard


def test_identical_or_nothing_new_at_the_same_page_stays_a_duplicate() -> None:
    idx = DedupIndex()
    page(idx, "v1", text("liveblog-storm.update-1.txt"), 0.0)
    page(idx, "v3", text("liveblog-storm.update-3.txt"), 60.0)
    rewrapped = page(idx, "v1-again", text("liveblog-storm.update-2.txt"), 120.0)  # v1 re-wrapped, new marker
    assert rewrapped is not None and (rewrapped.kind, rewrapped.event_id) == ("exact", "v1")
    fewer = page(idx, "v3-cut", " ".join(sentences(text("liveblog-storm.update-3.txt"))[:5]), 180.0)  # entries dropped, nothing added
    assert fewer is not None and (fewer.kind, fewer.event_id) == ("same_url", "v3")
    assert fewer.as_fields()["duplicate_of"] == "v3"
    # the exact copy was not stored as a version of the page: the page key holds v1, v3, v3-cut
    url_key = fingerprint("x", url=BLOG).exact_keys[1]
    assert [e.event_id for e in idx.state[url_key]] == ["v1", "v3", "v3-cut"]


def test_another_source_with_the_same_url_is_a_copy_not_an_update() -> None:
    idx = DedupIndex()
    page(idx, "theirs", text("liveblog-storm.update-1.txt"), 0.0, source="daily")
    m = page(idx, "aggregated", text("liveblog-storm.update-3.txt"), 60.0, source="aggregator")
    assert m is not None and (m.kind, m.event_id) == ("same_url", "theirs")


def test_a_feed_item_with_new_text_under_its_guid_is_an_update() -> None:
    idx = DedupIndex()
    idx.add("item", text("liveblog-storm.update-1.txt"), 0.0, guid="rss:daily\x1fstorm", source="rss:daily")
    m = idx.add("item-2", text("liveblog-storm.update-3.txt"), 60.0, guid="rss:daily\x1fstorm", source="rss:daily").match
    assert m is not None and (m.kind, m.event_id) == ("update", "item")


def test_is_update_counts_what_the_version_adds() -> None:
    fp = fingerprint(" ".join(said("turku-port-fire.txt")[:10]))
    assert len(fp.sentence_keys) == 10
    assert is_update(fp, previous_sentences=8, shared=8, similarity=0.8)       # two new sentences
    assert is_update(fp, previous_sentences=9, shared=9, similarity=0.9)       # one added, none dropped
    assert not is_update(fp, previous_sentences=10, shared=9, similarity=0.9)  # one reworded: a correction
    assert not is_update(fp, previous_sentences=12, shared=10, similarity=0.8)  # entries dropped only
    one = fingerprint("Storm Aila has cut power to 40,000 homes in Finland.")
    assert is_update(one, previous_sentences=0, shared=0, similarity=0.1)      # a different one-liner
    assert not is_update(one, previous_sentences=0, shared=0, similarity=0.6)  # the same one, edited


def test_a_full_page_key_points_updates_at_its_last_stored_version() -> None:
    idx = DedupIndex(DedupSettings(max_bucket_entries=2))
    lines = said("turku-port-fire.txt")
    page(idx, "v1", " ".join(lines[:4]), 0.0)
    page(idx, "v2", " ".join(lines[:8]), 60.0)
    m = page(idx, "v3", " ".join(lines[:12]), 120.0)
    assert m is not None and (m.kind, m.event_id) == ("update", "v2")
    m = page(idx, "v4", " ".join(lines[:16]), 180.0)  # v3 did not fit: still an update, of v2
    assert m is not None and (m.kind, m.event_id) == ("update", "v2")


def test_sentence_words_are_each_sentence_with_its_words_and_key() -> None:
    # Dedup and the stories stage's novelty both read this one split of a text (cached): it must
    # be exactly sentences(), words() and sentence_key() of each.
    for name in ("shared:russia-warns-finland-sweden.txt", "shared:liveblog-fragment-2-26.txt",
                 "turku-port-fire.excerpt-3-26.txt"):
        t = text(name)
        got = sentence_words(t)
        assert [s.text for s in got] == sentences(t)
        assert all(s.words == tuple(words(s.text)) and s.key == sentence_key(s.text) for s in got)
        assert sentence_words(t) is got  # computed once for the text
    assert sentence_words("") == ()
