"""The installed `newswire` command finds every package outside the repository too (pyproject's
package list), not only where pytest puts the checkout on sys.path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.test_layers import LAYERS


def test_every_package_imports_from_outside_the_checkout(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = "import newswire.cli, pipelines.run, connectors.sinks, core.settings; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
    assert set(LAYERS) == {"newswire", "pipelines", "connectors", "core"}
