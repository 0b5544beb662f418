"""Hostile input, end to end: every record ends as an enriched event (in the store and on the
enriched topic) or a dead letter (on the DLQ topic, with stage and reason), exactly once, while good
fragments keep flowing after each bad one; on both stores. Then the same shapes over HTTP ingest:
202 only for what is then stored, a 4xx with a reason for the rest, nothing written for a refusal.

The corpus is generated here from a fixed seed (no new dependency): invalid UTF-8, deep JSON, huge
fields, NUL, lone surrogates, control characters, bidi overrides, 50,000 short lines, entity-dense
text, HTML/script, wrong shapes and types, and random truncations and byte flips of a valid fragment.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import yaml
from kafka import TopicPartition

from bench.chaos import stored_source_ids
from connectors.kafka import make_consumer, make_producer
from connectors.sources.http import HttpSource
from core.schemas import config_dir
from tests.harness import Stack, http_ingest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SEED = 20261202
#: The issue's acceptance is 2 s from a good fragment's produce to its row; CI on a shared 2-core
#: machine gets a generous bound (the measured figures are printed).
NEXT_GOOD_STORED_WITHIN_S = 10.0
PAIR_INTERVAL_S = 0.15  # between (poison, good) pairs: a steady stream, not a burst


# --------------------------------------------------------------------------- the corpus

@dataclass(frozen=True)
class Poison:
    """One hostile record: its raw value (None: a tombstone) and what must become of it: 'stored',
    'dlq' (any reason), 'dlq:<reason>', or None (either; random mutations)."""

    name: str
    value: bytes | None
    expect: str | None


_PLACES = ("Helsinki", "Kyiv", "Moscow", "Brussels", "Warsaw", "Tallinn", "Riga", "Vilnius", "Stockholm", "Oslo",
           "Berlin", "Paris", "Madrid", "Rome", "Ankara", "Tbilisi", "Yerevan", "Baku", "Minsk", "Kaliningrad",
           "Gdansk", "Odesa", "Kharkiv", "Lviv", "Mariupol", "Crimea", "Black Sea", "Baltic Sea", "Finland",
           "Sweden", "Norway", "Estonia", "Latvia", "Lithuania", "Poland", "Germany", "France", "Turkey")


def _names(file: str) -> list[str]:
    entities = yaml.safe_load((config_dir() / "gazetteer" / file).read_text())["entities"]
    return [e["name"] for e in entities]


def good_fragment(n: int) -> dict[str, Any]:
    rng = random.Random(f"good-{n}")
    place = rng.choice(_PLACES)
    return {"source": "fuzz:good", "id": f"good-{n}",
            "text": f"Bulletin {n}: officials in {place} said on {rng.choice(('Monday', 'Friday'))} that "
                    f"{rng.randint(2, 900)} people had been moved to shelters after the storm, and that "
                    "ferry services would resume once the wind dropped."}


BASE = {"source": "fuzz:base", "id": "base-1", "title": "Storm closes the port",
        "text": "Officials in Helsinki said on Tuesday that the port would stay closed until the storm passed.",
        "published_at": "2026-12-01T10:00:00Z", "metadata": {"desk": "nordic", "tags": ["storm", "port"]}}


def _frag(**fields: Any) -> bytes:
    return orjson.dumps({"source": "fuzz:poison", **fields})


def _nested_metadata(depth: int) -> bytes:
    """A fragment whose metadata nests ``depth`` objects (written by hand: orjson stops at 254)."""
    return (b'{"source": "fuzz:poison", "id": "deep-' + str(depth).encode() + b'", "text": "Deep metadata.", '
            b'"metadata": ' + b'{"m": ' * (depth - 1) + b"{}" + b"}" * (depth - 1) + b"}")


def _exactly(size: int, fid: str) -> bytes:
    """A valid fragment of exactly ``size`` bytes as JSON."""
    head = _frag(id=fid, text="")
    words = ("wind rain port ferry storm harbour " * (size // 30 + 1))[: size - len(head)]
    value = _frag(id=fid, text=words)
    assert len(value) == size
    return value


def poison_corpus(max_fragment_bytes: int, seed: int = SEED) -> list[Poison]:
    """The hostile records, deterministic for a seed."""
    rng = random.Random(seed)
    people, orgs = _names("people.yaml"), _names("organisations.yaml")
    dense: list[str] = []
    while sum(map(len, dense)) < 100_000:
        dense.append(f"{rng.choice(people)} met {rng.choice(people)} of {rng.choice(orgs)} in {rng.choice(_PLACES)}.")
    bidi = "\u202eevil.exe\u202c \u2066isolate\u2069 \u200f\u200e"
    p = [
        # not UTF-8
        Poison("utf8-ff", b'{"source": "fuzz:poison", "text": "caf\xff ol\xe9"}', "dlq:not_utf8"),
        Poison("utf8-overlong", b'{"source": "fuzz:poison", "text": "\xc0\xaf etc"}', "dlq:not_utf8"),
        Poison("utf8-truncated", b'{"source": "fuzz:poison", "text": "\xe2\x82"}', "dlq:not_utf8"),
        Poison("utf8-continuation", b"\x80\x81\x82" + _frag(id="cont", text="x"), "dlq:not_utf8"),
        Poison("utf8-surrogate-bytes", b'{"source": "fuzz:poison", "text": "\xed\xa0\x80"}', "dlq:not_utf8"),
        # deep JSON
        Poison("metadata-17-levels", _nested_metadata(17), "dlq:metadata_too_deep"),
        Poison("metadata-300-levels", _nested_metadata(300), "dlq:metadata_too_deep"),
        Poison("metadata-2000-levels", _nested_metadata(2000), "dlq:not_json"),
        Poison("array-2000-levels", b"[" * 2000 + b"]" * 2000, "dlq:not_json"),
        Poison("metadata-too-large", _frag(id="big-meta", text="t", metadata={"blob": "x" * 40_000}),
               "dlq:metadata_too_large"),
        Poison("metadata-201-keys", _frag(id="wide-meta", text="t", metadata={f"k{i}": i for i in range(201)}),
               "dlq:schema"),
        # huge fields
        Poison("title-over-limit", _frag(id="long-title", title="T" * 2001, text="Short text."), "dlq:schema"),
        Poison("source-over-limit", orjson.dumps({"source": "s" * 201, "text": "Short text."}), "dlq:schema"),
        Poison("id-over-limit", _frag(id="i" * 1001, text="Short text."), "dlq:schema"),
        Poison("text-at-max-bytes", _exactly(max_fragment_bytes, "at-max"), "stored"),
        Poison("text-over-max-bytes", _exactly(max_fragment_bytes + 1, "over-max"), "dlq:oversized"),
        Poison("text-twice-max-bytes", _exactly(2 * max_fragment_bytes, "twice-max"), "dlq:oversized"),
        # NUL, surrogates, control characters, bidi
        Poison("nul-text", _frag(id="nul-text", text="Port\x00 closed\x00."), "stored"),
        Poison("nul-title", _frag(id="nul-title", title="\x00Storm\x00", text="The port closed."), "stored"),
        Poison("nul-metadata", _frag(id="nul-meta", text="The port closed.", metadata={"k\x00": ["v\x00", {"\x00": 1}]}),
               "stored"),
        Poison("lone-high-surrogate", b'{"source": "fuzz:poison", "id": "sur-1", "text": "a \\ud800 b"}', "dlq:not_json"),
        Poison("lone-low-surrogate", b'{"source": "fuzz:poison", "id": "sur-2", "text": "a \\udfff b"}', "dlq:not_json"),
        Poison("reversed-surrogates", b'{"source": "fuzz:poison", "id": "sur-3", "title": "\\udc00\\ud800", '
               b'"text": "x"}', "dlq:not_json"),
        Poison("control-chars-in-text", _frag(id="ctrl", text="Storm " + "".join(map(chr, range(1, 32))) + " hits\x7f"
                                                           "\x85\x9f the port."), "stored"),
        Poison("only-control-chars", _frag(id="only-ctrl", text="".join(map(chr, range(1, 32)))), None),
        Poison("rtl-arabic", _frag(id="rtl-ar", text="أعلنت السلطات في هلسنكي إغلاق الميناء بسبب العاصفة."), "stored"),
        Poison("rtl-hebrew-bidi", _frag(id="rtl-he", title=bidi, text=f"הנמל נסגר {bidi} בגלל הסערה. " * 20), "stored"),
        Poison("bidi-overrides-only", _frag(id="bidi", text=bidi * 50), None),
        # size and density
        Poison("50000-short-lines", _frag(id="lines", text="\n".join(str(i % 997) for i in range(50_000))), "stored"),
        Poison("entity-dense-100kb", _frag(id="dense", text=" ".join(dense)), "stored"),
        Poison("html-script", _frag(id="html", text="<html><body><script>alert('x')</script><p>Storm hits "
                                    "<b>Helsinki</b></p><img src=x onerror=alert(1)><style>p{}</style></body></html>"),
               "stored"),
        Poison("script-only", _frag(id="script", text="<script>while(true){}</script>", content_type="text/html"),
               "stored"),
        # wrong shapes and types
        Poison("not-json", b"this is not json {", "dlq:not_json"),
        Poison("empty-value", b"", "dlq:not_json"),
        Poison("tombstone", None, "dlq:empty"),
        Poison("bom", b"\xef\xbb\xbf" + _frag(id="bom", text="x"), "dlq:not_json"),
        Poison("json-array", b'[{"source": "x", "text": "y"}]', "dlq:schema"),
        Poison("json-number", b"42", "dlq:schema"),
        Poison("json-string", b'"just a string"', "dlq:schema"),
        Poison("json-null", b"null", "dlq:schema"),
        Poison("empty-object", b"{}", "dlq:schema"),
        Poison("text-not-string", _frag(id="num-text", text=123), "dlq:schema"),
        Poison("whitespace-text", _frag(id="ws", text=" \n\t\u00a0 "), None),
        Poison("infinity", b'{"source": "fuzz:poison", "text": "x", "metadata": {"n": 1e999}}', "dlq:not_json"),
        Poison("nan", b'{"source": "fuzz:poison", "text": "x", "metadata": {"n": NaN}}', "dlq:not_json"),
        Poison("huge-integer", b'{"source": "fuzz:poison", "id": "bigint", "text": "x", "metadata": {"n": '
               + b"9" * 400 + b"}}", None),
        Poison("bad-language", _frag(id="lang", text="x", language="English!"), "dlq:schema"),
        Poison("part-zero", _frag(id="part0", text="x", part=0), "dlq:schema"),
        Poison("extra-field", _frag(id="extra", text="x", surprise=True), "dlq:schema"),
        Poison("bad-published-at", _frag(id="when", text="A text.", published_at="yesterday-ish"), None),
        Poison("duplicate-keys", b'{"source": "fuzz:poison", "id": "dup", "text": "a", "text": "Second text wins."}',
               "stored"),
    ]
    valid = orjson.dumps(BASE)
    for n in range(12):  # truncations
        cut = rng.randrange(1, len(valid))
        p.append(Poison(f"truncated-at-{cut}", valid[:cut], "dlq"))
    for n in range(24):  # byte flips, one to three per record
        b = bytearray(valid)
        for _ in range(rng.randint(1, 3)):
            # half of them printable ASCII: more mutants that still parse and test the later stages
            b[rng.randrange(len(b))] = rng.randrange(32, 127) if rng.random() < 0.5 else rng.randrange(256)
        p.append(Poison(f"byte-flip-{n}", bytes(b), None))
    for n in range(8):  # a span duplicated or dropped
        i, j = sorted(rng.sample(range(len(valid)), 2))
        spliced = valid[:j] + valid[i:] if n % 2 else valid[:i] + valid[j:]
        p.append(Poison(f"span-{'dup' if n % 2 else 'drop'}-{n}", spliced, None))
    return p


# --------------------------------------------------------------------------- watching the outputs

class Outputs(threading.Thread):
    """Reads the enriched and DLQ topics from the beginning, and polls the store for new rows:
    what became of each raw (partition, offset), and when each source id was first stored."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(name="fuzz-outputs", daemon=True)
        self.stack = stack
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.by_origin: dict[tuple[int, int], list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        self.first_stored: dict[str, float] = {}

    def run(self) -> None:
        topics = self.stack.settings.kafka.topics
        consumer = make_consumer(self.stack.settings, group_id=None)
        consumer.subscribe([topics.enriched.name, topics.dlq.name])
        next_poll = 0.0
        try:
            while not self.stop_event.is_set():
                for tp, records in consumer.poll(timeout_ms=50).items():
                    kind = "event" if tp.topic == topics.enriched.name else "dead_letter"
                    for r in records:
                        doc = orjson.loads(r.value)
                        origin = doc["origin"]
                        with self.lock:
                            self.by_origin[(origin["partition"], origin["offset"])].append((kind, doc))
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + 0.1
                    now = time.monotonic()
                    for sid in stored_source_ids(self.stack.settings.storage_url) or ():
                        self.first_stored.setdefault(sid, now)
        finally:
            consumer.close()

    def outcome(self, origin: tuple[int, int]) -> list[tuple[str, dict[str, Any]]]:
        with self.lock:
            return list(self.by_origin.get(origin, ()))


@dataclass
class Sent:
    name: str
    expect: str | None
    origin: tuple[int, int]
    acked_at: float


def produce_one(producer: Any, topic: str, partition: int, value: bytes | None,
                key: bytes = b"fuzz") -> tuple[tuple[int, int], float]:
    md = producer.send(topic, partition=partition, key=key, value=value).get(timeout=60)
    return (md.partition, md.offset), time.monotonic()


def describe(outcome: list[tuple[str, dict[str, Any]]]) -> str:
    return ", ".join(f"{kind}:{doc.get('stage', '')}/{doc.get('reason', doc.get('source_id', ''))}"
                     for kind, doc in outcome) or "nothing"


# --------------------------------------------------------------------------- the tests

# SQLite (the default store) here; PostgreSQL gets the hostile shapes that matter to it (NUL, huge and
# deep records) in tests/pipelines/test_poison_e2e.py, which runs on it (suite time).
@pytest.mark.parametrize("store", ["sqlite"])
def test_every_hostile_record_ends_as_an_event_or_a_dead_letter_and_good_input_keeps_flowing(
        make_stack: Any, store: str, request: pytest.FixtureRequest) -> None:
    overrides = {"storage.url": request.getfixturevalue("postgres_url")} if store == "postgresql" else {}
    stack: Stack = make_stack(**overrides)
    corpus = poison_corpus(stack.settings.pipeline.max_fragment_bytes)
    print(f"\nfuzz corpus: {len(corpus)} hostile records "
          f"({sum(len(p.value or b'') for p in corpus) / 1e6:.1f} MB), each followed by a good fragment")
    proc = stack.start_pipeline()
    outputs = Outputs(stack)
    outputs.start()
    producer = make_producer(stack.settings)
    topic = stack.settings.kafka.topics.fragments.name
    partitions = stack.settings.kafka.topics.fragments.partitions
    try:
        # A first good fragment, so the pipeline is up before the clock starts on the others.
        produce_one(producer, topic, 0, orjson.dumps(good_fragment(-1)))
        deadline = time.monotonic() + 180
        while "good--1" not in outputs.first_stored and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "good--1" in outputs.first_stored, stack.pipeline_log()

        sent: list[Sent] = []
        goods: list[tuple[Sent, str]] = []  # (good fragment sent, the poison before it)
        for n, poison in enumerate(corpus):
            partition = n % partitions  # a poison and the good fragment after it share a partition
            origin, at = produce_one(producer, topic, partition, poison.value)
            sent.append(Sent(poison.name, poison.expect, origin, at))
            origin, at = produce_one(producer, topic, partition, orjson.dumps(good_fragment(n)))
            good = Sent(f"good-{n}", "stored", origin, at)
            sent.append(good)
            goods.append((good, poison.name))
            time.sleep(PAIR_INTERVAL_S)

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if all(outputs.outcome(s.origin) for s in sent) and all(
                    g.name in outputs.first_stored for g, _ in goods):
                break
            time.sleep(0.5)
        time.sleep(2)  # anything delivered twice would show up now
    finally:
        producer.close()
        outputs.stop_event.set()
        outputs.join(30)

    # Each input accounted for exactly once: one enriched event or one dead letter.
    log = stack.pipeline_log()
    problems = []
    for s in sent:
        outcome = outputs.outcome(s.origin)
        if len(outcome) != 1:
            problems.append(f"{s.name} at {s.origin}: {describe(outcome)}")
            continue
        kind, doc = outcome[0]
        if kind == "dead_letter" and not (doc.get("stage") and doc.get("reason") and doc.get("error")):
            problems.append(f"{s.name}: dead letter without stage/reason/error: {doc}")
        wanted = s.expect
        if wanted == "stored" and kind != "event":
            problems.append(f"{s.name}: want an enriched event, got {describe(outcome)}")
        elif wanted and wanted.startswith("dlq") and (kind != "dead_letter" or (
                ":" in wanted and doc.get("reason") != wanted.split(":", 1)[1])):
            problems.append(f"{s.name}: want {wanted}, got {describe(outcome)}")
    assert not problems, "\n".join(problems) + f"\n{log}"

    # Every enriched event is in the store.
    events = [doc for s in sent for kind, doc in outputs.outcome(s.origin) if kind == "event"]
    stored = set(stored_source_ids(stack.settings.storage_url) or ())
    assert {e["source_id"] for e in events} <= stored, log
    assert all(f"good-{n}" in stored for n in range(len(corpus)))

    # Good input keeps flowing: each good fragment stored within a few seconds of being produced.
    latencies = sorted((outputs.first_stored[g.name] - g.acked_at, before) for g, before in goods)
    values = [s for s, _ in latencies]
    print(f"next good fragment stored after a poison ({store}): median {statistics.median(values):.2f} s, "
          f"p95 {values[int(0.95 * (len(values) - 1))]:.2f} s, max {values[-1]:.2f} s (after {latencies[-1][1]}); "
          f"share within 2 s: {sum(v <= 2 for v in values) / len(values):.0%}")
    reasons = Counter(doc["reason"] for s in sent for kind, doc in outputs.outcome(s.origin) if kind == "dead_letter")
    print(f"outcomes: {len(events)} enriched events, dead letters by reason: {dict(reasons.most_common())}")
    assert values[-1] <= NEXT_GOOD_STORED_WITHIN_S, f"slowest: {latencies[-5:]}\n{log}"

    # And the pipeline took all of it in its stride.
    assert proc.poll() is None, log
    assert "pipeline job failed" not in log, log


TOKEN = "fuzz-token"


def post(source: HttpSource, body: bytes, content_type: str = "application/json") -> httpx.Response:
    return httpx.post(f"{source.url}/fragments", content=body, timeout=60,
                      headers={"Content-Type": content_type, "Authorization": f"Bearer {TOKEN}"})


@pytest.fixture
def ingest(stack: Stack) -> Iterator[HttpSource]:
    with http_ingest(stack.settings, TOKEN) as source:
        yield source


def raw_end_offsets(stack: Stack) -> dict[int, int]:
    consumer = make_consumer(stack.settings, group_id=None)
    try:
        topic = stack.settings.kafka.topics.fragments.name
        tps = [TopicPartition(topic, p) for p in range(stack.settings.kafka.topics.fragments.partitions)]
        return {tp.partition: o for tp, o in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def test_http_ingest_answers_202_only_for_what_is_then_stored(stack: Stack, ingest: HttpSource) -> None:
    """A subset of the corpus over POST /fragments: 202 means it will be stored; anything else is a
    4xx with a code and a message, and writes nothing; a batch with one bad fragment is refused whole."""
    max_bytes = stack.settings.pipeline.max_fragment_bytes
    by_name = {p.name: p for p in poison_corpus(max_bytes)}
    shapes = ["utf8-ff", "utf8-truncated", "metadata-300-levels", "metadata-2000-levels", "metadata-too-large",
              "title-over-limit", "text-over-max-bytes", "text-twice-max-bytes", "nul-text", "nul-title",
              "nul-metadata", "lone-high-surrogate", "control-chars-in-text", "rtl-arabic", "rtl-hebrew-bidi",
              "50000-short-lines", "entity-dense-100kb", "html-script", "script-only", "not-json", "json-number",
              "empty-object", "text-not-string", "whitespace-text", "bom"]
    corpus = [by_name[n] for n in shapes]
    for prefix, count in (("truncated-at-", 3), ("byte-flip-", 10), ("span-", 3)):
        corpus += [p for p in by_name.values() if p.name.startswith(prefix)][:count]
    proc = stack.start_pipeline()

    answers: dict[str, httpx.Response] = {}
    for poison in corpus:
        before = raw_end_offsets(stack)
        r = post(ingest, poison.value or b"")
        after = raw_end_offsets(stack)
        answers[poison.name] = r
        assert r.status_code == 202 or 400 <= r.status_code < 500, f"{poison.name}: {r.status_code} {r.text[:300]}"
        if r.status_code == 202:
            assert sum(after.values()) - sum(before.values()) == r.json()["accepted"] == 1, poison.name
        else:
            body = r.json()
            assert body["error"] and body["message"], f"{poison.name}: {r.text[:300]}"
            assert after == before, f"{poison.name}: refused with {r.status_code} but written"

    # A batch with a good fragment and a deep one: refused whole, nothing written.
    good, deep = good_fragment(10_001), orjson.loads(by_name["metadata-17-levels"].value or b"")
    before = raw_end_offsets(stack)
    batch = post(ingest, orjson.dumps([good, deep]))
    assert batch.status_code == 422, batch.text
    assert [e["index"] for e in batch.json()["errors"]] == [1] and "metadata" in batch.json()["errors"][0]["error"]
    assert raw_end_offsets(stack) == before
    # A sentinel after everything: once it is stored, whatever was accepted before it is too.
    assert post(ingest, orjson.dumps(good_fragment(10_002))).status_code == 202

    accepted_ids = {orjson.loads(by_name[n].value or b"").get("id") for n, r in answers.items() if r.status_code == 202}
    deadline = time.monotonic() + 120
    stored: set[str] = set()
    while time.monotonic() < deadline:
        stored = set(stored_source_ids(stack.settings.storage_url) or ())
        if accepted_ids | {"good-10002"} <= stored:
            break
        time.sleep(0.5)
    assert accepted_ids | {"good-10002"} <= stored, f"accepted but not stored: {accepted_ids - stored}\n" \
                                                    f"{stack.pipeline_log()}"
    assert "good-10001" not in stored  # the refused batch's good half
    print("\nHTTP answers: " + ", ".join(f"{n} {r.status_code}{'' if r.status_code == 202 else ' ' + r.json()['error']}"
                                         for n, r in answers.items()))
    assert proc.poll() is None
