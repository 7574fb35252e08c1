"""An egress proxy on 127.0.0.1: Debian's tinyproxy, the real one, as a cluster reaches registries through.

Its own log is the ground truth for what went through it: every connection a client opened to it, and every
request line it was asked (``CONNECT host:port`` for HTTPS, the absolute URL for plain HTTP), which it logs on
arrival, before it answers. It resolves names itself (glibc: /etc/hosts, so ``localhost`` is 127.0.0.1 here)
and connects to any port: no ``ConnectPort`` line, which would otherwise limit CONNECT to the ones listed. It
forwards to loopback destinations only (a default-deny ``Filter`` that lets ``localhost`` and 127.0.0.1 through):
whatever a test asks of it, nothing it carries leaves the machine.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from slimguard_testbed.cache import require_binary
from slimguard_testbed.lifecycle import Service
from slimguard_testbed.ports import free_port
from slimguard_testbed.process import ManagedProcess, wait_until

# CONNECT   Dec 07 18:51:32.023 [4668]: Connect (file descriptor 5): 127.0.0.1
# CONNECT   Dec 07 18:51:32.029 [4668]: Request (file descriptor 5): CONNECT 127.0.0.1:38912 HTTP/1.1
# CONNECT   Dec 07 18:51:32.053 [4668]: Established connection to host "127.0.0.1" using file descriptor 6.
_ACCEPTED = re.compile(r"^CONNECT\s.*\]: Connect \(file descriptor \d+\): (?P<client>\S+)$")
_REQUEST = re.compile(r"^CONNECT\s.*\]: Request \(file descriptor \d+\): (?P<method>[A-Z]+) (?P<target>\S+) HTTP/")
_ESTABLISHED = re.compile(r'^CONNECT\s.*\]: Established connection to host "(?P<host>[^"]*)"')
_FILTERED = re.compile(r'^NOTICE\s.*\]: Proxying refused on filtered domain "(?P<host>[^"]*)"')
# Extended regular expressions over the destination host, the only ones it forwards to.
_LOOPBACK_ONLY = ("^localhost$", r"^127\.0\.0\.1$")


@dataclass(frozen=True)
class ProxyLog:
    """What tinyproxy's log says happened, in order."""

    connections: tuple[str, ...]
    """The client address of every connection accepted."""
    requests: tuple[tuple[str, str], ...]
    """(method, target) of every request line: ("CONNECT", "localhost:5000"), ("GET", "http://host/v2/")."""
    established: tuple[str, ...]
    """The host of every onward connection the proxy opened (a request it refused, e.g. 407, has none)."""
    filtered: tuple[str, ...] = ()
    """The destination host of every request refused for not being on loopback (403, nothing sent onward)."""

    @property
    def targets(self) -> set[str]:
        """``host:port`` of every CONNECT asked for."""
        return {target for method, target in self.requests if method == "CONNECT"}


class ForwardProxy(Service):
    """``tinyproxy -d`` on a free 127.0.0.1 port, clients from 127.0.0.1 only, with its own log in ``workdir``.

    ``basic_auth``: (user, password) it demands as ``Proxy-Authorization`` (407 without).
    """

    def __init__(self, *, workdir: Path | None = None, basic_auth: tuple[str, str] | None = None) -> None:
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="slimguard-proxy-"))
        self.basic_auth = basic_auth
        self.port = 0
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """The proxy URL without credentials."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url_with_credentials(self) -> str:
        if self.basic_auth is None:
            raise ValueError("this proxy asks for no credentials")
        user, password = self.basic_auth
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.workdir / "tinyproxy.log"

    def mark(self) -> int:
        """A position in the log: ``log(since=mark)`` tells only what happened after it."""
        return len(self._lines())

    def log(self, since: int = 0) -> ProxyLog:
        connections, requests, established, filtered = [], [], [], []
        for line in self._lines()[since:]:
            if match := _ACCEPTED.match(line):
                connections.append(match["client"])
            elif match := _REQUEST.match(line):
                requests.append((match["method"], match["target"]))
            elif match := _ESTABLISHED.match(line):
                established.append(match["host"])
            elif match := _FILTERED.match(line):
                filtered.append(match["host"])
        return ProxyLog(tuple(connections), tuple(requests), tuple(established), tuple(filtered))

    def _lines(self) -> list[str]:
        return self.log_file.read_text(errors="replace").splitlines() if self.log_file.exists() else []

    def _start(self) -> None:
        binary = require_binary("tinyproxy", hint="apt-get install tinyproxy")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        auth = f"BasicAuth {self.basic_auth[0]} {self.basic_auth[1]}\n" if self.basic_auth else ""
        allowed = self.workdir / "loopback-only.filter"
        allowed.write_text("".join(f"{pattern}\n" for pattern in _LOOPBACK_ONLY))
        conf = self.workdir / "tinyproxy.conf"
        conf.write_text(
            f"Port {self.port}\n"
            "Listen 127.0.0.1\n"
            "Timeout 60\n"
            f'LogFile "{self.log_file}"\n'
            "LogLevel Info\n"
            f'PidFile "{self.workdir / "tinyproxy.pid"}"\n'
            "MaxClients 100\n"
            "Allow 127.0.0.1\n"
            "DisableViaHeader Yes\n"
            f'Filter "{allowed}"\n'
            "FilterType ere\n"
            "FilterDefaultDeny Yes\n" + auth
        )
        self._process = ManagedProcess(
            "tinyproxy", [str(binary), "-d", "-c", str(conf)], log_file=self.workdir / "tinyproxy.out"
        )
        self._process.start()
        # Told by its log, not by connecting: a probe's connection would be in the log the tests read.
        wait_until(
            lambda: any("Accepting connections" in line for line in self._lines()),
            timeout=15,
            what=f"tinyproxy on {self.url}",
            watch=[self._process],
        )

    def failure(self) -> str | None:
        return self._process.failure() if self._process is not None else None

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self._own_workdir and not self._keep_workdir and not os.environ.get("SLIMGUARD_KEEP_TESTBED"):
            shutil.rmtree(self.workdir, ignore_errors=True)
