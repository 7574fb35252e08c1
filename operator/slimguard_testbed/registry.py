"""A real OCI registry (distribution 2.8, Debian's `docker-registry`) on 127.0.0.1 with TLS and auth.

Its access log (Apache combined format, one line per HTTP request, 401s included) is the ground truth for
"how many registry requests did that take".
"""

from __future__ import annotations

import datetime
import os
import re
import secrets
import shutil
import ssl
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
import yaml

from slimguard_testbed.cache import require_binary
from slimguard_testbed.certs import CertificateAuthority
from slimguard_testbed.lifecycle import Service
from slimguard_testbed.ports import free_port
from slimguard_testbed.process import ManagedProcess, TestbedError, wait_until
from slimguard_testbed.token_issuer import DEFAULT_ANONYMOUS_PREFIXES, TokenIssuer

Auth = Literal["htpasswd", "token"] | None

# 127.0.0.1 - - [27/Nov/2026:00:07:28 +0000] "GET /v2/ HTTP/1.1" 401 87 "" "curl/7.88.1"
_ACCESS_LINE = re.compile(
    r'^(?P<remote>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<method>[A-Z]+) (?P<target>\S+) [^"]*" '
    r'(?P<status>\d{3}) (?P<size>\d+|-) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"'
)
_V2_PATH = re.compile(r"^/v2/(?P<name>.+)/(?P<kind>manifests|blobs|tags|referrers)(?:/(?P<rest>.*))?$")
# Requests to this path order the access log (see `Registry.requests`); they are not reported.
_BARRIER_PATH = "/slimguard-testbed/barrier/"


@dataclass(frozen=True)
class RegistryEndpoint:
    """What a client needs to reach one registry."""

    host: str  # "127.0.0.1:PORT"
    ca_file: Path
    username: str | None
    password: str | None

    @property
    def url(self) -> str:
        return f"https://{self.host}"


@dataclass(frozen=True)
class RegistryRequest:
    """One HTTP request as the registry's access log recorded it (the time has one-second resolution)."""

    method: str
    path: str  # without the query string
    status: int
    time: datetime.datetime
    size: int
    user_agent: str
    query: str = ""

    @property
    def repository(self) -> str | None:
        """`name` of /v2/<name>/(manifests|blobs|tags)/..., else None."""
        match = _V2_PATH.match(self.path)
        return match["name"] if match else None

    @property
    def kind(self) -> str | None:
        """The kind of /v2/<name>/... request (manifests, blobs, tags, referrers), else None."""
        match = _V2_PATH.match(self.path)
        return match["kind"] if match else None


class Registry(Service):
    """`docker-registry serve` on a free 127.0.0.1 port, TLS from `ca`, deletes enabled.

    `auth`: None (open), "htpasswd" (Basic, bcrypt) or "token" (Bearer tokens from a `TokenIssuer`).
    Several registries may share `storage_dir`: push once, serve it with different auth.
    `token_realm_host`: the host name in the token realm (`localhost` for clients that refuse loopback IPs).
    """

    def __init__(
        self,
        *,
        storage_dir: Path,
        ca: CertificateAuthority | None = None,
        auth: Auth = None,
        workdir: Path | None = None,
        username: str = "slimguard",
        password: str | None = None,
        anonymous_prefixes: tuple[str, ...] = DEFAULT_ANONYMOUS_PREFIXES,
        service: str = "slimguard-testbed-registry",
        start_timeout: float = 30.0,
        redirect_blobs_to: str | None = None,
        binary: Path | None = None,
        token_realm_host: str = "127.0.0.1",
        address: str = "127.0.0.1",
    ) -> None:
        if auth not in (None, "htpasswd", "token"):
            raise ValueError(f"auth must be None, 'htpasswd' or 'token', not {auth!r}")
        self.storage_dir = Path(storage_dir)
        self.ca = ca or CertificateAuthority()
        self.auth = auth
        self._own_workdir = workdir is None
        self._keep_workdir = False
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="slimguard-reg-"))
        self.username = username
        self.password = password or secrets.token_urlsafe(12)
        self.anonymous_prefixes = anonymous_prefixes
        self.service = service
        self.start_timeout = start_timeout
        self.redirect_blobs_to = redirect_blobs_to
        self.binary = binary
        """Another build of the registry (distribution v3, which paginates tag lists); default Debian's 2.8."""
        self.token_realm_host = token_realm_host
        self.address = address
        """Where it listens: the real node's registry listens on the node's bridge, where Pods and containerd
        reach it."""
        self.port = 0
        self.token_issuer: TokenIssuer | None = None
        self._process: ManagedProcess | None = None
        self._barriers = 0

    # -- public surface -------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "ca.crt"

    @property
    def endpoint(self) -> RegistryEndpoint:
        if self.auth is None:
            return RegistryEndpoint(self.host, self.ca_file, None, None)
        return RegistryEndpoint(self.host, self.ca_file, self.username, self.password)

    @property
    def access_log(self) -> Path:
        return self.workdir / "access.log"

    @property
    def log_file(self) -> Path:
        """The registry's own JSON log (stderr)."""
        return self.workdir / "registry.log"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this registry (and its token issuer)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self.token_issuer is not None:
            self.token_issuer.stop()
            self.token_issuer = None
        if self._own_workdir and not self._keep_workdir and not os.environ.get("SLIMGUARD_KEEP_TESTBED"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def failure(self) -> str | None:
        """Why this registry is unusable (its process or its token issuer died on its own), else None."""
        if self._process is not None and (reason := self._process.failure()) is not None:
            return reason
        return self.token_issuer.failure() if self.token_issuer is not None else None

    def mark(self) -> int:
        """A position in the request log: `requests(since=mark)` gives the requests made after it."""
        return len(self.requests())

    def requests(self, since: int = 0) -> list[RegistryRequest]:
        """Every HTTP request served so far (from position `since`), oldest first.

        The registry writes a log line just *after* a response goes out, so a barrier request is made
        first: once its line is in the log, the lines of every response already received are too.
        """
        self._barrier()
        return _parse_access_log(self.access_log)[since:]

    # -- start-up -------------------------------------------------------------------------------------

    def _start(self) -> None:
        binary = self.binary or require_binary("docker-registry", hint="apt-get install docker-registry")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        self.ca.write(self.workdir)
        self.port = self.port or free_port()  # started again after stop(), it keeps its address, as a real one does
        tls_cert, tls_key = self.ca.issue(
            "registry", hosts=(*dict.fromkeys((self.address, "127.0.0.1")), "localhost")
        ).write(self.workdir, "registry-tls")
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "json", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage_dir)},
                "delete": {"enabled": True},
                # Another registry may be pushing into the same directory: never purge its uploads.
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {
                "addr": self.host,
                "secret": secrets.token_hex(16),
                "tls": {"certificate": str(tls_cert), "key": str(tls_key)},
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
        }
        if self.redirect_blobs_to:
            # Blob GETs answer 307 to this base URL + the storage path, as registries backed by S3 do.
            config["middleware"] = {"storage": [{"name": "redirect", "options": {"baseurl": self.redirect_blobs_to}}]}
        if self.auth == "htpasswd":
            config["auth"] = {"htpasswd": {"realm": "slimguard-testbed", "path": str(self._write_htpasswd())}}
        elif self.auth == "token":
            self.token_issuer = TokenIssuer(
                service=self.service,
                users={self.username: self.password},
                workdir=self.workdir,
                anonymous_prefixes=self.anonymous_prefixes,
                ca=self.ca,
                realm_host=self.token_realm_host,
            ).start()
            config["auth"] = {
                "token": {
                    "realm": self.token_issuer.url,
                    "service": self.service,
                    "issuer": self.token_issuer.issuer,
                    "rootcertbundle": str(self.token_issuer.signing_cert_file),
                }
            }
        conf_file = self.workdir / "config.yml"
        conf_file.write_text(yaml.safe_dump(config, sort_keys=False))

        # The access log goes to stdout and the JSON log to stderr: keep them apart, one format each.
        self._process = ManagedProcess(
            "docker-registry",
            [str(binary), "serve", str(conf_file)],
            log_file=self.access_log,
            stderr_file=self.log_file,
            cwd=self.workdir,
        )
        self._process.start()
        wait_until(
            self._answers, timeout=self.start_timeout, what=f"the registry on {self.host}", watch=[self._process]
        )

    def _write_htpasswd(self) -> Path:
        htpasswd = require_binary("htpasswd", hint="apt-get install apache2-utils")
        result = subprocess.run(
            [str(htpasswd), "-Bbn", self.username, self.password], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise TestbedError(f"htpasswd failed: {result.stderr.strip()}")
        path = self.workdir / "htpasswd"
        path.write_text(result.stdout)
        return path

    def _client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), timeout=5.0)

    def _answers(self) -> bool:
        try:
            with self._client() as client:
                return client.get("/v2/").status_code in (200, 401)
        except httpx.HTTPError:
            return False

    def _barrier(self) -> None:
        self._barriers += 1
        token = f"{os.getpid()}-{id(self)}-{self._barriers}"
        with self._client() as client:
            client.get(f"{_BARRIER_PATH}{token}")
        wait_until(
            lambda: token in self.access_log.read_text(errors="replace"),
            timeout=5,
            what="the registry's access log",
            interval=0.01,
        )


def _parse_access_log(path: Path) -> list[RegistryRequest]:
    requests: list[RegistryRequest] = []
    for line in path.read_text(errors="replace").splitlines():
        match = _ACCESS_LINE.match(line)
        if match is None:
            continue
        target = match["target"]
        if target.startswith(_BARRIER_PATH):
            continue
        path_part, _, query = target.partition("?")
        requests.append(
            RegistryRequest(
                method=match["method"],
                path=path_part,
                status=int(match["status"]),
                time=datetime.datetime.strptime(match["time"], "%d/%b/%Y:%H:%M:%S %z"),
                size=0 if match["size"] == "-" else int(match["size"]),
                user_agent=match["agent"],
                query=query,
            )
        )
    return requests


__all__ = ["Registry", "RegistryEndpoint", "RegistryRequest"]
