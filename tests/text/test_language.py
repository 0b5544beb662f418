"""Tests for pipelines.text.language: codes, "und", determinism and the text actually examined."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from langdetect.lang_detect_exception import LangDetectException

from pipelines.text.language import UNDETERMINED, LanguageGuess, detect_language

REPO_ROOT = Path(__file__).resolve().parents[2]

# Hand-written news sentences, one per language.
SENTENCES = {
    "en": "The council approved the new flood defences on Tuesday after a long debate.",
    "de": "Der Bundestag hat am Donnerstag nach langer Debatte ein neues Gesetz zum Schutz kritischer "
    "Infrastruktur beschlossen.",
    "fr": "Le gouvernement a annoncé jeudi une série de mesures pour aider les agriculteurs touchés par "
    "la sécheresse.",
    "es": "El presidente del Gobierno anunció el martes un nuevo paquete de ayudas para las familias "
    "afectadas por las inundaciones.",
    "pt": "O governo anunciou na terça-feira um novo pacote de medidas para apoiar as famílias afetadas "
    "pelas cheias.",
    "sv": "Regeringen meddelade på tisdagen att försvarsbudgeten ska höjas kraftigt under de kommande åren.",
    "da": "Regeringen meddelte tirsdag, at forsvarsbudgettet skal hæves markant i de kommende år, oplyser "
    "ministeriet.",
    "nb": "Regjeringen la i dag fram et nytt forslag om å styrke beredskapen i Nord-Norge, og "
    "statsministeren sa at det haster.",
    "zh": "中国国家主席今天在北京会见了来自欧洲的代表团\uff0c双方就经济合作和地区安全问题交换了意见\u3002",
}


@pytest.mark.parametrize(("code", "text"), SENTENCES.items(), ids=SENTENCES.keys())
def test_detects_news_sentences_with_iso_639_1_codes(code: str, text: str) -> None:
    guess = detect_language(text)
    assert guess.code == code
    assert 0.5 <= guess.confidence <= 1.0


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ok",
        "Breaking news",
        "12:45 3-1 2024-05-01",
        "@BBCBreaking https://t.co/AbC123 #news 2024",
        "!!! ??? ...",
    ],
    ids=["empty", "word", "two-words", "digits", "handles-urls", "punctuation"],
)
def test_too_little_language_is_undetermined(text: str) -> None:
    assert detect_language(text) == LanguageGuess(UNDETERMINED, 0.0)


def test_min_letters_is_a_parameter() -> None:
    assert detect_language("Guten Morgen, Berlin", min_letters=30).code == UNDETERMINED
    assert detect_language("Der Zug ist heute pünktlich", min_letters=10).code == "de"


def test_low_confidence_is_undetermined_but_keeps_the_score() -> None:
    guess = detect_language(SENTENCES["de"], min_confidence=1.01)
    assert guess.code == UNDETERMINED
    assert guess.confidence > 0.5


def test_only_the_first_max_chars_are_examined() -> None:
    text = SENTENCES["en"] + " " + " ".join([SENTENCES["de"]] * 10)
    assert detect_language(text).code == "de"
    assert detect_language(text, max_chars=len(SENTENCES["en"])).code == "en"


def test_urls_and_handles_do_not_sway_the_answer() -> None:
    text = "Le maire a démissionné ce matin selon la préfecture @cityhall_london https://example.co.uk/news/london"
    assert detect_language(text).code == "fr"


def test_same_answers_in_any_order_and_on_repeat() -> None:
    texts = [*SENTENCES.values(), "Stormy weather", "Maybe sí, maybe não, perhaps ja"]
    forward = [detect_language(text) for text in texts]
    backward = [detect_language(text) for text in reversed(texts)][::-1]
    assert forward == backward
    assert all(detect_language(texts[-1]) == forward[-1] for _ in range(5))


def test_same_answers_in_another_process() -> None:
    texts = [*SENTENCES.values(), "Maybe sí, maybe não, perhaps ja, vielleicht oui, forse"]
    script = (
        "import json, sys\n"
        "from pipelines.text.language import detect_language\n"
        "print(json.dumps([list(vars(detect_language(t)).values()) for t in json.load(sys.stdin)]))\n"
    )
    # A different hash seed changes set/dict iteration orders: the answers must not depend on them.
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO_ROOT)}
    completed = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        check=True,
        timeout=120,
    )
    here = [[guess.code, guess.confidence] for guess in map(detect_language, texts)]
    assert json.loads(completed.stdout) == here


def test_fast_detector_matches_langdetect_exactly() -> None:
    """The rewritten n-gram loops give langdetect's own probabilities, on every script it knows."""
    import copy

    from pipelines.text import language

    texts = list(SENTENCES.values()) + [
        (Path(__file__).parents[2].parent / "shared" / "samples" / name).read_text(encoding="utf-8")[:600]
        for name in sorted(p.name for p in (Path(__file__).parents[2].parent / "shared" / "samples").glob("*.txt"))
    ] + ["ABc DEF ghi JKL mnO p", "ÄÖÜ äöü ș ț ş ţ Ðð Þþ", "Tiếng Việt có dấu", "  double  spaces  http://x.y/z a@b.cc ",
         # upper-case runs at word starts, ends and alone; one-letter words; punctuation runs
         "NATO AND the EU SAId X Y z a b c d e f", "I.B.M. -- O'NEIL ... (UN) [A] {b} ^_` ¡¿ «»",
         # mostly non-Latin: langdetect drops 'A'..'z' (cleaning_text); and just too few to do so
         "Москва заявила о новых санкциях NATO и EU против США", "Путин и NATO ab", "Путин сказал NATO", "中国 外交部 WHO 表示 COVID 疫情",
         "مؤتمر صحفي في Geneva حول الأزمة", "x", "  ", "ǅemal ǈubljana ǋje ß ẞ ﬁ 𝐀𝐁"]
    fast, plain = language._prototype(), language._langdetect_factory().create()
    assert type(fast) is not type(plain)
    for text, trials in itertools.product(texts, (1, 3, 7)):
        results = []
        for proto in (fast, plain):
            detector = copy.copy(proto)
            detector.n_trial = trials
            detector.append(text)
            detector.cleaning_text()
            ngrams = detector._extract_ngrams()
            if proto is fast:  # the character loop it falls back on for other profiles: the same n-grams
                assert detector._extract_ngrams_by_char() == ngrams, text
            detector.langprob = None
            try:
                probabilities = detector.get_probabilities()
            except LangDetectException as exc:  # no n-gram it knows: both must say so
                probabilities = [exc.get_code()]
            results.append((detector.text, ngrams, probabilities))
        assert results[0][:2] == results[1][:2], text
        assert [getattr(c, "lang", c) for c in results[0][2]] == [getattr(c, "lang", c) for c in results[1][2]], text
        assert [getattr(c, "prob", c) for c in results[0][2]] == [getattr(c, "prob", c) for c in results[1][2]], text


def test_profiles_load_once_when_threads_ask_together(monkeypatch: pytest.MonkeyPatch) -> None:
    """The warm-up thread and a DoFn setup asking at the same moment share one load (it was two)."""
    import threading
    import time

    from pipelines.text import language

    loads: list[int] = []
    real = language._profiles()

    def slow_cached(name: str, sources: object, build: object) -> object:
        loads.append(1)
        time.sleep(0.2)
        return real

    monkeypatch.setattr(language, "_PROFILES", [])
    monkeypatch.setattr(language, "cached", slow_cached)
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(language._profiles())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == [1]
    assert got == [real] * 4


def test_compact_profiles_hold_langdetect_rows_bit_for_bit() -> None:
    from pipelines.text import language

    plain = language._langdetect_factory()
    compact = language._build_profiles()
    width = len(plain.langlist)
    assert compact.langlist == plain.langlist
    assert compact.word_lang_prob_map.keys() == plain.word_lang_prob_map.keys()
    for word in ("the", " d", "ß", "の", "zz"):
        if word in plain.word_lang_prob_map:
            start = compact.word_lang_prob_map[word]
            assert list(compact.probs[start:start + width]) == plain.word_lang_prob_map[word]
