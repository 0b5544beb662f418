"""Alerts end to end: a rule fires once for a burst of coverage, on the alerts topic and in the store,
stays quiet during its cooldown, also after a pipeline restart."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest

from core.schemas import validate
from tests.harness import NATO_FINLAND_RULES, REPO, Stack, has_sources

pytestmark = pytest.mark.e2e




def test_rule_fires_once_for_a_burst_and_respects_its_cooldown_across_restarts(
        make_stack: Any, samples: dict[str, str]) -> None:
    stack = make_stack(**{"alerts.rules_path": str(NATO_FINLAND_RULES)})
    proc = stack.start_pipeline()
    article, blog = samples["russia-warns-finland-sweden"], samples["liveblog-fragment-2-26"]
    stack.produce([{"source": "outlet:a", "id": "a1", "text": article}])
    stack.consume("enriched", lambda r: len(r) >= 1, timeout_s=90)
    stack.produce([{"source": "outlet:b", "id": "b1", "text": blog}])  # second source: fires
    alerts = stack.consume("alerts", lambda r: len(r) >= 1, timeout_s=60)
    assert len(alerts) == 1, stack.pipeline_log()
    alert = alerts[0]
    validate("alert", alert)
    assert alert["rule"] == "nato-finland" and alert["counts"]["sources"] == 2
    assert "NATO + Finland" in alert["summary"]

    stack.produce([{"source": "outlet:c", "id": "c1", "text": blog + "\n\nMore to follow."}])  # in cooldown
    stack.consume("enriched", lambda r: len(r) >= 3, timeout_s=60)
    stack.kill(proc)
    stack.start_pipeline()  # cooldown state is in Redis: a restart does not reset it
    stack.produce([{"source": "outlet:d", "id": "d1", "text": article.replace("Finland", "Finland ")}])
    stack.consume("enriched", has_sources("d1"), timeout_s=90)
    time.sleep(1.0)
    again = stack.consume("alerts", lambda r: len(r) >= 2, timeout_s=3)
    assert [a["alert_id"] for a in again] == [alert["alert_id"]], again
    assert stack.stored_alerts() == [(alert["alert_id"], "nato-finland")]
    enriched = stack.consume("enriched", lambda r: len(r) >= 4, timeout_s=5)
    assert all("_alerts" not in e for e in enriched)

    # The ops commands read the same alert and story back.
    listed = newswire(stack, "alerts", "list", "--since", "1h")
    assert listed.startswith("1 alert(s) since") and "nato-finland: NATO + Finland" in listed, listed
    tailed = newswire(stack, "alerts", "tail", "--from-beginning", "--max", "1", "--timeout", "20")
    assert tailed.startswith("[alert] ") and alert["alert_id"][:12] in tailed, tailed
    top = newswire(stack, "stories", "top", "--since", "1h").splitlines()
    assert top[0].startswith("top ") and alert["story_ids"][0] in top[1], top
    assert " 4 src " in top[1] and "NATO" in top[1], top


def newswire(stack: Stack, *args: str) -> str:
    """Run the CLI against this stack's config; its standard output."""
    done = subprocess.run([sys.executable, "-m", "newswire.cli", "--config", str(stack.config_path), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
