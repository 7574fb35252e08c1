"""The real Docker Engine (dockerd 20.10) for the docker SDK and `docker build`, without systemd,
iptables or a bridge. Its data root lives in the cache, so images built once survive between runs.

One dockerd per cache directory is shared by every test session on the machine: a session reuses a
running one, and the last session to stop it (an flock tells) terminates it.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO

import docker
import docker.errors

from slimguard_testbed.cache import cache_dir, file_lock, require_binary
from slimguard_testbed.process import (
    ManagedProcess,
    TestbedError,
    log_tail,
    pid_alive,
    terminate_group,
    wait_until,
)

# dockerd processes this process started and left to other sessions.
_left_running: list[ManagedProcess] = []

# A unix socket path may hold ~107 bytes; containerd's socket sits a few levels under the exec root.
_MAX_EXEC_ROOT = 60


class DockerEngine:
    """A dockerd on a unix socket under `root` (default: ~/.cache/slimguard/docker/)."""

    def __init__(self, *, root: Path | None = None, start_timeout: float = 60.0) -> None:
        self.root = Path(root) if root is not None else cache_dir("docker")
        self.start_timeout = start_timeout
        self._users: IO[str] | None = None
        self._process: ManagedProcess | None = None

    @property
    def socket_path(self) -> Path:
        return self.root / "docker.sock"

    @property
    def base_url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def pidfile(self) -> Path:
        return self.root / "docker.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "dockerd.log"

    @property
    def exec_root(self) -> Path:
        preferred = self.root / "exec"
        if len(str(preferred)) <= _MAX_EXEC_ROOT:
            return preferred
        return Path(tempfile.gettempdir()) / f"slimguard-docker-{os.getuid()}-{abs(hash(self.root)) % 10**8}"

    def client(self, *, timeout: int = 300) -> docker.DockerClient:
        """A docker SDK client for this engine (close it when done)."""
        return docker.DockerClient(base_url=self.base_url, timeout=timeout)

    def env(self) -> dict[str, str]:
        """Environment for the `docker` CLI: os.environ pointed at this engine."""
        return {**os.environ, "DOCKER_HOST": self.base_url}

    def __enter__(self) -> DockerEngine:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> DockerEngine:
        """Reuse a healthy dockerd on the socket, or (re)start one; wait until it answers."""
        if self._users is not None:
            return self
        dockerd = require_binary("dockerd", hint="apt-get install docker.io")
        self.root.mkdir(parents=True, exist_ok=True)
        with file_lock(self.root / "start.lock"):
            # A shared lock for as long as this engine is in use; whoever stops last takes it exclusively.
            users = (self.root / "users.lock").open("a")
            fcntl.flock(users, fcntl.LOCK_SH)
            self._users = users
            try:
                if not self._reusable():
                    self._kill_stale()
                    self._launch(dockerd)
            except BaseException:
                self.stop()
                raise
        return self

    def stop(self) -> None:
        """Release this engine; terminate dockerd if no other session still uses it."""
        users, self._users = self._users, None
        if users is None:
            return
        try:
            fcntl.flock(users, fcntl.LOCK_UN)
            try:
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                # Another session still uses it: leave dockerd running for them (they stop it last).
                if self._process is not None:
                    _left_running.append(self._process)  # keep the Popen alive: no ResourceWarning
                    self._process = None
                return
            self._terminate()
        finally:
            users.close()  # closing drops the lock

    def failure(self) -> str | None:
        """Why this engine is unusable (dockerd is gone while this session still uses it), else None."""
        if self._users is None or self._daemon_pid() is not None:
            return None
        last_lines = log_tail(self.log_file, 10)
        return f"dockerd on {self.socket_path} is no longer running; last lines of {self.log_file}:\n{last_lines}"

    # -- internals ------------------------------------------------------------------------------------

    def _daemon_pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid_alive(pid) and _is_dockerd(pid) else None

    def _answers(self) -> bool:
        if not self.socket_path.exists():
            return False
        try:
            client = self.client(timeout=3)
        except (docker.errors.DockerException, OSError):
            return False
        try:
            return bool(client.ping())
        except (docker.errors.DockerException, OSError):
            return False
        finally:
            client.close()

    def _reusable(self) -> bool:
        return self._daemon_pid() is not None and self._answers()

    def _kill_stale(self) -> None:
        """A dockerd that does not answer (hung, or half shut down): stop it before starting afresh."""
        pid = self._daemon_pid()
        if pid is not None:
            terminate_group(pid, timeout=20)
        for leftover in (self.pidfile, self.socket_path):
            leftover.unlink(missing_ok=True)

    def _launch(self, dockerd: Path) -> None:
        config = self.root / "daemon.json"
        # Our own (empty) config: never pick up /etc/docker/daemon.json of the machine.
        config.write_text(json.dumps({}))
        self.exec_root.mkdir(parents=True, exist_ok=True)
        process = ManagedProcess(
            "dockerd",
            [
                str(dockerd),
                f"--host={self.base_url}",
                f"--data-root={self.root / 'root'}",
                f"--exec-root={self.exec_root}",
                f"--pidfile={self.pidfile}",
                f"--config-file={config}",
                "--storage-driver=vfs",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                "--bridge=none",
            ],
            log_file=self.log_file,
            # Shared between sessions and reused after a crash: it must outlive the pytest that started it.
            die_with_parent=False,
        )
        process.start()
        self._process = process
        wait_until(
            self._answers,
            timeout=self.start_timeout,
            what=f"dockerd on {self.socket_path}",
            watch=[process],
            interval=0.1,
        )

    def _terminate(self) -> None:
        pid = self._daemon_pid()
        if self._process is not None:
            # We started it: SIGTERM dockerd alone first so it shuts containerd down in order.
            self._process.stop(timeout=30)
            self._process = None
        elif pid is not None:
            terminate_group(pid, timeout=30)
        if self._daemon_pid() is not None:
            raise TestbedError(f"dockerd (pid {pid}) did not stop; see {self.log_file}:\n{log_tail(self.log_file)}")


def _is_dockerd(pid: int) -> bool:
    """Guards against a recycled pid in a stale pidfile."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "dockerd"
    except OSError:
        return False


__all__ = ["DockerEngine"]
