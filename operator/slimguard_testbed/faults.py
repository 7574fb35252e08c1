"""Faults to put between slimguard and its registry, all on 127.0.0.1: a rate-limiting nginx, a hostile
registry, and a TCP proxy that delays every connection.

The nginx is the real one (Debian's package) with ``limit_req``: what a rate-limited registry does is what it
does. The hostile registry is not a double of a real one; it plays a registry that serves wrong content on
purpose (a digest that does not match, a body cut short, a redirect loop, an endless body), which no real
registry can be asked to do.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import shutil
import socket
import socketserver
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from slimguard_testbed.cache import require_binary
from slimguard_testbed.lifecycle import Service
from slimguard_testbed.ports import free_port
from slimguard_testbed.process import ManagedProcess, wait_until

# --- nginx in front of a registry, rate limiting -----------------------------------------------------------


@dataclass(frozen=True)
class ProxiedRequest:
    """One request as nginx's access log recorded it (``$msec``: milliseconds)."""

    at: float
    status: int
    method: str
    path: str


_NGINX_LINE = re.compile(r"^(?P<at>\d+\.\d+) (?P<status>\d{3}) (?P<method>[A-Z]+) (?P<path>\S+)$")


class RateLimitingProxy(Service):
    """nginx on 127.0.0.1 (plain HTTP) proxying to ``upstream`` (HTTPS), ``rate`` requests a minute at most.

    Over the rate it answers 429 with ``Retry-After: retry_after``, as registries behind a rate limiter do.
    """

    def __init__(self, *, upstream: str, rate_per_minute: int, retry_after: int, workdir: Path | None = None) -> None:
        self.upstream = upstream
        self.rate_per_minute = rate_per_minute
        self.retry_after = retry_after
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="slimguard-nginx-"))
        self.port = 0
        self._process: ManagedProcess | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.workdir / "access.log"

    def requests(self) -> list[ProxiedRequest]:
        """Every request nginx has logged (it logs when the response is done), oldest first."""
        found = []
        text = self.access_log.read_text(errors="replace") if self.access_log.exists() else ""
        for line in text.splitlines():
            match = _NGINX_LINE.match(line)
            if match:
                found.append(ProxiedRequest(float(match["at"]), int(match["status"]), match["method"], match["path"]))
        return found

    def _start(self) -> None:
        binary = require_binary("nginx", hint="apt-get install nginx-light")
        self.workdir.mkdir(parents=True, exist_ok=True)
        for temp in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.workdir / "tmp" / temp).mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        w = self.workdir
        user = "user root;\n" if os.geteuid() == 0 else ""  # as root, workers would otherwise be nobody
        config = f"""{user}worker_processes 1;
daemon off;
pid {w}/nginx.pid;
error_log {w}/error.log info;
events {{ worker_connections 256; }}
http {{
    log_format timed '$msec $status $request_method $request_uri';
    access_log {w}/access.log timed;
    client_body_temp_path {w}/tmp/body;
    proxy_temp_path {w}/tmp/proxy;
    fastcgi_temp_path {w}/tmp/fastcgi;
    uwsgi_temp_path {w}/tmp/uwsgi;
    scgi_temp_path {w}/tmp/scgi;
    limit_req_zone $server_name zone=registry:1m rate={self.rate_per_minute}r/m;
    limit_req_status 429;
    server {{
        listen 127.0.0.1:{self.port};
        server_name registry;
        location = /nginx-ready {{ return 204; }}
        location / {{
            limit_req zone=registry;
            add_header Retry-After {self.retry_after} always;
            proxy_pass {self.upstream};
            proxy_ssl_verify off;
            proxy_set_header Host $http_host;
            proxy_buffering off;
        }}
    }}
}}
"""
        conf = w / "nginx.conf"
        conf.write_text(config)
        self._process = ManagedProcess(
            "nginx", [str(binary), "-p", str(w), "-c", str(conf), "-e", str(w / "error.log")], log_file=w / "nginx.out"
        )
        self._process.start()
        wait_until(self._answers, timeout=15, what=f"nginx on {self.host}", watch=[self._process])

    def _answers(self) -> bool:
        try:
            return httpx.get(f"http://{self.host}/nginx-ready", timeout=2).status_code == 204
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self._own_workdir and not self._keep_workdir and not os.environ.get("SLIMGUARD_KEEP_TESTBED"):
            shutil.rmtree(self.workdir, ignore_errors=True)


# --- a registry that serves wrong content on purpose -------------------------------------------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _sha256(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "config": {"User": "10001"}, "rootfs": {}}).encode()
LAYER_DIGEST = _sha256(b"layer")
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": _sha256(CONFIG),
            "size": len(CONFIG),
        },
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": LAYER_DIGEST, "size": 5}],
    }
).encode()
OTHER_MANIFEST = MANIFEST.replace(b'"size": 5', b'"size": 6')
HUGE = 2 * 1024**3


@dataclass
class HostileRequest:
    method: str
    path: str
    status: int
    body_bytes: int  # bytes of body written before the response ended or the client went away


class HostileRegistry(Service):
    """Plain HTTP on 127.0.0.1. Each repository is one fault, for every reference under it:

    - ``mismatch/app``: HEAD and GET name digest D, but GET serves a body whose digest is not D.
    - ``truncated/app``: a sound manifest; its config blob announces its length and stops halfway.
    - ``loop/app``: every manifest request redirects to itself.
    - ``huge/app``: the manifest announces 2 GiB; ``endless/app``: chunked, it never ends.
    - ``badtoken/app``: asks for a bearer token whose ``expires_in`` is a list.
    - ``sound/app``: a small sound image, to show the same client reads a registry that behaves.
    """

    def __init__(self) -> None:
        self.port = 0
        self.log: list[HostileRequest] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def requests_for(self, repository: str) -> list[HostileRequest]:
        with self._lock:
            return [r for r in self.log if r.path.startswith(f"/v2/{repository}/")]

    def _record(self, request: HostileRequest) -> None:
        with self._lock:
            self.log.append(request)

    def _start(self) -> None:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(head=True)

            def do_GET(self) -> None:
                self._serve(head=False)

            def _send(self, status: int, headers: dict[str, str], body: bytes, *, head: bool) -> HostileRequest:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in headers and "Transfer-Encoding" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                written = 0
                if not head and body:
                    self.wfile.write(body)
                    written = len(body)
                record = HostileRequest(self.command, self.path, status, written)
                registry._record(record)
                return record

            def _serve(self, *, head: bool) -> None:
                path = self.path.split("?")[0]
                if path == "/v2/":
                    self._send(200, {"Content-Type": "application/json"}, b"{}", head=head)
                    return
                if path == "/token":
                    token = json.dumps({"token": "t", "expires_in": [1]}).encode()
                    self._send(200, {"Content-Type": "application/json"}, token, head=head)
                    return
                parts = path.split("/")  # "", "v2", repo, "app", kind, reference
                if len(parts) != 6:
                    self._send(404, {}, b"", head=head)
                    return
                fault, kind = parts[2], parts[4]
                if kind == "manifests":
                    self._manifest(fault, head=head)
                elif kind == "blobs":
                    self._blob(fault, parts[5], head=head)
                else:
                    self._send(404, {}, b"", head=head)

            def _manifest(self, fault: str, *, head: bool) -> None:
                sound = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": _sha256(MANIFEST)}
                if fault in ("sound", "truncated"):
                    self._send(200, sound, MANIFEST, head=head)
                elif fault == "mismatch":
                    self._send(200, sound, OTHER_MANIFEST, head=head)
                elif fault == "loop":
                    self._send(302, {"Location": self.path}, b"", head=head)
                elif fault == "huge":
                    if head:
                        self._send(200, sound, b"", head=True)
                        return
                    self._stream(self._send(200, {**sound, "Content-Length": str(HUGE)}, b"", head=True), limit=HUGE)
                elif fault == "endless":
                    if head:
                        self._send(200, sound, b"", head=True)
                        return
                    self._stream(self._send(200, {**sound, "Transfer-Encoding": "chunked"}, b"", head=True), limit=None)
                elif fault == "badtoken":
                    realm = f'Bearer realm="http://{registry.host}/token",service="hostile"'
                    self._send(401, {"WWW-Authenticate": realm}, b"", head=head)
                else:
                    self._send(404, {}, b"", head=head)

            def _blob(self, fault: str, digest: str, *, head: bool) -> None:
                if digest != _sha256(CONFIG):
                    self._send(404, {}, b"", head=head)
                elif fault == "truncated":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(CONFIG)))
                    self.end_headers()
                    self.wfile.write(CONFIG[: len(CONFIG) // 2])
                    self.wfile.flush()
                    registry._record(HostileRequest(self.command, self.path, 200, len(CONFIG) // 2))
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                else:
                    self._send(200, {"Content-Type": "application/octet-stream"}, CONFIG, head=head)

            def _stream(self, record: HostileRequest, *, limit: int | None) -> None:
                """Write 64 KiB chunks until ``limit`` or until the client hangs up; record how much went out."""
                chunk = b"x" * 65536
                written = 0
                chunked = limit is None
                try:
                    while limit is None or written < limit:
                        if chunked:
                            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                        else:
                            self.wfile.write(chunk)
                        written += len(chunk)
                except OSError:
                    pass
                finally:
                    self.close_connection = True
                    with registry._lock:
                        record.body_bytes = written

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="hostile-registry", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


# --- a TCP proxy that holds every new connection for a while -----------------------------------------------


class DelayProxy(Service):
    """Forwards 127.0.0.1:port to ``upstream`` (host, port), holding each new connection ``delay`` seconds
    before connecting upstream: a registry that is slow to answer (set ``delay`` at any time)."""

    def __init__(self, *, upstream: tuple[str, int], delay: float) -> None:
        if upstream[0] != "127.0.0.1":
            raise ValueError("the delay proxy forwards to loopback only")
        self.upstream = upstream
        self.delay = delay
        self.port = 0
        self.connections = 0
        self._server: socketserver.ThreadingTCPServer | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _start(self) -> None:
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy.connections += 1
                time.sleep(proxy.delay)
                client: socket.socket = self.request
                try:
                    upstream = socket.create_connection(proxy.upstream, timeout=10)
                except OSError:
                    return
                with upstream:
                    sockets = [client, upstream]
                    while True:
                        readable, _, _ = select.select(sockets, [], [], 30)
                        if not readable:
                            return
                        for source in readable:
                            data = source.recv(65536)
                            if not data:
                                return
                            (upstream if source is client else client).sendall(data)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="delay-proxy", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


__all__ = ["DelayProxy", "HostileRegistry", "ProxiedRequest", "RateLimitingProxy"]
