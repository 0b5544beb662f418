"""Embedded servers as child processes: the one way this project runs Kafka, Redis and PostgreSQL.

What the three have in common, and why:

* a child dies with its parent (``PR_SET_PDEATHSIG``), so a killed pipeline, test session or
  ``newswire up`` never leaves an orphan holding a port or a data directory;
* a server left running by a previous, killed session is found through its pid file and stopped
  before a new one starts (checked against ``/proc/<pid>/cmdline``, so a recycled pid is left alone);
* a busy port is a clear error that says what to change, not a confusing crash of the child;
* start waits until the server really answers, and shows the tail of its log when it dies instead;
* stop is a clean shutdown first, harder signals only if it hangs.
"""

from __future__ import annotations

import ctypes
import functools
import ipaddress
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:  # runs in the child between fork and exec
    """New session, and ``sig`` when the parent dies (Linux; elsewhere only the new session)."""
    os.setsid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)
    except OSError:
        pass


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) means this machine only: ``localhost`` or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def listening_sockets(pid: int) -> list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]:
    """(address, port) of every TCP socket process ``pid`` listens on, read from /proc (Linux).

    /proc/<pid>/net/tcp{,6} lists the sockets of the whole network namespace; the ones whose inode
    is among the process's open files are its own. An IPv4-mapped IPv6 address is given as IPv4.
    """
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except OSError:  # closed since the listing
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:["):-1])
    found = []
    for table in ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except FileNotFoundError:  # no IPv6 in this kernel
            continue
        for row in rows:
            fields = row.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: TCP_LISTEN
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)  # 32-bit words in host (little-endian) order
            ip = ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)))
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            found.append((ip, int(port, 16)))
    return found


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600 from the first byte: it holds a secret)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode applies to a new file only
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def stale_pid(pid_file: Path, *markers: bytes) -> int | None:
    """The pid in ``pid_file`` (first line) if that process is alive and its command line holds
    every marker; None otherwise."""
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ValueError, PermissionError):
        return None
    return pid if all(m in cmdline for m in markers) else None


def stop_pid(pid: int, signals: Sequence[int], wait_s: float) -> None:
    """Send each signal in turn, waiting up to ``wait_s`` after each, until the process is gone."""
    for sig in signals:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not Path(f"/proc/{pid}").exists():
                return
            time.sleep(0.1)


class EmbeddedServer:
    """A server run as a child process. Subclasses give ``name``, ``log_file``, ``pid_file`` (None
    when the server writes its own), the shutdown signals, and a ``start`` that prepares, calls
    :meth:`_stop_stale`, :meth:`_spawn` and :meth:`_wait_until`. Usable as a context manager."""

    name = "server"
    #: Clean shutdown first, then harder ones if the process does not exit in time.
    stop_signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGKILL)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        raise NotImplementedError

    @property
    def pid_file(self) -> Path | None:
        return None

    def _stop_stale(self, pid_file: Path, *markers: bytes, wait_s: float = 15) -> None:
        """Stop a server that a previous, killed session left running (see :func:`stale_pid`)."""
        pid = stale_pid(pid_file, *markers)
        if pid is not None:
            log.warning("stopping stale embedded %s pid %s", self.name, pid)
            stop_pid(pid, self.stop_signals, wait_s)

    def _spawn(self, command: list[str], host: str, port: int, busy_hint: str) -> None:
        """Start ``command`` as a child that dies with this process, its output in ``log_file``."""
        if port_open(host, port):
            raise RuntimeError(f"port {host}:{port} is already in use; {busy_hint}")
        with open(self.log_file, "ab") as out:
            # preexec_fn: the only way to set PR_SET_PDEATHSIG for the child; it runs before exec and
            # touches no locks, so the threads warning does not apply.
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                         preexec_fn=functools.partial(die_with_parent, self.stop_signals[0]))  # noqa: PLW1509
        if self.pid_file is not None:
            self.pid_file.write_text(str(self.proc.pid))

    def _wait_until(self, ready: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.1) -> None:
        """Poll ``ready()`` until true; the log's tail if the child exits, TimeoutError after ``timeout_s``."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while not ready():
            if self.proc.poll() is not None:
                tail = self.log_file.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} during start:\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not {what} in {timeout_s}s; see {self.log_file}")
            time.sleep(poll_s)

    def start(self, timeout_s: float = 60) -> Self:
        raise NotImplementedError

    def stop(self, timeout_s: float = 30) -> None:
        """Clean shutdown (``stop_signals[0]``), the harder signals only if it hangs."""
        if self.proc is None:
            return
        for i, sig in enumerate(self.stop_signals):
            if self.proc.poll() is not None:
                break
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s if i == 0 else 10)
            except subprocess.TimeoutExpired:
                continue
        self.proc.wait()
        self.proc = None
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
