"""`newswire --log-format json`: one JSON object a line, the traceback included."""

from __future__ import annotations

import subprocess
import sys

import orjson

from newswire.cli import parser
from tests.paths import REPO

SCRIPT = """
import logging
from newswire.cli import configure_logging
configure_logging("json", verbose=False)
log = logging.getLogger("newswire.test")
log.info("not shown without -v")
log.warning("feed %s failed", "bbc\\n<b>")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("stage %s failed", "dedup")
"""


def test_json_log_lines_carry_time_level_logger_message_and_traceback() -> None:
    run = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
                         env={"PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr
    lines = [orjson.loads(line) for line in run.stderr.splitlines()]
    assert [(d["level"], d["logger"], d["message"]) for d in lines] == [
        ("WARNING", "newswire.test", "feed bbc\n<b> failed"), ("ERROR", "newswire.test", "stage dedup failed")]
    assert lines[0]["ts"].endswith("Z") and "exc" not in lines[0]
    assert lines[1]["exc"].startswith("Traceback") and "ZeroDivisionError" in lines[1]["exc"]


def test_the_flag_is_on_the_command_line() -> None:
    assert parser().parse_args(["--log-format", "json", "config"]).log_format == "json"
    assert parser().parse_args(["config"]).log_format == "text"
