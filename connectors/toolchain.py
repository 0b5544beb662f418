"""Pinned external programs the embedded stack needs, fetched once into a local cache.

- Apache Kafka: the broker's jars from Maven Central (`mvn dependency:copy-dependencies` over
  connectors/broker/pom.xml), into $NEWSWIRE_HOME/kafka-<version>/libs.
- Prism: Beam's portable local runner, a Go program built from the Go module proxy's source at the
  same version as the installed apache-beam, into $NEWSWIRE_HOME/bin, with two lines changed
  (`PRISM_PATCHES`): its job server (which also serves the workers' FnAPI) listens on 127.0.0.1
  instead of every interface (Prism has no flag for that, and anyone who reaches that port can
  submit a pipeline, which is running code of their choice as us); and a bundle's wait for the
  SDK's response no longer spins on a closed channel (it burnt a core per running bundle of a
  stage without outputs, such as the delivery stage).

$NEWSWIRE_HOME defaults to ~/.cache/newswire, so fresh clones on one machine share the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from connectors.process import EmbeddedServer, free_port, listening_sockets, port_open

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


class PrismPatch(NamedTuple):
    """One change to Prism's source before it is built: ``old`` must occur exactly once in ``path``."""

    path: str
    old: str
    new: str
    why: str


#: The job server listens on every interface, and its port also serves the SDK workers' control,
#: data and state streams. Listening on 127.0.0.1 closes both.
PRISM_SERVER_GO = "go/pkg/beam/runners/prism/internal/jobservices/server.go"
PRISM_LISTEN_ALL = 'net.Listen("tcp", fmt.Sprintf(":%d", port))'
PRISM_LISTEN_LOOPBACK = 'net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))'

#: stage.Execute waits for a bundle in a select over the bundle's response, its data outputs'
#: end (``dataReady``, a channel closed once every output has sent its last element, or at once
#: for a stage without outputs) and a progress ticker. Once ``dataReady`` is closed, the select
#: takes it on every pass until the response arrives: a busy loop for the rest of the bundle. Our
#: delivery stage has no outputs, so every delivery bundle (the sinks' writes and flushes) held a
#: core at 100% in Prism; measured: Prism ~11.5% of a core per idle job, 1.1-1.5 ms of CPU per
#: fragment under load (bench/RESULTS.md, "Prism's busy wait"). A nil channel never fires, so
#: clearing it after the first take is Go's idiom for "done with this case". Found in 2.77.0.
PRISM_STAGE_GO = "go/pkg/beam/runners/prism/internal/stage.go"
PRISM_DATA_READY_SPIN = "\t\tcase <-dataReady:\n\t\t\tdataFinished = true\n"
PRISM_DATA_READY_ONCE = (PRISM_DATA_READY_SPIN +
                         "\t\t\tdataReady = nil // newswire: closed, it would be taken on every pass until the response\n")

PRISM_PATCHES = (
    PrismPatch(PRISM_SERVER_GO, PRISM_LISTEN_ALL, PRISM_LISTEN_LOOPBACK, "Prism listens on loopback only"),
    PrismPatch(PRISM_STAGE_GO, PRISM_DATA_READY_SPIN, PRISM_DATA_READY_ONCE,
               "Prism does not spin while a bundle of a stage without outputs runs"),
)


def prism_patch_id(patches: Sequence[PrismPatch] = PRISM_PATCHES) -> str:
    """A short digest of the patch set: part of the binary's name, so a changed set builds anew."""
    digest = hashlib.sha256(repr([(p.path, p.old, p.new) for p in patches]).encode()).hexdigest()
    return digest[:8]


def apply_prism_patches(tree: Path, version: str, patches: Sequence[PrismPatch] = PRISM_PATCHES) -> None:
    """Apply ``patches`` to the Beam source ``tree``; a patch whose text is not there exactly once
    stops the build with what to update (a new Beam version may have moved or fixed it)."""
    for patch in patches:
        source = tree / patch.path
        text = source.read_text()
        if text.count(patch.old) != 1:
            raise ToolchainError(f"Prism {version}: {patch.path} no longer holds {patch.old!r} once; update "
                                 f"PRISM_PATCHES in connectors/toolchain.py ({patch.why})")
        source.write_text(text.replace(patch.old, patch.new))


def prism_binary(version: str | None = None) -> Path:
    """Path of the Prism runner binary ($NEWSWIRE_PRISM_BIN, else built once with `PRISM_PATCHES`)."""
    env = os.environ.get("NEWSWIRE_PRISM_BIN")
    if env:
        return Path(env)
    version = version or beam_version()
    target = newswire_home() / "bin" / f"prism-v{version}-nw{prism_patch_id()}"
    if target.exists():
        return target
    go = _require("go", "build Beam's Prism runner")
    target.parent.mkdir(parents=True, exist_ok=True)
    module = f"github.com/apache/beam/sdks/v2@v{version}"
    env_vars = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        fetched = subprocess.run([go, "mod", "download", "-json", module], capture_output=True, text=True,
                                 env=env_vars, cwd=work, check=False)
        if fetched.returncode != 0:
            raise ToolchainError(f"`go mod download {module}` failed:\n{fetched.stdout[-2000:]}{fetched.stderr[-2000:]}")
        # The module cache is read-only and -overlay may not replace files in it: build from a copy.
        source, tree = Path(json.loads(fetched.stdout)["Dir"]), Path(work) / "beam"
        shutil.copytree(source / "go", tree / "go", copy_function=shutil.copyfile)
        for name in ("go.mod", "go.sum"):
            shutil.copyfile(source / name, tree / name)
        for folder, _, _ in os.walk(tree):
            os.chmod(folder, 0o755)  # copytree copied the cache's read-only modes; cleanup needs write
        apply_prism_patches(tree, version)
        built = Path(work) / "prism"
        proc = subprocess.run([go, "build", "-trimpath", "-o", str(built), "./go/cmd/prism"], capture_output=True,
                              text=True, env=env_vars, cwd=tree, check=False)
        if proc.returncode != 0 or not built.exists():
            raise ToolchainError(f"building Prism from {module} failed:\n{proc.stderr[-3000:]}")
        built.rename(target)
    return target


class PrismServer(EmbeddedServer):
    """Prism as a job server in its own session, tied to this process by PR_SET_PDEATHSIG, and the
    SDK worker pool it runs our Python code on, in this process; both listen on 127.0.0.1 only.

    Beam's PrismRunner would start Prism in our process group, where a terminal's Ctrl-C kills it
    before the job can be cancelled; owning the process lets shutdown run in order (cancel the
    job, then stop Prism) and a killed pipeline process still takes Prism down with it.

    The worker pool is what ``--environment_type=LOOPBACK`` would start, but Beam's listens on every
    interface (``worker_pool_main.BeamFnExternalWorkerPoolServicer.start`` binds ``[::]``), and
    whoever reaches it can start a worker against a control endpoint of their choice. So we serve
    the same servicer on 127.0.0.1 and give Prism its address as an EXTERNAL environment
    (``--environment_config``, see ``pipelines.run.runner_options``): the job runs as with LOOPBACK.
    """

    name = "Prism"

    def __init__(self, log_path: Path, binary: Path | None = None) -> None:
        self.log_path = log_path
        self.binary = binary or prism_binary()
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        #: host:port of the SDK worker pool, for --environment_config (set by start()).
        self.worker_endpoint = ""
        self._workers: Any = None  # the pool's grpc.Server

    @property
    def log_file(self) -> Path:
        return self.log_path

    def start(self, timeout_s: float = 30,  # type: ignore[override]  # returns its endpoint
              worker_options: Any = None) -> str:
        """Start Prism and the worker pool; return Prism's job endpoint (host:port).

        ``worker_options``: the pipeline's PipelineOptions, for the pool's cache size and experiments.
        """
        self.port = free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._spawn([str(self.binary), "--job_port", str(self.port), "--log_level", "warn", "--log_kind", "text",
                     "--serve_http=false"], "127.0.0.1", self.port, "another process took the free port; retry")
        try:
            self._wait_until(lambda: port_open("127.0.0.1", self.port), timeout_s, "open its job port", poll_s=0.05)
            assert self.proc is not None
            exposed = [f"{ip}:{port}" for ip, port in listening_sockets(self.proc.pid) if not ip.is_loopback]
            if exposed:
                raise RuntimeError(f"Prism ({self.binary}) listens on {', '.join(exposed)}, beyond loopback: whoever "
                                   "reaches it can run code as this user. Unset NEWSWIRE_PRISM_BIN to use the "
                                   "loopback-only build (`newswire setup` makes it).")
            self.worker_endpoint = self._serve_workers(worker_options)
        except BaseException:
            self.stop()
            raise
        return f"localhost:{self.port}"

    def _serve_workers(self, options: Any) -> str:
        """What PortableRunner.start_and_replace_loopback_environments starts, on 127.0.0.1."""
        import grpc
        from apache_beam.options.pipeline_options import DebugOptions, PipelineOptions
        from apache_beam.portability.api import beam_fn_api_pb2_grpc
        from apache_beam.runners.worker import sdk_worker_main
        from apache_beam.runners.worker.worker_pool_main import BeamFnExternalWorkerPoolServicer
        from apache_beam.utils import thread_pool_executor

        options = options or PipelineOptions([])
        debug = options.view_as(DebugOptions)
        servicer = BeamFnExternalWorkerPoolServicer(
            use_process=debug.lookup_experiment("use_loopback_process_worker", False),
            state_cache_size=sdk_worker_main._get_state_cache_size_bytes(options),
            data_buffer_time_limit_ms=sdk_worker_main._get_data_buffer_time_limit_ms(debug.experiments or []))
        server = grpc.server(thread_pool_executor.shared_unbounded_instance(),
                             options=[("grpc.http2.max_pings_without_data", 0), ("grpc.http2.max_ping_strikes", 0)])
        port = server.add_insecure_port("127.0.0.1:0")
        beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(servicer, server)
        server.start()
        self._workers = server
        return f"127.0.0.1:{port}"

    def stop(self, timeout_s: float = 10) -> None:
        """Stop Prism, then the worker pool."""
        try:
            super().stop(timeout_s)
        finally:
            if self._workers is not None:
                self._workers.stop(1)
                self._workers = None


def install_all(kafka_version: str) -> dict[str, Path]:
    """Fetch everything the embedded stack needs; returns what is where."""
    return {"kafka": kafka_libs(kafka_version), "prism": prism_binary()}
