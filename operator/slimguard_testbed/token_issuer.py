"""A bearer-token issuer for the registry, as Docker Hub, GHCR or Harbor run one.

`GET /token?service=S&scope=repository:NAME:pull,push` answers with an RS256 JWT that the registry
verifies against its `rootcertbundle` (the issuer's self-signed certificate, sent in the `x5c` header).
Pulls from repositories under an anonymous prefix need no credentials; anything else needs valid
Basic credentials; otherwise the token grants nothing and the registry answers 401.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from slimguard_testbed.certs import CertificateAuthority, self_signed

DEFAULT_ANONYMOUS_PREFIXES = ("public/", "base/", "shop/")
_EXPIRES_IN = 300


@dataclass(frozen=True)
class TokenRequest:
    """One request the issuer answered (for tests that count round trips)."""

    user: str | None  # None: anonymous
    scopes: tuple[str, ...]
    granted: tuple[tuple[str, str, tuple[str, ...]], ...]  # (type, name, actions)
    status: int
    # TCP_NODELAY on the connection that carried the answer: without it the body, written after the
    # headers, waits for the client's delayed ACK (Nagle), ~40 ms per token.
    nodelay: bool = False


@dataclass(frozen=True)
class _Grant:
    type: str
    name: str
    actions: tuple[str, ...]


class TokenIssuer:
    """A tiny HTTP(S) token server in a thread on 127.0.0.1."""

    def __init__(
        self,
        *,
        service: str,
        users: Mapping[str, str],
        workdir: Path,
        issuer: str = "slimguard-testbed-token-issuer",
        anonymous_prefixes: Sequence[str] = DEFAULT_ANONYMOUS_PREFIXES,
        authenticated_actions: Sequence[str] = ("pull", "push", "delete"),
        ca: CertificateAuthority | None = None,
        realm_host: str = "127.0.0.1",
    ) -> None:
        self.service = service
        # The name clients are sent to; it listens on 127.0.0.1 either way. go-containerregistry (Kyverno)
        # refuses a realm addressed by a loopback IP ("private or link-local address"), not `localhost`.
        self.realm_host = realm_host
        self.issuer = issuer
        self.users = dict(users)
        self.anonymous_prefixes = tuple(anonymous_prefixes)
        self.authenticated_actions = tuple(authenticated_actions)
        self.workdir = workdir
        self._ca = ca
        self._signing = self_signed(f"{issuer} signing key")
        self.signing_cert_file, self._signing_key_file = self._signing.write(workdir, "token-signing")
        self._x5c = [base64.b64encode(self._signing.cert_der).decode()]
        # Parsed once: loading the PEM on every token cost 41 ms of CPU, on the cores the benchmarks measure.
        key = serialization.load_pem_private_key(self._signing.key_pem, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)  # RS256 tokens
        self._signing_key = key
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._requests: list[TokenRequest] = []

    @property
    def url(self) -> str:
        """The realm the registry sends clients to."""
        if self._server is None:
            raise RuntimeError("the token issuer is not running")
        scheme = "https" if self._ca is not None else "http"
        return f"{scheme}://{self.realm_host}:{self._server.server_address[1]}/token"

    @property
    def token_requests(self) -> int:
        """How many token requests were answered so far."""
        with self._lock:
            return len(self._requests)

    @property
    def requests(self) -> list[TokenRequest]:
        with self._lock:
            return list(self._requests)

    def __enter__(self) -> TokenIssuer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> TokenIssuer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        if self._ca is not None:
            cert_file, key_file = self._ca.issue("token-issuer", hosts=("127.0.0.1", "localhost")).write(
                self.workdir, "token-issuer-tls"
            )
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert_file, key_file)
            # Handshake in the request's own thread, not in the accept loop.
            server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="token-issuer", daemon=True)
        self._thread.start()
        return self

    def failure(self) -> str | None:
        """Why the issuer no longer answers (its serving thread ended without ``stop()``), else None."""
        if self._thread is not None and not self._thread.is_alive():
            return f"the token issuer's thread on {self.url} has ended"
        return None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- the decision ---------------------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> tuple[bool, str | None]:
        """(credentials acceptable, user name). No header means anonymous, which is acceptable."""
        if not authorization:
            return True, None
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False, None
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False, None
        stored = self.users.get(user)
        if stored is None or not secrets.compare_digest(stored, password):
            return False, None
        return True, user

    def grant(self, scope: str, user: str | None) -> _Grant | None:
        """What `user` (None: anonymous) may do within one requested scope."""
        parts = scope.split(":")
        if len(parts) < 3:
            return None
        kind, name, requested = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
        if kind == "repository":
            if user is not None:
                allowed: tuple[str, ...] = self.authenticated_actions
            elif name.startswith(self.anonymous_prefixes):
                allowed = ("pull",)
            else:
                allowed = ()
            actions = tuple(a for a in requested if a in allowed or (a == "*" and user is not None))
        elif kind == "registry" and name == "catalog" and user is not None:
            actions = tuple(a for a in requested if a == "*")
        else:
            actions = ()
        return _Grant(kind, name, actions) if actions else None

    def issue(
        self, *, service: str, user: str | None, scopes: Sequence[str], nodelay: bool = False
    ) -> dict[str, object]:
        grants = [g for g in (self.grant(scope, user) for scope in scopes) if g is not None]
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": service,
            "exp": now + _EXPIRES_IN,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": [{"type": g.type, "name": g.name, "actions": list(g.actions)} for g in grants],
        }
        token = jwt.encode(claims, self._signing_key, algorithm="RS256", headers={"x5c": self._x5c})
        self._record(
            TokenRequest(user, tuple(scopes), tuple((g.type, g.name, g.actions) for g in grants), 200, nodelay)
        )
        return {
            "token": token,
            "access_token": token,
            "expires_in": _EXPIRES_IN,
            "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        }

    def _record(self, request: TokenRequest) -> None:
        with self._lock:
            self._requests.append(request)


def _handler_for(issuer: TokenIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # The headers and the body go out in two writes; with Nagle's algorithm the second waits for the
        # client's (delayed, ~40 ms) ACK of the first. Real issuers answer at once.
        disable_nagle_algorithm = True

        def _nodelay(self) -> bool:
            return bool(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/token":
                self._send(404, {"errors": [{"code": "NOT_FOUND", "message": "not found"}]})
                return
            query = parse_qs(url.query)
            service = query.get("service", [issuer.service])[0]
            scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
            ok, user = issuer.authenticate(self.headers.get("Authorization"))
            if not ok:
                # Like real issuers: bad credentials are an error, not an anonymous token (docker login relies on it).
                issuer._record(TokenRequest(None, tuple(scopes), (), 401, self._nodelay()))
                self._send(
                    401,
                    {"errors": [{"code": "UNAUTHORIZED", "message": "invalid credentials"}]},
                    headers={"WWW-Authenticate": 'Basic realm="slimguard-testbed"'},
                )
                return
            self._send(200, issuer.issue(service=service, user=user, scopes=scopes, nodelay=self._nodelay()))

        def _send(self, status: int, body: object, headers: Mapping[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the issuer records its requests in `issuer.requests`

    return Handler


__all__ = ["DEFAULT_ANONYMOUS_PREFIXES", "TokenIssuer", "TokenRequest"]
