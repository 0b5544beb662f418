"""Novelty: which sentences of an event are new to its story.

A sentence is *repeated* when the story has seen it before, compared by its folded sentence key
(``pipelines.stages.dedup.logic.sentence_key``: case, punctuation, quotes and line wrapping ignored), or,
with a small edit, when at least ``near_match`` of its word 3-shingles already occur in the story
(a comma added, a word changed, a heading glued to the next sentence). Every other sentence of at
least ``min_words`` words is *new*. ``novelty_ratio = new / counted sentences`` (1.0 for the first
event of a story, ~0 for a live-blog update that only repeats earlier text).

State, per story: :class:`StoryMemory`, the story's sentence keys and (sampled) shingle hashes,
each an insertion-ordered, capped set (oldest dropped first), serialisable with ``to_state()`` /
``from_state()``. In the pipeline it is two Redis sets per story next to the story's state
(:class:`pipelines.stages.stories.state.RedisStoryStore`), and it goes when the story expires.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.settings import NoveltySettings
from pipelines.stages.dedup.logic import (
    MAX_SHINGLE_WORDS,
    sentence_words,
    shingle_hashes,
    window_hashes,
)

DEFAULT_NOVELTY_SETTINGS = NoveltySettings()


@dataclass
class StoryMemory:
    """What a story has already said: sentence keys and word-shingle hashes, both capped FIFO."""

    sentence_keys: dict[str, None] = field(default_factory=dict)
    shingles: dict[int, None] = field(default_factory=dict)

    def remember(self, text: str, settings: NoveltySettings = DEFAULT_NOVELTY_SETTINGS) -> None:
        """Add the text's sentences, evicting the oldest beyond the caps."""
        for sentence in sentence_words(text):
            if len(sentence.words) < settings.min_words:
                continue
            self.sentence_keys[sentence.key] = None
            for h in sampled_shingles(sentence.words, settings):
                self.shingles[h] = None
        _trim(self.sentence_keys, settings.max_sentences)
        _trim(self.shingles, settings.max_shingles)

    def to_state(self) -> dict[str, Any]:
        """JSON-friendly snapshot (lists keep the eviction order)."""
        return {"sentence_keys": list(self.sentence_keys), "shingles": list(self.shingles)}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> StoryMemory:
        """Inverse of :meth:`to_state`."""
        return cls(dict.fromkeys(state["sentence_keys"]), dict.fromkeys(int(h) for h in state["shingles"]))


def sampled_shingles(tokens: Sequence[str], settings: NoveltySettings = DEFAULT_NOVELTY_SETTINGS) -> list[int]:
    """The sentence's word-shingle hashes that novelty memory keeps (see ``shingle_sample``)."""
    return [int(h) for h in shingle_hashes(tokens, settings.shingle_words) if int(h) % settings.shingle_sample == 0]


def _trim(ordered: dict[Any, None], cap: int) -> None:
    for _ in range(len(ordered) - cap):
        del ordered[next(iter(ordered))]


@dataclass(frozen=True)
class NoveltyResult:
    """The event's new sentences (in text order) and the share of its sentences that are new."""

    new_sentences: tuple[str, ...]
    repeated_sentences: tuple[str, ...]
    novelty_ratio: float


@dataclass(frozen=True)
class CountedSentence:
    """A sentence novelty counts (``min_words`` or more): its text, folded key and sampled shingles."""

    text: str
    key: str
    shingles: tuple[int, ...]


def counted_sentences(text: str, settings: NoveltySettings = DEFAULT_NOVELTY_SETTINGS) -> list[CountedSentence]:
    """The text's sentences as novelty compares them (computed once, used to assess and to remember).
    The split, the words and the keys are the ones dedup computed for the same text
    (:func:`~pipelines.stages.dedup.logic.sentence_words`)."""
    kept = [sentence for sentence in sentence_words(text) if len(sentence.words) >= settings.min_words]
    shingles = _sampled_shingles_of_all([sentence.words for sentence in kept], settings)
    return [CountedSentence(sentence.text, sentence.key, tuple(sh)) for sentence, sh in zip(kept, shingles, strict=True)]


def _sampled_shingles_of_all(sentence_tokens: Sequence[Sequence[str]], settings: NoveltySettings) -> list[list[int]]:
    """``[sampled_shingles(toks, settings) for toks in sentence_tokens]``, hashed in one pass over all
    the sentences' words (the per-sentence numpy calls were most of the stories step's own work on
    long texts): the same window hashes as :func:`shingle_hashes`, cut at sentence boundaries, each
    sentence's distinct sampled ones in ascending order."""
    k = max(1, min(settings.shingle_words, MAX_SHINGLE_WORDS))
    if not sentence_tokens or min(map(len, sentence_tokens)) < k:  # a sentence shorter than a shingle
        return [sampled_shingles(toks, settings) for toks in sentence_tokens]
    hashes = window_hashes([t for toks in sentence_tokens for t in toks], k).tolist()
    sample, out, start = settings.shingle_sample, [], 0
    for toks in sentence_tokens:
        out.append(sorted({x for x in hashes[start:start + len(toks) - k + 1] if x % sample == 0}))
        start += len(toks)
    return out


def assess_novelty(text: str, memory: StoryMemory, settings: NoveltySettings = DEFAULT_NOVELTY_SETTINGS,
                   counted: list[CountedSentence] | None = None) -> NoveltyResult:
    """Compare a (normalised) text with its story's memory; does not change the memory.
    ``counted``: ``counted_sentences(text, settings)`` when the caller has it already."""
    new: list[str] = []
    repeated: list[str] = []
    for sentence in counted if counted is not None else counted_sentences(text, settings):
        if sentence.key in memory.sentence_keys:
            repeated.append(sentence.text)
            continue
        sh = sentence.shingles
        seen = sum(1 for h in sh if h in memory.shingles)
        (repeated if sh and seen / len(sh) >= settings.near_match else new).append(sentence.text)
    total = len(new) + len(repeated)
    return NoveltyResult(tuple(new), tuple(repeated), len(new) / total if total else 0.0)


def novelty_step(text: str, memory: StoryMemory,
                 settings: NoveltySettings = DEFAULT_NOVELTY_SETTINGS) -> NoveltyResult:
    """:func:`assess_novelty`, then remember the text: the per-event step of the keyed DoFn."""
    result = assess_novelty(text, memory, settings)
    memory.remember(text, settings)
    return result
