"""InboxSource against the real broker: files dropped into a folder are ingested once and moved."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
import orjson
import pytest

from connectors.process import free_port
from connectors.sources.inbox import InboxSource, decode_text
from connectors.sources.metrics import SourceMetrics
from tests.harness import REPO, Stack, scrape, series, status_records, wait_for

pytestmark = pytest.mark.e2e


def inbox(stack: Stack, settle_s: float = 0.0) -> InboxSource:
    c = stack.settings.connectors
    quick = replace(c.inbox, poll_interval_s=0.05, settle_s=settle_s)
    return InboxSource(replace(stack.settings, connectors=replace(c, inbox=quick)))


def test_dropped_files_are_ingested_once_and_moved(stack: Stack) -> None:
    source = inbox(stack).open()
    try:
        folder = source.inbox
        assert folder == stack.tmp / "inbox"
        (folder / "wire.txt").write_text("Ferry services resumed on Tuesday.\n\nTwelve vessels waited.", encoding="utf-8")
        (folder / "page.html").write_bytes(
            b'<html><head><meta charset="iso-8859-1"><title>t</title></head><body><p>Caf\xe9 owners counted '
            b"the cost.</p><p>Insurers came on Wednesday.</p></body></html>")
        (folder / "batch.jsonl").write_bytes(b"\n".join(orjson.dumps(
            {"source": "wire:a", "id": f"j-{i}", "text": f"Item {i} of the batch.", "published_at": "2025-06-10 04:00"})
            for i in range(3)))
        (folder / "one.json").write_bytes(orjson.dumps({"id": "single", "text": "A single JSON fragment."}))
        (folder / ".hidden.txt").write_text("not for us")
        (folder / "upload.txt.part").write_text("still uploading")
        results = {r.path.name: r for r in source.scan()}
        assert {n: r.outcome for n, r in results.items()} == {
            "wire.txt": "done", "page.html": "done", "batch.jsonl": "done", "one.json": "done"}
        assert source.scan() == []  # nothing left: each file is read once
        assert sorted(p.name for p in (folder / "done").iterdir()) == ["batch.jsonl", "one.json", "page.html", "wire.txt"]
        assert (folder / ".hidden.txt").exists() and (folder / "upload.txt.part").exists()
    finally:
        source.stop()
    status = status_records(stack.settings)["connector:inbox:file:inbox"]
    assert status["counts"] == {"files_done": 4, "fragments": 6} and status["last_success"]
    assert status["last_error"] is None and status["target"] == str(stack.tmp / "inbox")

    records = stack.consume("fragments", lambda rs: len(rs) >= 6, timeout_s=20)
    assert len(records) == 6
    by_id = {r["id"]: r for r in records}
    html = by_id["page.html"]
    assert html["text"] == "Caf\u00e9 owners counted the cost.\n\nInsurers came on Wednesday."
    assert html["content_type"] == "text/html" and html["encoding"] == "iso-8859-1"
    assert by_id["wire.txt"]["text"] == "Ferry services resumed on Tuesday.\n\nTwelve vessels waited."
    assert by_id["wire.txt"]["source"] == "file:inbox" and by_id["single"]["source"] == "file:inbox"
    assert by_id["j-0"]["source"] == "wire:a" and by_id["j-0"]["published_at"] == "2025-06-10T04:00:00Z"


def test_an_invalid_file_goes_to_failed_with_a_reason_and_nothing_is_written(stack: Stack) -> None:
    source = inbox(stack).open()
    try:
        (source.inbox / "mixed.jsonl").write_bytes(b'{"source": "a", "id": "ok", "text": "fine"}\n{"source": "a", "txt": "x"}\n')
        (source.inbox / "broken.json").write_bytes(b"{not json")
        (source.inbox / "photo.png").write_bytes(b"\x89PNG")
        outcomes = {r.path.name: r.outcome for r in source.scan()}
        assert outcomes == {"mixed.jsonl": "failed", "broken.json": "failed", "photo.png": "failed"}
        failed = source.inbox / "failed"
        assert "text" in (failed / "mixed.jsonl.reason.txt").read_text()
        assert "not JSON" in (failed / "broken.json.reason.txt").read_text()
        assert "unsupported file type .png" in (failed / "photo.png.reason.txt").read_text()
    finally:
        source.stop()
    status = status_records(stack.settings)["connector:inbox:file:inbox"]
    assert status["counts"] == {"files_failed": 3} and status["last_success"] is None
    assert status["last_error"].startswith("photo.png -> failed/: unsupported file type .png")
    dlq = stack.consume("dlq", lambda rs: len(rs) >= 3, timeout_s=20)
    assert sorted(d["reason"] for d in dlq) == ["invalid_file"] * 3
    assert stack.consume("fragments", lambda rs: False, timeout_s=1.5) == []


def test_a_file_still_being_written_is_not_read_half_way(stack: Stack) -> None:
    source = inbox(stack, settle_s=0.6)
    source.start()
    try:
        path = source.inbox / "slow.txt"
        with path.open("w", encoding="utf-8") as handle:
            handle.write("First half of the story, ")
            handle.flush()
            for _ in range(5):  # keeps growing for 1 s: never settled long enough to be read
                time.sleep(0.2)
                handle.write("more, ")
                handle.flush()
            assert path.exists() and not (source.inbox / "done" / "slow.txt").exists()
            handle.write("and the end.")
        deadline = time.monotonic() + 10
        while not (source.inbox / "done" / "slow.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        source.stop()
    records = stack.consume("fragments", lambda rs: len(rs) >= 1, timeout_s=10)
    assert [r["text"] for r in records] == ["First half of the story, " + "more, " * 5 + "and the end."]


def test_decode_text_reports_the_original_encoding() -> None:
    assert decode_text("Caf\u00e9".encode("utf-8"), False) == ("Caf\u00e9", "utf-8")
    assert decode_text(b"\xef\xbb\xbfhi", False) == ("hi", "utf-8")
    assert decode_text("Caf\u00e9 \u201cq\u201d".encode("cp1252"), False) == ("Caf\u00e9 \u201cq\u201d", "windows-1252")
    assert decode_text(b'<meta charset="koi8-r"><p>\xf0\xd2\xc9\xd7\xc5\xd4</p>', True)[1] == "koi8-r"


def test_default_inbox_path_follows_data_dir(stack: Stack) -> None:
    assert stack.settings.inbox_path == Path(stack.settings.data_dir) / "inbox"


def test_newswire_source_inbox_serves_its_metrics_and_readiness(stack: Stack) -> None:
    """The watcher as its own process: /metrics counts fragments and scans, /healthz answers, and
    /readyz goes 503 while the folder cannot be read for longer than unready_after_s."""
    config = stack.variant_config("served", **{"connectors.inbox.health_port": 0, "connectors.inbox.settle_s": 0,
                                                "connectors.inbox.poll_interval_s": 0.05,
                                                "connectors.inbox.unready_after_s": 0.3})
    with open(stack.tmp / "inbox.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "newswire.cli", "--config", str(config), "source", "inbox"],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        match = re.search(r"metrics on (http://127\.0\.0\.1:\d+)/metrics", line)
        assert match, line + (stack.tmp / "inbox.log").read_text()
        base, folder = match.group(1), stack.tmp / "inbox"
        (folder / "two.jsonl").write_bytes(b'{"id": "a", "text": "One."}\n{"id": "b", "text": "Two."}\n')
        (folder / "bad.json").write_bytes(b'{"id": "c", "text": ""}')
        fragments = lambda: series(scrape(f"{base}/metrics"), "newswire_source_fragments_total", "outcome")
        wait_for(lambda: fragments() == {("accepted",): 2, ("rejected",): 1}, timeout_s=30)
        polls = series(scrape(f"{base}/metrics"), "newswire_source_polls_total", "connector", "name", "outcome")
        assert polls[("inbox", "file:inbox", "ok")] >= 1 and polls[("inbox", "file:inbox", "failed")] == 0
        assert httpx.get(f"{base}/healthz").json() == {"alive": True, "connector": "inbox"}
        assert httpx.get(f"{base}/readyz").status_code == 200
        shutil.rmtree(folder)  # every scan fails now
        wait_for(lambda: httpx.get(f"{base}/readyz").status_code == 503, timeout_s=10)
        down = httpx.get(f"{base}/readyz").json()
        assert "FileNotFoundError" in down["failing"]["file:inbox"]["error"] and down["dependencies"]["kafka"]["ok"]
        folder.mkdir()
        wait_for(lambda: httpx.get(f"{base}/readyz").status_code == 200, timeout_s=10)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0, (stack.tmp / "inbox.log").read_text()


def test_readiness_says_when_no_broker_answers_and_a_taken_port_names_the_keys() -> None:
    closed = f"127.0.0.1:{free_port()}"
    metrics = SourceMetrics("inbox", ("file:inbox",), closed, 300, lambda: True)
    ready, details = metrics.readiness()
    assert not ready and details["dependencies"]["kafka"] == {
        "ok": False, "detail": f"broker unavailable: none of {closed} accepts connections"}
    server = metrics.serve("127.0.0.1", 0)
    try:
        with pytest.raises(OSError, match="connectors.inbox.health_host/health_port: cannot listen on 127.0.0.1:"):
            metrics.serve("127.0.0.1", server.port)
    finally:
        server.stop()
