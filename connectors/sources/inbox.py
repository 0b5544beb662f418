"""InboxSource: watch a folder; every file dropped into it is ingested once, then moved away.

The contract (docs/connectors.md):

- ``.txt`` and ``.html``/``.htm``: one fragment, the file's text (HTML stripped to text with its
  paragraphs); ``.json``: one fragment object or an array; ``.jsonl``/``.ndjson``: one per line.
- A file is read only when its size and modification time have not changed for ``settle_s``, and
  files whose name starts with ``.`` or ends in ``.part``/``.tmp``/``.crdownload`` are never read,
  so a writer still busy with a file is not read half-way (writing to ``name.part`` and renaming
  when done is the safe way). A file that changes while being read is left for the next poll.
- A file is all or nothing: when every fragment in it is valid and the broker acknowledged them,
  it moves to ``done/``; when any fragment is invalid, nothing is written, the file moves to
  ``failed/`` with ``<name>.reason.txt`` beside it, and a record goes to the dead-letter topic. A
  broker failure leaves the file in the inbox to be retried (backing off), never half-moved.
- Names are kept; a clash in ``done/`` or ``failed/`` gets a time suffix.
"""

from __future__ import annotations

import codecs
import logging
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.metrics import MetricsServer
from connectors.sources.base import BaseSource, FragmentWriter, complete_fragment, fragment_error
from connectors.sources.files import read_fragments
from connectors.sources.metrics import SourceMetrics
from connectors.status import ConnectorStatus, StatusBoard
from core.settings import Settings

log = logging.getLogger(__name__)

TEXT_SUFFIXES = {".txt", ".text"}
HTML_SUFFIXES = {".html", ".htm"}
JSON_SUFFIXES = {".json", ".jsonl", ".ndjson"}
IN_PROGRESS_SUFFIXES = {".part", ".tmp", ".crdownload", ".partial"}

_META_CHARSET_RE = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


@dataclass(frozen=True)
class InboxResult:
    """What happened to one file: ``done``, ``failed`` (with the reason) or ``retry``."""

    path: Path
    outcome: str
    fragments: int = 0
    reason: str | None = None


def decode_text(data: bytes, html: bool) -> tuple[str, str]:
    """(text, original encoding): a BOM, else UTF-8, else an HTML meta charset, else Windows-1252."""
    for bom, name in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(name), name.removesuffix("-sig")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    if html:
        declared = _META_CHARSET_RE.search(data[:4096])
        if declared:
            try:
                return data.decode(declared.group(1).decode("ascii")), declared.group(1).decode("ascii").lower()
            except (LookupError, UnicodeDecodeError):
                pass
    # Windows-1252 decodes nearly every byte and is what legacy newsroom tools write.
    return data.decode("cp1252", errors="replace"), "windows-1252"


def file_fragments(path: Path, source: str, max_bytes: int | None = None) -> list[dict[str, Any] | str]:
    """Fragments in one inbox file, completed (metadata, HTML stripped, live-blog parts); an error
    string in place of any input that is not a valid fragment (or, with `max_bytes`, is larger
    than the pipeline takes)."""
    suffix = path.suffix.lower()
    received = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    out: list[dict[str, Any] | str] = []
    if suffix in JSON_SUFFIXES:
        raw_items: list[dict[str, Any] | tuple[str, bytes]] = list(read_fragments(path, source))
    else:
        data = path.read_bytes()
        html = suffix in HTML_SUFFIXES
        text, encoding = decode_text(data, html)
        raw_items = [{"source": source, "id": path.name, "text": text, "title": path.stem,
                      "content_type": "text/html" if html else "text/plain", "encoding": encoding,
                      "metadata": {"file": path.name, "modified_at": received.isoformat()}}]
    for item in raw_items:
        if isinstance(item, tuple):
            out.append(item[0])
            continue
        try:
            fragment = complete_fragment(item, source)
        except ValueError as exc:
            out.append(f"{path.name}: published_at: {exc}")
            continue
        error = fragment_error(fragment, max_bytes)
        out.append(f"{path.name}: {error}" if error else fragment)
    return out


def _unique(target: Path) -> Path:
    if not target.exists():
        return target
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    return target.with_name(f"{target.stem}.{stamp}{target.suffix}")


class InboxSource(BaseSource):
    """Polls the inbox folder (``connectors.inbox``) on a background thread; ``scan()`` does one pass."""

    name = "inbox"
    summary = "watch the inbox folder (connectors.inbox)"

    @classmethod
    def add_arguments(cls, parser: Any) -> None:
        parser.add_argument("--path", default=None, help="folder to watch (default: connectors.inbox.path)")

    @classmethod
    def from_args(cls, settings: Settings, args: Any) -> InboxSource:
        return cls(settings, Path(args.path) if args.path else None)

    def describe(self) -> str:
        served = f"; metrics on {self.metrics_server.url} (and /healthz, /readyz)" if self.metrics_server else ""
        return (f"inbox: watching {self.inbox} -> {self.default_topic} (done/ and failed/ beside the files)"
                f"{served}")

    def __init__(self, settings: Settings, path: Path | None = None) -> None:
        super().__init__(settings)
        self.config = settings.connectors.inbox
        self.inbox = path or settings.inbox_path
        self.done = self.inbox / "done"
        self.failed = self.inbox / "failed"
        self._writer: FragmentWriter | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # path -> (size, mtime_ns, first time this pair was seen): a file is read once it settled.
        self._settling: dict[Path, tuple[int, int, float]] = {}
        self._retry_at: dict[Path, tuple[float, int]] = {}
        self.last_error: str | None = None
        #: files done, failed and retried, fragments written: reported to the status board
        self.status = ConnectorStatus("inbox", self.config.source, str(self.inbox))
        self._board: StatusBoard | None = None
        #: Prometheus series and /healthz, /readyz (served from start() when health_port is set)
        self.metrics = SourceMetrics("inbox", (self.config.source,), settings.kafka.bootstrap_servers,
                                     self.config.unready_after_s, self._running)
        self.metrics_server: MetricsServer | None = None

    def _running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def open(self) -> InboxSource:
        """Create the folders and connect to the broker, without starting the watch thread."""
        for folder in (self.inbox, self.done, self.failed):
            folder.mkdir(parents=True, exist_ok=True)
        if self._writer is None:
            self._writer = FragmentWriter(self.settings)
            self._board = StatusBoard(self.settings).start()
            self._report()
        return self

    def start(self) -> None:
        if self.config.health_port is not None and self.metrics_server is None:  # a taken port fails first
            self.metrics_server = self.metrics.serve(self.config.health_host, self.config.health_port)
        self.open()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="inbox-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.metrics_server is not None:
            self.metrics_server.stop()
            self.metrics_server = None
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._board is not None:
            self._board.stop()
            self._board = None

    def _report(self, error: str | None = None) -> None:
        if error is not None:
            self.last_error = error
            self.status.failed(error)
        if self._board is not None:
            self._board.report(self.status)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.scan()
            except Exception as exc:  # an unreadable folder must not end the watch
                self._report(f"{type(exc).__name__}: {exc}")
                self.metrics.polled(self.config.source, self.last_error)
                log.exception("inbox %s: scan failed", self.inbox)
            else:
                # failing while a file waits for its retry after the broker did not acknowledge it
                self.metrics.polled(self.config.source, self.last_error if self._retry_at else None)
            self._stop.wait(self.config.poll_interval_s)

    def _candidates(self) -> list[Path]:
        return sorted(p for p in self.inbox.iterdir()
                      if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in IN_PROGRESS_SUFFIXES
                      and not p.name.endswith(".reason.txt"))

    def _settled(self, path: Path, now: float) -> bool:
        try:
            stat = path.stat()
        except FileNotFoundError:
            self._settling.pop(path, None)
            return False
        size, mtime = stat.st_size, stat.st_mtime_ns
        seen = self._settling.get(path)
        if seen is None or seen[:2] != (size, mtime):
            self._settling[path] = (size, mtime, now)
            return self.config.settle_s <= 0
        return now - seen[2] >= self.config.settle_s

    def scan(self) -> list[InboxResult]:
        """One pass over the inbox: ingest every settled file; returns what happened to each."""
        now = time.monotonic()
        results = []
        candidates = self._candidates()
        for gone in set(self._settling) - set(candidates):
            self._settling.pop(gone, None)
        for path in candidates:
            if self._stop.is_set():
                break
            if not self._settled(path, now):
                continue
            retry = self._retry_at.get(path)
            if retry and retry[0] > now:
                continue
            results.append(self.ingest(path))
        return results

    def ingest(self, path: Path) -> InboxResult:
        """Ingest one file all or nothing and move it to done/ or failed/ (or leave it for a retry)."""
        assert self._writer is not None, "call open() or start() first"
        before = path.stat()
        suffix = path.suffix.lower()
        if suffix not in TEXT_SUFFIXES | HTML_SUFFIXES | JSON_SUFFIXES:
            return self._fail(path, f"unsupported file type {suffix or '(none)'}: "
                                    "use .txt, .html, .json, .jsonl or .ndjson")
        items = file_fragments(path, self.config.source, self.settings.pipeline.max_fragment_bytes)
        after = path.stat()
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            self._settling.pop(path, None)
            return InboxResult(path, "retry", reason="the file changed while it was read")
        errors = [item for item in items if isinstance(item, str)]
        if errors:
            self.metrics.wrote(self.config.source, 0, len(errors))
            return self._fail(path, "\n".join(errors))
        if not items:
            return self._fail(path, "the file holds no fragments")
        try:
            report = self._writer.write(item for item in items if isinstance(item, dict))
        except Exception as exc:  # noqa: BLE001 - broker trouble: keep the file, retry with backoff
            failures = self._retry_at.get(path, (0.0, 0))[1] + 1
            delay = min(300.0, self.config.poll_interval_s * 2 ** failures)
            self._retry_at[path] = (time.monotonic() + delay, failures)
            self.status.count("retries")
            self._report(f"{path.name}: {type(exc).__name__}: {exc}")
            log.warning("inbox %s: not acknowledged, retrying in %.0fs: %s", path.name, delay, exc)
            return InboxResult(path, "retry", reason=self.last_error)
        self._retry_at.pop(path, None)
        self._settling.pop(path, None)
        path.rename(_unique(self.done / path.name))
        self.status.succeeded()
        self.status.count("files_done")
        self.status.count("fragments", report.accepted)
        self.metrics.wrote(self.config.source, report.accepted)
        self._report()
        return InboxResult(path, "done", fragments=report.accepted)

    def _fail(self, path: Path, reason: str) -> InboxResult:
        assert self._writer is not None
        target = _unique(self.failed / path.name)
        self._writer.reject("invalid_file", reason, path.read_bytes()[: self.settings.pipeline.max_fragment_bytes])
        path.rename(target)
        target.with_name(target.name + ".reason.txt").write_text(
            f"{path.name} was not ingested:\n{reason}\n", encoding="utf-8")
        self._settling.pop(path, None)
        self._retry_at.pop(path, None)
        self.status.count("files_failed")
        self._report(f"{path.name} -> failed/: {reason}")
        log.warning("inbox %s -> failed/: %s", path.name, reason.splitlines()[0])
        return InboxResult(path, "failed", reason=reason)
