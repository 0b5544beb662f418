"""A command that hosted a Beam job ends without the interpreter's teardown (newswire/cli.py `leave`),
where gRPC's C++ threads could abort the process after a clean stop; its output is still flushed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Stands in for the command's work: what it prints stays buffered (stdout is a pipe), and an atexit
# handler shows whether the interpreter's teardown ran.
SCRIPT = textwrap.dedent("""
    import atexit, logging, sys
    import newswire.cli as cli

    def work(args):
        atexit.register(lambda: print("teardown ran", flush=True))
        logging.getLogger("newswire.test").warning("logged before the end")
        print("stopped cleanly", end="")
        sys.stderr.write("said on stderr")
        return int(sys.argv[2])

    setattr(cli, "cmd_" + sys.argv[1], work)
    sys.exit(cli.main([sys.argv[1]]))
""")


def run(command: str, code: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCRIPT, command, str(code)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.mark.parametrize("command", ["pipeline", "up"])
def test_a_job_hosting_command_exits_with_its_code_its_output_flushed_and_no_teardown(command: str) -> None:
    done = run(command, 3)
    assert done.returncode == 3, done.stderr
    assert done.stdout == "stopped cleanly"  # flushed by `leave`, and no atexit handler ran
    assert "said on stderr" in done.stderr and "logged before the end" in done.stderr


def test_other_commands_end_through_the_interpreter_as_usual() -> None:
    done = run("config", 0)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "stopped cleanlyteardown ran\n"
