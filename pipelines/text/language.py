"""Identify the language of a news fragment with langdetect, deterministically and in bounded time."""

from __future__ import annotations

import copy
import functools
import operator
import random
import re
import threading
from array import array
from dataclasses import dataclass
from pathlib import Path

from langdetect.detector import Detector
from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
from langdetect.lang_detect_exception import ErrorCode, LangDetectException
from langdetect.utils.ngram import NGram

from pipelines.text.prebuilt import cached

__all__ = ["UNDETERMINED", "LanguageGuess", "detect_language"]

UNDETERMINED = "und"  # ISO 639-2 "undetermined": too little text, or no language clearly ahead

DEFAULT_MIN_LETTERS = 20
DEFAULT_MIN_CONFIDENCE = 0.5
# langdetect walks the text character by character in Python, so its cost grows with length while
# its answer stops improving after a few hundred characters: on ~2.2 KB texts (bench/langid_eval.py
# --cap-study, 1 trial) 300 characters were already 100% right at 0.93 ms a call (500: 1.21 ms,
# 1000: 2.08 ms, 2000: 3.95 ms). Raise it for texts that open with long foreign-language quotes.
DEFAULT_MAX_CHARS = 300

# langdetect averages this many independent random walks over the text's n-grams (its default is
# 7). Each walk costs about the same whatever the text length, so trials dominate the cost of a
# capped sample. On lingua_sentences.tsv (bench/langid_eval.py --trials N): 7 -> 0.9606 at 2.5 ms,
# 3 -> 0.9613 at 1.2 ms, 1 -> 0.9587 at 0.84 ms, and 1.000 on ~2 KB texts at any of them. Language
# detection was 60-70% of the pipeline worker's time (py-spy), so the default is 1.
DEFAULT_TRIALS = 1

# Any fixed seed makes langdetect's random n-gram sampling repeatable: the detector reseeds its
# generator with it at the start of every detection, so results do not depend on call order.
_SEED = 0

# langdetect codes that are not ISO 639-1. Its "no" profile is built from the Norwegian Wikipedia,
# which is written in Bokmål (Nynorsk has its own wiki), hence "nb". Both Chinese profiles are
# "zh"; the script (Simplified/Traditional) is not a language.
_ISO_639_1 = {"zh-cn": "zh", "zh-tw": "zh", "no": "nb"}

# Removed before detection: they are written the same in every language or not language at all.
_NOT_LANGUAGE_RE = re.compile(
    r"(?:https?://|www\.)\S+"  # URLs
    r"|\S+@\S+\.\w+"  # e-mail addresses
    r"|[@#]\w+"  # handles and hashtags
    r"|[\d_]+"  # digits: dates, scores, casualty counts
)
_NON_LETTERS_RE = re.compile(r"[\W\d_]+")


@dataclass(frozen=True)
class LanguageGuess:
    """An ISO 639-1 language code ("und" when undetermined) and langdetect's probability for it."""

    code: str
    confidence: float


class _Normalised(dict[int, str]):
    """Code point -> ``NGram.normalize(character)``, filled on first use, for ``str.translate``: a
    whole text is normalised in one C-level call. At most 65,536 characters are remembered (a
    character past that is normalised again on every use)."""

    def __missing__(self, code: int) -> str:
        ch: str = NGram.normalize(chr(code))
        if len(self) < 65536:
            self[code] = ch
        return ch


_NORMALISED = _Normalised()
_SPACE_RUNS = re.compile(" {2,}")
_LATIN = re.compile("[A-z]")  # langdetect's 'A' <= ch <= 'z': the six characters between Z and a included
_FROM_U0300 = re.compile("[\u0300-\U0010ffff]")


class _FastDetector(Detector):  # type: ignore[misc]
    """langdetect's Detector with its per-character loops rewritten: the same n-grams in the same
    order, so the same random walk and the same probabilities (tests/text/test_language.py
    compares both on its sentences, scripts and edge cases; all 1,600 lingua gold sentences agree),
    in about a third of the time, and since 2026-12-03 (whole-text n-gram extraction,
    ``cleaning_text``, 5 walk steps per pass) in ~45% less again (bench/RESULTS.md).
    ``NGram.normalize`` looks up the Unicode block of every character with a bisect; here each
    distinct character is normalised once per process (at most 65,536 of them are remembered)."""

    _spaces = re.compile(" {2,}")
    text: str  # the sample, as Detector.append builds it

    def append(self, text: str) -> None:
        text = self.URL_RE.sub(" ", text)
        text = self.MAIL_RE.sub(" ", text)
        text = NGram.normalize_vi(text)
        # Detector.append keeps a character unless it and the one before are both spaces.
        self.text += self._spaces.sub(" ", text[: self.max_text_length])

    def cleaning_text(self) -> None:
        """langdetect's ``Detector.cleaning_text`` without its loop over characters: drop the
        characters 'A'..'z' when characters from U+0300 up are more than twice as many (its test
        of the Latin Extended Additional block compares a block number with a name, so never
        holds: every character from U+0300 up counts, as here)."""
        text = self.text
        if text.isascii():  # nothing from U+0300 up: nothing to drop
            return
        if 2 * len(_LATIN.findall(text)) < len(_FROM_U0300.findall(text)):
            self.text = _LATIN.sub("", text)

    def _extract_ngrams(self) -> list[str]:
        """langdetect's ``Detector._extract_ngrams`` (``NGram.add_char`` per character) as whole-text
        operations. With the text normalised and every run of spaces cut to one, after a leading
        space (``q`` below; ``add_char`` skips a space after a space, and starts in one), the
        character at ``q[i]`` (i >= 1) yields, in this order, ``q[i]``, ``q[i-1:i+1]`` and
        ``q[i-2:i+1]``, each kept when langdetect knows it; except that the 1-gram " " is never
        kept, the 3-gram is not there when ``q[i-1]`` is a space (a word starts: the buffer holds
        " " + q[i]), and nothing is kept while two upper-case characters follow each other
        (``capitalword``: q[i] and q[i-1] both upper case). The profiles hold no " ", no "" and no
        3-gram with a space in the middle, so those need no test of their own here
        (:attr:`_plain_profiles`; the character loop below runs otherwise)."""
        if not self._plain_profiles:
            return self._extract_ngrams_by_char()
        known = self.word_lang_prob_map
        q = _SPACE_RUNS.sub(" ", " " + self.text.translate(_NORMALISED))
        if len(q) < 2:
            return []
        tail = q[1:]
        bigrams = list(map(operator.add, q, tail))  # bigrams[i - 1] = q[i-1:i+1]
        trigrams = ["", *map(operator.add, q, bigrams[1:])]  # trigrams[i - 1] = q[i-2:i+1], i >= 2
        upper = bytes(map(str.isupper, q))
        at = upper.find(b"\x01\x01")
        if at >= 0:
            unigrams = list(tail)
            while at >= 0:  # q[at] and q[at + 1] upper case: nothing from q[at + 1]
                unigrams[at] = bigrams[at] = trigrams[at] = ""
                at = upper.find(b"\x01\x01", at + 1)
        else:
            unigrams = list(tail)
        grams = [""] * (3 * len(tail))  # per position: its 1-, 2- and 3-gram
        grams[0::3], grams[1::3], grams[2::3] = unigrams, bigrams, trigrams
        return list(filter(known.__contains__, grams))

    def _extract_ngrams_by_char(self) -> list[str]:
        """The same n-grams, one character at a time as ``NGram.add_char`` does (for profiles that
        hold n-grams :meth:`_extract_ngrams` would not test for)."""
        known = self.word_lang_prob_map
        normal = _NORMALISED
        result: list[str] = []
        grams, capitalword = " ", False  # NGram.add_char's state, inlined
        for raw in self.text:
            ch = normal[ord(raw)]
            last = grams[-1]
            if last == " ":
                grams, capitalword = " ", False
                if ch == " ":
                    continue
            elif len(grams) >= 3:
                grams = grams[1:]
            grams += ch
            if ch.isupper():
                if last.isupper():
                    capitalword = True
            else:
                capitalword = False
            if capitalword:
                continue
            for n in (1, 2, 3):
                if len(grams) < n:
                    break
                w = grams[-n:]
                if w != " " and w in known:
                    result.append(w)
        return result

    def __init__(self, profiles: _Profiles) -> None:
        super().__init__(profiles)
        self._probs = profiles.probs
        self._width = len(profiles.langlist)
        known = profiles.word_lang_prob_map
        self._plain_profiles = " " not in known and "" not in known and not any(
            len(w) == 3 and w[1] == " " for w in known)

    def _detect_block(self) -> None:
        """langdetect's ``Detector._detect_block``: per trial, a random walk over the n-grams that
        multiplies each language's probability by ``weight + P(n-gram | language)`` and stops when
        one language passes ``CONV_THRESHOLD`` (tested after the first step, then every 5th). The
        same draws from the same generator in the same order and the same float operations in the
        same order, so the same probabilities bit for bit; but the 5 steps between two tests are
        one pass over the languages (``p * (w + a) * (w + b) ...`` multiplies left to right, as 5
        passes would), and the normalisation is a list comprehension."""
        self.cleaning_text()
        ngrams = self._extract_ngrams()
        if not ngrams:
            raise LangDetectException(ErrorCode.CantDetectError, "No features in text.")
        rows, probs, width = self.word_lang_prob_map, self._probs, self._width
        choice = self.random.choice
        self.langprob = [0.0] * len(self.langlist)
        self.random.seed(self.seed)
        for _ in range(self.n_trial):
            prob = self._init_probability()
            alpha = self.alpha + self.random.gauss(0.0, 1.0) * self.ALPHA_WIDTH
            w = alpha / self.BASE_FREQ
            i, steps = 0, 1  # i: the step a test follows (0, 5, 10, ...)
            while True:
                q = [probs[start:start + width] for start in [rows[choice(ngrams)] for _ in range(steps)]]
                if steps == 5:
                    prob = [p * (w + a) * (w + b) * (w + c) * (w + d) * (w + e)
                            for p, a, b, c, d, e in zip(prob, *q)]
                else:
                    for row in q:
                        prob = [p * (w + a) for p, a in zip(prob, row)]
                total = sum(prob)
                prob = [p / total for p in prob]
                if max(prob) > self.CONV_THRESHOLD or i >= self.ITERATION_LIMIT:
                    break
                i, steps = i + 5, 5
            for j in range(len(self.langprob)):
                self.langprob[j] += prob[j] / self.n_trial


def _langdetect_factory() -> DetectorFactory:
    """langdetect's own factory with every profile it ships, loaded from its JSON files (~0.5 s of
    CPU: 87,598 n-grams x 55 languages as Python lists of floats)."""
    factory = DetectorFactory()
    # Load in sorted order rather than os.listdir order so that every machine builds the same
    # language list, and with it the same floating-point sums.
    factory.load_json_profile([p.read_text(encoding="utf-8") for p in _profile_files()])
    factory.set_seed(_SEED)
    return factory


def _profile_files() -> list[Path]:
    return sorted(p for p in Path(PROFILES_DIRECTORY).iterdir() if p.is_file() and not p.name.startswith("."))


@dataclass(frozen=True)
class _Profiles:
    """langdetect's n-gram probabilities in two compact objects instead of 87,598 lists: the
    language list, each n-gram's offset into ``probs``, and ``probs`` holding one row of
    ``len(langlist)`` doubles per n-gram (the same floats, bit for bit). Read back from the model
    cache (prebuilt.py) in ~0.05 s instead of parsing the JSON profiles, and built at most once
    per process, whichever thread asks first."""

    langlist: list[str]
    word_lang_prob_map: dict[str, int]  # the name Detector.__init__ copies; values are row offsets
    probs: array
    seed: int = _SEED


def _build_profiles() -> _Profiles:
    factory = _langdetect_factory()
    width = len(factory.langlist)
    rows: dict[str, int] = {}
    probs = array("d")
    for word, row in factory.word_lang_prob_map.items():
        rows[word] = len(probs)
        probs.extend(row)
    assert len(probs) == width * len(rows)
    return _Profiles(list(factory.langlist), rows, probs)


_LOAD_LOCK = threading.Lock()
_PROFILES: list[_Profiles] = []  # at most one


def _profiles() -> _Profiles:
    """The profiles, loaded once per process: the warm-up thread and a DoFn setup may ask at the
    same moment, and the second waits for the first's load instead of doing its own."""
    if not _PROFILES:
        with _LOAD_LOCK:
            if not _PROFILES:
                _PROFILES.append(cached("langdetect-profiles", _profile_files(), _build_profiles))
    return _PROFILES[0]


@functools.cache
def _prototype() -> Detector:
    """A detector to copy per call. ``DetectorFactory.create()`` builds a fresh ``random.Random()``,
    which reads 2.5 KB from os.urandom: in the pipeline that cost as much as the detection itself."""
    return _FastDetector(_profiles())


_THREAD = threading.local()


def _thread_random() -> random.Random:
    """One generator per thread; langdetect re-seeds it at the start of every detection, so sharing
    it between calls on one thread keeps results deterministic."""
    rng = getattr(_THREAD, "random", None)
    if rng is None:
        rng = _THREAD.random = random.Random(_SEED)
    return rng


def _detection_sample(text: str, max_chars: int) -> str:
    """Strip what is not language, collapse whitespace and keep the first max_chars, cut at a word."""
    sample = " ".join(_NOT_LANGUAGE_RE.sub(" ", text[: max_chars * 2]).split())
    if len(sample) > max_chars:
        cut = sample.rfind(" ", 0, max_chars + 1)
        sample = sample[: cut if cut > 0 else max_chars]
    return sample


def detect_language(
    text: str,
    *,
    min_letters: int = DEFAULT_MIN_LETTERS,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    max_chars: int = DEFAULT_MAX_CHARS,
    trials: int = DEFAULT_TRIALS,
) -> LanguageGuess:
    """Guess the language of text; "und" when it has fewer than min_letters letters or no clear winner.

    Only the first max_chars characters (after URLs, handles, hashtags, e-mail addresses and digits
    are removed) are examined. A low-confidence "und" still carries the leader's probability. The
    same text always gets the same answer, in any process.
    """
    sample = _detection_sample(text, max_chars)
    if len(_NON_LETTERS_RE.sub("", sample)) < min_letters:
        return LanguageGuess(UNDETERMINED, 0.0)
    detector = copy.copy(_prototype())
    detector.random = _thread_random()
    detector.n_trial = trials
    detector.append(sample)
    try:
        candidates = detector.get_probabilities()
    except LangDetectException:  # no n-gram langdetect knows, e.g. a script it has no profile for
        return LanguageGuess(UNDETERMINED, 0.0)
    scores: dict[str, float] = {}
    for candidate in candidates:
        code = _ISO_639_1.get(candidate.lang, candidate.lang)
        scores[code] = scores.get(code, 0.0) + candidate.prob
    if not scores:
        return LanguageGuess(UNDETERMINED, 0.0)
    # Ties (rare, float sums) go to the alphabetically first code so the answer never depends on order.
    code, confidence = min(scores.items(), key=lambda item: (-item[1], item[0]))
    # Four decimals are all the signal there is, and they keep events byte-identical across runs.
    confidence = round(confidence, 4)
    if confidence < min_confidence:
        return LanguageGuess(UNDETERMINED, confidence)
    return LanguageGuess(code, confidence)
