"""What every source shares: `FragmentWriter` (validate, key, produce, confirm), `BaseSource`, and
`complete_fragment` (the metadata every connector fills the same way)."""

from __future__ import annotations

import abc
import email.utils
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, ClassVar

import orjson
from dateutil import parser as dateutil_parser
from kafka.producer.future import FutureRecordMetadata, RecordMetadata

from connectors.kafka import make_producer
from connectors.sources.liveblog import link_parts
from core.markup import html_to_text, looks_like_html
from core.records import Rejected, check_fragment, dead_letter, utc_now_iso
from core.settings import Settings
from core.urls import canonical_url

log = logging.getLogger(__name__)

HTML_TYPES = ("text/html", "application/xhtml+xml")


class BufferFull(RuntimeError):
    """More fragments are waiting for the broker's acknowledgement than the writer's bound allows."""


# --------------------------------------------------------------------------- metadata

# Time-zone names feeds really use that RFC 2822 parsing does not know.
_TZ_NAMES = {"UTC": 0, "GMT": 0, "Z": 0, "UT": 0, "EST": -5 * 3600, "EDT": -4 * 3600, "CST": -6 * 3600,
             "CDT": -5 * 3600, "MST": -7 * 3600, "MDT": -6 * 3600, "PST": -8 * 3600, "PDT": -7 * 3600,
             "BST": 3600, "CET": 3600, "CEST": 7200, "EET": 7200, "EEST": 10800, "MSK": 10800,
             "IST": 19800, "JST": 9 * 3600, "AEST": 10 * 3600, "AEDT": 11 * 3600}


_RFC822_RE = re.compile(r"(?:[A-Za-z]{3},\s*)?\d{1,2}\s+[A-Za-z]{3}\s+\d{2,4}\s+\d{1,2}:\d{2}(?::\d{2})?"
                        r"(?:\s+(?:[+-]\d{4}|UT|UTC|GMT|[ECMP][SD]T|Z))?")


def parse_datetime(value: Any) -> datetime | None:
    """A publication time as an aware UTC datetime: RFC 3339/ISO 8601, RFC 822/2822 (RSS), a
    time.struct_time (feedparser, UTC), epoch seconds, or what dateutil reads. A time without a
    zone is taken as UTC. None for empty input; ValueError for text that is no time."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, time.struct_time):
        parsed = datetime(*value[:6], tzinfo=UTC)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        parsed = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        parsed = _parse_datetime_text(value.strip())
    else:
        raise ValueError(f"{value!r} is not a date-time (got {type(value).__name__})")  # noqa: TRY004 - callers catch ValueError
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _parse_datetime_text(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        pass
    if _RFC822_RE.fullmatch(text):  # email.utils is lenient: it would read "4:00 PM" as 04:00
        try:
            return email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            pass
    try:
        return dateutil_parser.parse(text, tzinfos=_TZ_NAMES)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"{text!r} is not a date-time a connector can read ({exc})") from None


_NO_TIME_DEFAULTS = (datetime(2000, 1, 1, 0), datetime(2000, 1, 1, 23))  # apart in the hour only


def published_precision(value: Any) -> str | None:
    """"day" when a publication time in text names a date and no time of day ("2026-12-03",
    "Thu, 03 Dec 2026", "December 3, 2026"), which `parse_datetime` reads as that day's midnight
    UTC; None for a full time, a struct_time or epoch seconds (exact as far as anyone can tell), empty
    input or text that is no time."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return "day"
    try:
        datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        pass
    else:
        return None
    if _RFC822_RE.fullmatch(text):
        return None
    try:  # dateutil fills what the text lacks from the default: two defaults apart -> no time given
        early, late = (dateutil_parser.parse(text, default=d, tzinfos=_TZ_NAMES) for d in _NO_TIME_DEFAULTS)
    except (ValueError, OverflowError):
        return None
    return "day" if early.hour != late.hour else None


def iso_utc(moment: datetime) -> str:
    """RFC 3339 UTC with a Z; milliseconds only when the time has a fraction."""
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.astimezone(UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def iso_at(timestamp: float) -> str:
    """Unix time `timestamp` as `iso_utc` writes it."""
    return iso_utc(datetime.fromtimestamp(timestamp, UTC))


def complete_fragment(raw: dict[str, Any], default_source: str) -> dict[str, Any]:
    """The metadata every connector fills the same way, on a copy of `raw`:

    - ``source`` defaults to `default_source`, ``received_at`` to now;
    - ``published_at`` is parsed in any format `parse_datetime` reads and written as RFC 3339 UTC
      (ValueError names the bad value); a date without a time is that day's midnight UTC with
      ``published_precision`` "day" (`published_precision`; a value the source sent itself wins);
    - HTML text (``content_type`` text/html, or undeclared text that is clearly markup) becomes
      plain text with its paragraphs, and ``content_type`` keeps saying what arrived;
    - a live-blog marker on the first line becomes ``part``/``parts`` with a shared ``story_key``.
    """
    fragment = {"source": default_source, **raw}
    fragment["received_at"] = raw.get("received_at") or utc_now_iso()
    published = parse_datetime(raw.get("published_at"))
    if published is not None:
        fragment["published_at"] = iso_utc(published)
        precision = published_precision(raw.get("published_at"))
        if precision is not None and not raw.get("published_precision"):
            fragment["published_precision"] = precision
    text = fragment.get("text")
    if isinstance(text, str):
        declared = str(fragment.get("content_type") or "").split(";")[0].strip().lower()
        if declared in HTML_TYPES or (not declared and looks_like_html(text)):
            fragment["text"] = html_to_text(text)
            fragment["content_type"] = declared or "text/html"
    return link_parts(fragment, published)


def fragment_error(fragment: Any, max_bytes: int | None = None) -> str | None:
    """Why the pipeline would reject `fragment` (the schema, blank text, metadata depth or size,
    and, with `max_bytes`, its size as a record: ``pipeline.max_fragment_bytes``), or None.
    The same check as the pipeline's Parse stage, so a connector's "accepted" means "will be processed"."""
    try:
        check_fragment(fragment)
    except Rejected as exc:
        return str(exc)
    if max_bytes is not None:
        size = len(orjson.dumps(fragment))
        if size > max_bytes:
            return (f"fragment: is {size} bytes as JSON, over the pipeline's {max_bytes}-byte limit "
                    "(pipeline.max_fragment_bytes); split the text")
    return None


@dataclass
class WriteReport:
    """What a write did: how many fragments the broker acknowledged, and what was rejected why."""

    accepted: int = 0
    rejected: list[str] = field(default_factory=list)


def fragment_key(fragment: dict[str, Any]) -> bytes:
    """Partition key: parts of one story, and every version of one page, land on one partition, in order.

    ``story_key`` when set; else ``source:`` + the canonical URL (``core.urls``: what dedup calls the
    same page, so a live blog's updates, whatever their ids, follow each other); else ``source:id``
    (a feed GUID); else ``source:``. Deterministic: a key is a function of the fragment alone.
    """
    if fragment.get("story_key"):
        return str(fragment["story_key"]).encode()
    url = fragment.get("url")
    page = None
    if isinstance(url, str) and url.strip():
        try:
            page = canonical_url(url)
        except ValueError:  # not a URL urllib can read ("http://[::1", a bad port): key by it as given
            page = url.strip()
    return f"{fragment['source']}:{page or fragment.get('id') or ''}".encode()


class FragmentWriter:
    """Validates fragments against config/schemas/fragment.v1.json and produces them to the raw topic.

    Invalid input goes to the dead-letter topic with the reason (stage 'ingest'). ``write`` returns
    only after the broker acknowledged every record (acks=all, idempotent producer); a failed
    delivery raises instead of being dropped.

    At most `max_in_flight` records wait for their acknowledgement at any time: ``write`` and
    ``send`` block for a free slot (backpressure onto the source), ``reserve`` refuses instead
    (the HTTP endpoint answers 503). Counters ``delivered`` / ``failed`` and ``last_error`` are
    updated from the delivery callbacks.
    """

    def __init__(self, settings: Settings, max_in_flight: int = 10_000, **producer_overrides: Any) -> None:
        self.settings = settings
        self._producer = make_producer(settings, **producer_overrides)
        self.max_in_flight = max_in_flight
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._lock = threading.Lock()
        self.delivered = 0
        self.failed = 0
        self.in_flight = 0
        self.last_error: str | None = None

    def write(self, fragments: Iterable[dict[str, Any] | tuple[str, bytes]], timeout_s: float = 60) -> WriteReport:
        """Produce fragments; items may be (error, original bytes) pairs for input that did not parse."""
        report = WriteReport()
        futures: list[FutureRecordMetadata] = []
        for item in fragments:
            if isinstance(item, tuple):
                unparsed, original = item
                self._dead_letter("parse", "not_json", unparsed, original)
                report.rejected.append(unparsed)
                continue
            item = {**item, "received_at": item.get("received_at") or utc_now_iso()}
            error = fragment_error(item, self.settings.pipeline.max_fragment_bytes)
            if error is not None:
                self._dead_letter("validate", "schema", error, orjson.dumps(item))
                report.rejected.append(error)
                continue
            futures.append(self.send(item))
        self._producer.flush(timeout=timeout_s)
        for f in futures:
            f.get(timeout=0)  # raises KafkaError if the broker did not take it
            report.accepted += 1
        return report

    def reserve(self, n: int) -> None:
        """Take `n` in-flight slots now or raise BufferFull (for callers that must not block)."""
        taken = 0
        while taken < n:
            if not self._slots.acquire(blocking=False):
                for _ in range(taken):
                    self._slots.release()
                raise BufferFull(f"{self.max_in_flight} fragments already wait for the broker; retry shortly")
            taken += 1

    def release(self, n: int) -> None:
        """Give back `n` reserved slots that will not be used for a send."""
        for _ in range(n):
            self._slots.release()

    def warm_up(self) -> None:
        """Fetch the raw topic's metadata now, so the first send does not wait for it."""
        self._producer.partitions_for(self.settings.kafka.topics.fragments.name)

    def send(self, fragment: dict[str, Any], reserved: bool = False,
             on_delivery: Callable[[RecordMetadata | None, Exception | None], None] | None = None,
             ) -> FutureRecordMetadata:
        """Produce one valid fragment (keyed by `fragment_key`) without waiting for the broker.

        Blocks for an in-flight slot unless the caller `reserve`d one. `on_delivery(metadata,
        error)` runs on the producer's I/O thread once the broker acknowledged or gave up.
        """
        if not reserved:
            self._slots.acquire()
        with self._lock:
            self.in_flight += 1
        try:
            future = self._producer.send(self.settings.kafka.topics.fragments.name, key=fragment_key(fragment),
                                         value=orjson.dumps(fragment))
        except Exception as exc:
            self._delivered(None, exc)
            raise
        future.add_callback(lambda md: self._delivered(md, None))
        future.add_errback(lambda exc: self._delivered(None, exc))
        if on_delivery is not None:
            future.add_callback(lambda md: on_delivery(md, None))
            future.add_errback(lambda exc: on_delivery(None, exc))
        return future

    def _delivered(self, metadata: RecordMetadata | None, error: Exception | None) -> None:
        self._slots.release()
        with self._lock:
            self.in_flight -= 1
            if error is None:
                self.delivered += 1
            else:
                self.failed += 1
                self.last_error = f"{type(error).__name__}: {error}"
        if error is not None:
            log.error("broker did not acknowledge a fragment: %s", error)

    def reject(self, reason: str, error: str, original: bytes) -> None:
        """Send input that will not be ingested to the dead-letter topic (stage 'ingest:reject')."""
        self._dead_letter("reject", reason, error, original)

    def _dead_letter(self, stage: str, reason: str, error: str, original: bytes) -> None:
        record = dead_letter(f"ingest:{stage}", reason, error, original, None, "(ingest)", -1, -1, None)
        self._producer.send(self.settings.kafka.topics.dlq.name, value=orjson.dumps(record))

    def close(self) -> None:
        self._producer.close()


class BaseSource(abc.ABC):
    """A source connector: ``start()`` begins pushing fragments to ``default_topic``; ``stop()`` ends it.

    Registered in ``connectors.sources.SOURCES`` under ``name``, which is also its section under
    ``connectors:`` in the config and its ``newswire source NAME`` command. ``add_arguments`` /
    ``from_args`` give that command its flags; ``enabled`` says whether ``newswire up`` runs it."""

    #: The registry key, config section (connectors.NAME) and CLI name.
    name: ClassVar[str] = ""
    #: One line for ``newswire source --help``.
    summary: ClassVar[str] = ""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def enabled(cls, settings: Settings) -> bool:
        """Whether `newswire up` starts this source (its config section says so)."""
        return bool(getattr(getattr(settings.connectors, cls.name), "enabled", False))

    @classmethod
    def add_arguments(cls, parser: Any) -> None:
        """Flags of ``newswire source NAME`` (none by default)."""

    @classmethod
    def from_args(cls, settings: Settings, args: Any) -> BaseSource:
        """The source as ``newswire source NAME`` runs it."""
        return cls(settings)

    def describe(self) -> str:
        """One line saying what the started source does."""
        return f"{type(self).__name__} -> {self.default_topic}"

    @property
    def default_topic(self) -> str:
        return self.settings.kafka.topics.fragments.name

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...
