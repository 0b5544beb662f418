"""Pinned external programs the embedded stack needs, fetched once into a local cache.

- Apache Kafka: the broker's jars from Maven Central (`mvn dependency:copy-dependencies` over
  connectors/broker/pom.xml), into $NEWSWIRE_HOME/kafka-<version>/libs.
- Prism: Beam's portable local runner, a Go program built with `go install` from the Go module
  proxy at the same version as the installed apache-beam, into $NEWSWIRE_HOME/bin.

$NEWSWIRE_HOME defaults to ~/.cache/newswire, so fresh clones on one machine share the cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from connectors.process import EmbeddedServer, free_port, port_open

BROKER_DIR = Path(__file__).resolve().parents[1] / "connectors" / "broker"


class ToolchainError(RuntimeError):
    """A required external program could not be installed; the message says what to do."""


def newswire_home() -> Path:
    """Cache directory for fetched jars and binaries."""
    return Path(os.environ.get("NEWSWIRE_HOME", Path.home() / ".cache" / "newswire"))


def _require(program: str, why: str) -> str:
    found = shutil.which(program)
    if not found:
        raise ToolchainError(f"'{program}' is not on PATH; it is needed to {why}.")
    return found


def kafka_libs(version: str) -> Path:
    """Directory holding the Kafka broker's jars for `version`, fetching them on first use."""
    libs = newswire_home() / f"kafka-{version}" / "libs"
    done = libs / ".complete"
    if done.exists():
        return libs
    mvn = _require("mvn", "fetch Apache Kafka from Maven Central")
    _require("java", "run the Apache Kafka broker")
    newswire_home().mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="kafka-libs-", dir=newswire_home()))
    cmd = [mvn, "-q", "-B", "-f", str(BROKER_DIR / "pom.xml"), "dependency:copy-dependencies",
           f"-Dkafka.version={version}", f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
        shutil.rmtree(tmp, ignore_errors=True)
        raise ToolchainError(f"fetching Kafka {version} with Maven failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    (tmp / ".complete").write_text(version)
    if libs.exists():
        shutil.rmtree(libs)
    libs.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(libs)
    return libs


def beam_version() -> str:
    """Version of the installed apache-beam; Prism must match it."""
    import apache_beam

    return str(apache_beam.__version__)


def prism_binary(version: str | None = None) -> Path:
    """Path of the Prism runner binary ($NEWSWIRE_PRISM_BIN, else built with `go install` once)."""
    env = os.environ.get("NEWSWIRE_PRISM_BIN")
    if env:
        return Path(env)
    version = version or beam_version()
    target = newswire_home() / "bin" / f"prism-v{version}"
    if target.exists():
        return target
    go = _require("go", "build Beam's Prism runner")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as gobin:
        env_vars = {**os.environ, "GOBIN": gobin, "CGO_ENABLED": "0"}
        module = f"github.com/apache/beam/sdks/v2/go/cmd/prism@v{version}"
        proc = subprocess.run([go, "install", module], capture_output=True, text=True, env=env_vars,
                              check=False)
        built = Path(gobin) / "prism"
        if proc.returncode != 0 or not built.exists():
            raise ToolchainError(f"`go install {module}` failed:\n{proc.stderr[-3000:]}")
        built.rename(target)
    return target


class PrismServer(EmbeddedServer):
    """Prism as a job server in its own session, tied to this process by PR_SET_PDEATHSIG.

    Beam's PrismRunner would start Prism in our process group, where a terminal's Ctrl-C kills it
    before the job can be cancelled; owning the process lets shutdown run in order (cancel the
    job, then stop Prism) and a killed pipeline process still takes Prism down with it.
    """

    name = "Prism"

    def __init__(self, log_path: Path, binary: Path | None = None) -> None:
        self.log_path = log_path
        self.binary = binary or prism_binary()
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def log_file(self) -> Path:
        return self.log_path

    def start(self, timeout_s: float = 30) -> str:  # type: ignore[override]  # returns its endpoint
        """Start Prism and return its job endpoint (host:port)."""
        self.port = free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._spawn([str(self.binary), "--job_port", str(self.port), "--log_level", "warn", "--log_kind", "text",
                     "--serve_http=false"], "127.0.0.1", self.port, "another process took the free port; retry")
        try:
            self._wait_until(lambda: port_open("127.0.0.1", self.port), timeout_s, "open its job port", poll_s=0.05)
        except BaseException:
            self.stop()
            raise
        return f"localhost:{self.port}"

    def stop(self, timeout_s: float = 10) -> None:
        super().stop(timeout_s)


def install_all(kafka_version: str) -> dict[str, Path]:
    """Fetch everything the embedded stack needs; returns what is where."""
    return {"kafka": kafka_libs(kafka_version), "prism": prism_binary()}
