"""Novelty of live-blog updates within their story."""

from __future__ import annotations

import json

from core.settings import NoveltySettings
from pipelines.stages.stories.novelty import StoryMemory, assess_novelty, novelty_step
from pipelines.text.normalise import normalise_text
from tests.paths import ARTICLES


def text(name: str) -> str:
    return normalise_text((ARTICLES / name).read_text(encoding="utf-8")).text


def test_first_event_of_a_story_is_all_new() -> None:
    result = novelty_step(text("liveblog-storm.update-1.txt"), StoryMemory())
    assert result.novelty_ratio == 1.0 and not result.repeated_sentences


def test_repeated_live_blog_update_has_no_novelty() -> None:
    memory = StoryMemory()
    novelty_step(text("liveblog-storm.update-1.txt"), memory)
    repeat = novelty_step(text("liveblog-storm.update-2.txt"), memory)  # re-wrapped, new marker
    assert repeat.novelty_ratio == 0.0
    assert repeat.new_sentences == ()


def test_new_paragraph_sentences_are_listed_as_new() -> None:
    memory = StoryMemory()
    novelty_step(text("liveblog-storm.update-1.txt"), memory)
    novelty_step(text("liveblog-storm.update-2.txt"), memory)
    update = novelty_step(text("liveblog-storm.update-3.txt"), memory)
    assert update.new_sentences == (
        "Rail operator VR has cancelled all trains between Seinäjoki and Oulu until at least Sunday morning.",
        "Replacement buses will run where roads are open, the company said.",
        "Repair crews expect most homes to be reconnected by Sunday night.",
    )
    # "...until the evening, and is advising..." gained a comma: a near match, not news
    assert not any("orange warning" in s for s in update.new_sentences)
    assert 0.4 < update.novelty_ratio < 0.7


def test_excerpt_of_a_known_article_is_not_novel() -> None:
    memory = StoryMemory()
    novelty_step(text("turku-port-fire.txt"), memory)
    assert assess_novelty(text("turku-port-fire.excerpt-3-26.txt"), memory).novelty_ratio <= 0.15


def test_memory_is_bounded_and_round_trips() -> None:
    settings = NoveltySettings(max_sentences=5, max_shingles=50)
    memory = StoryMemory()
    memory.remember(text("turku-port-fire.txt"), settings)
    assert len(memory.sentence_keys) == 5 and len(memory.shingles) == 50
    restored = StoryMemory.from_state(json.loads(json.dumps(memory.to_state())))
    assert restored == memory
    assert list(restored.sentence_keys) == list(memory.sentence_keys)  # eviction order survives


def test_counted_sentences_hash_every_sentence_as_alone() -> None:
    """The one-pass shingle hashing over all sentences gives each sentence exactly the sampled
    shingles it has on its own (no shingle across a sentence boundary), for several settings."""
    import random

    from core.settings import NoveltySettings
    from pipelines.stages.dedup.logic import sentence_key, sentences, words
    from pipelines.stages.stories.novelty import CountedSentence, counted_sentences, sampled_shingles
    from tests.paths import ARTICLES

    rng = random.Random(5)
    vocab = [f"w{i}" for i in range(40)]
    texts = [p.read_text(encoding="utf-8") for p in sorted(ARTICLES.glob("*.txt"))]
    texts += [" ".join(" ".join(rng.choice(vocab) for _ in range(rng.randrange(1, 9))) + "." for _ in range(30))
              for _ in range(20)]
    for settings in (NoveltySettings(), NoveltySettings(shingle_words=5, shingle_sample=3),
                     NoveltySettings(min_words=1, shingle_words=2, shingle_sample=1)):
        for text in texts:
            want = [CountedSentence(s, sentence_key(s), tuple(sampled_shingles(words(s), settings)))
                    for s in sentences(text) if len(words(s)) >= settings.min_words]
            assert counted_sentences(text, settings) == want
