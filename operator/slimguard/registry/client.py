"""A small OCI distribution client: tokens, retries, size caps and digest checks, over one pooled client."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import json
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any, TypeVar
from urllib.parse import urlencode, urljoin, urlsplit

import httpcore
import httpx

from slimguard import metrics
from slimguard.core.errors import InspectionError, InspectionReason
from slimguard.core.facts.media_types import MANIFEST_TYPES
from slimguard.core.model.reference import DOCKER_HUB, ImageReference
from slimguard.registry.credentials import Credential
from slimguard.registry.guard import GuardedNetworkBackend, RefusedAddress
from slimguard.registry.proxy import proxy_mounts
from slimguard.registry.settings import RegistrySettings
from slimguard.registry.trust import registry_tls_context

_MAX_REDIRECTS = 5
T = TypeVar("T")
BlobSink = Callable[[AsyncIterator[bytes]], Awaitable[Any]]
"""Consumes a blob's body as it arrives (a layer walker); its result is what ``stream_blob`` returns."""
_CHALLENGE_RE = re.compile(r'(\w+)="([^"]*)"')


def _certificate_error(error: BaseException) -> ssl.SSLCertVerificationError | None:
    """The TLS verification failure behind an httpx error (httpx wraps httpcore's, which wraps ssl's), if any."""
    seen: BaseException | None = error
    for _ in range(8):
        if seen is None or isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


@dataclass(frozen=True)
class ManifestHead:
    digest: str
    media_type: str


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    body: bytes


@dataclass(frozen=True)
class _Reply:
    """A finished response: status, headers, and the body read under its size cap."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    consumed: Any = None
    """What a sink made of a streamed body (``stream_blob``); the body itself was never held."""

    def json(self) -> Any:
        return json.loads(self.content)


@dataclass
class _Token:
    value: str
    expires_at: float


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport with the connection pool's network backend replaced by the guard."""

    def __init__(self, *, verify: ssl.SSLContext, backend: httpcore.AsyncNetworkBackend, limits: httpx.Limits):
        super().__init__(verify=verify, trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=verify,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


def api_host(registry: str) -> str:
    """Docker Hub's API lives on another host than its name."""
    return "registry-1.docker.io" if registry == DOCKER_HUB else registry


def _sha256(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def verify_digest(body: bytes, digest: str, what: str) -> None:
    algorithm, _, expected = digest.partition(":")
    if algorithm not in ("sha256", "sha512"):
        raise InspectionError(
            f"{what} uses unsupported digest algorithm {algorithm}", reason=InspectionReason.UNSUPPORTED_DIGEST
        )
    actual = hashlib.new(algorithm, body).hexdigest()
    if actual != expected:
        raise InspectionError(
            f"{what} does not match its digest {digest} (got {algorithm}:{actual}); the registry served other content",
            reason=InspectionReason.DIGEST_MISMATCH,
        )


class RegistryClient:
    """Reads from registries for many images at once, sharing one connection pool.

    Retries 429 and 5xx with backoff (honouring ``Retry-After``), caps response sizes, verifies digests,
    caches bearer tokens per repository scope and credential until they expire, and never lets a
    credential leave the registry it belongs to (redirects to blob storage go without it).
    """

    def __init__(
        self,
        settings: RegistrySettings,
        *,
        backend: httpcore.AsyncNetworkBackend | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._sleep = sleep
        verify = registry_tls_context(settings.ca_files)
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=50, keepalive_expiry=30)
        transport = _GuardedTransport(
            verify=verify, backend=backend or GuardedNetworkBackend(settings.address_policy), limits=limits
        )
        self._http = httpx.AsyncClient(
            transport=transport,
            # Requests a proxy carries take its route (the guard's check of the target host first); NO_PROXY hosts
            # and every request when no proxy is set take the guarded transport above. Nothing from the environment:
            # the entry points read it once, into settings.proxy.
            mounts=proxy_mounts(
                settings.proxy, policy=settings.address_policy, direct=transport, verify=verify, limits=limits
            ),
            timeout=httpx.Timeout(settings.timeout_seconds),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": "slimguard/0.1"},
        )
        self._tokens: dict[tuple[str, str, str], _Token] = {}
        self._schemes: dict[str, str] = {}
        # registry → the realm and service of its bearer challenge, as last seen: a token for another repository
        # is asked for before that repository's first request instead of after its 401 (Docker's client does so).
        self._challenges: dict[str, dict[str, str]] = {}
        self._limits: dict[str, asyncio.Semaphore] = {}
        self.requests_sent = 0

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- public operations -------------------------------------------------------------------------------

    async def head_manifest(self, reference: ImageReference, credential: Credential | None) -> ManifestHead | None:
        """Resolve a tag with HEAD (free of pull-rate limits on public registries); None if no digest given."""
        response = await self._request(
            "HEAD",
            reference,
            f"manifests/{reference.identifier}",
            credential,
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
            max_bytes=0,
        )
        digest = response.headers.get("Docker-Content-Digest")
        if not digest:
            return None
        return ManifestHead(digest=digest, media_type=response.headers.get("Content-Type", "").split(";")[0])

    async def get_manifest(self, reference: ImageReference, identifier: str, credential: Credential | None) -> Manifest:
        response = await self._request(
            "GET",
            reference,
            f"manifests/{identifier}",
            credential,
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
            max_bytes=self.settings.max_manifest_bytes,
        )
        body = response.content
        if identifier.startswith("sha"):
            verify_digest(body, identifier, f"manifest of {reference.name}")
            digest = identifier
        else:
            digest = response.headers.get("Docker-Content-Digest") or _sha256(body)
            verify_digest(body, digest, f"manifest of {reference.name}:{identifier}")
        return Manifest(digest=digest, media_type=response.headers.get("Content-Type", "").split(";")[0], body=body)

    async def get_blob(
        self, reference: ImageReference, digest: str, credential: Credential | None, *, max_bytes: int
    ) -> bytes:
        response = await self._request("GET", reference, f"blobs/{digest}", credential, max_bytes=max_bytes)
        verify_digest(response.content, digest, f"blob {digest} of {reference.name}")
        return response.content

    async def get_blob_range(
        self, reference: ImageReference, digest: str, credential: Credential | None, *, start: int, end: int
    ) -> bytes:
        """Bytes ``start..end`` (inclusive) of a blob: a gzip trailer or a zstd frame header, not the layer."""
        response = await self._request(
            "GET",
            reference,
            f"blobs/{digest}",
            credential,
            headers={"Range": f"bytes={start}-{end}"},
            max_bytes=end - start + 1,
            accept_partial=True,
        )
        if response.status_code != 206:
            raise InspectionError(
                f"registry {reference.registry} ignored a range request for {digest}",
                reason=InspectionReason.RANGE_UNSUPPORTED,
            )
        return response.content

    async def get_tags_page(
        self, reference: ImageReference, credential: Credential | None, *, query: str, max_bytes: int
    ) -> tuple[bytes, str]:
        """One page of ``/v2/<name>/tags/list?<query>``: the body and the ``Link`` header (empty when none)."""
        response = await self._request("GET", reference, f"tags/list?{query}", credential, max_bytes=max_bytes)
        return response.content, response.headers.get("Link", "")

    async def stream_blob(
        self,
        reference: ImageReference,
        digest: str,
        credential: Credential | None,
        *,
        max_bytes: int,
        sink: Callable[[AsyncIterator[bytes]], Awaitable[T]],
    ) -> T:
        """A whole blob (a layer), handed to ``sink`` chunk by chunk as it arrives, never held in memory.

        The same guarded transport, authentication, retries and redirects as every request; ``max_bytes`` (the
        size the manifest declares) caps the body. The sink verifies the digest: only it sees every byte.
        """
        response = await self._request("GET", reference, f"blobs/{digest}", credential, max_bytes=max_bytes, sink=sink)
        return response.consumed  # type: ignore[no-any-return]

    # --- the request loop ----------------------------------------------------------------------------------

    def _base_url(self, reference: ImageReference) -> str:
        scheme = "http" if reference.registry in self.settings.plain_http_registries else "https"
        return f"{scheme}://{api_host(reference.registry)}/v2/{reference.repository}/"

    def _limit(self, registry: str) -> asyncio.Semaphore:
        if registry not in self._limits:
            self._limits[registry] = asyncio.Semaphore(self.settings.concurrency_per_registry)
        return self._limits[registry]

    async def _request(
        self,
        method: str,
        reference: ImageReference,
        path: str,
        credential: Credential | None,
        *,
        headers: dict[str, str] | None = None,
        max_bytes: int,
        accept_partial: bool = False,
        sink: BlobSink | None = None,
    ) -> _Reply:
        self.settings.address_policy.check_registry(reference.registry)
        url = urljoin(self._base_url(reference), path)
        scope = f"repository:{reference.repository}:pull"
        attempt = 0
        authorised_retry = False
        async with self._limit(reference.registry):
            challenge = self._challenges.get(reference.registry)
            if challenge and self._authorization(reference.registry, scope, credential) is None:
                # Refused or failed, it leaves the registry's own 401 to answer as usual below.
                await self._fetch_token(challenge, scope, reference, credential)
            while True:
                request_headers = dict(headers or {})
                authorization = self._authorization(reference.registry, scope, credential)
                if authorization:
                    request_headers["Authorization"] = authorization
                response = await self._send(method, url, request_headers, reference, max_bytes, sink)
                status = response.status_code
                if status == 401 and not authorised_retry:
                    authorised_retry = True
                    if await self._authenticate(response, reference, scope, credential):
                        continue
                if (status == 429 or status >= 500) and attempt < self.settings.retries:
                    attempt += 1
                    await self._sleep(self._retry_delay(response, attempt))
                    continue
                if status == 200 or (accept_partial and status == 206):
                    return response
                raise self._error(status, method, reference, path, credential)

    async def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        reference: ImageReference,
        max_bytes: int,
        sink: BlobSink | None = None,
    ) -> _Reply:
        origin = urlsplit(url).netloc
        for _ in range(_MAX_REDIRECTS + 1):
            try:
                self.requests_sent += 1
                request = self._http.build_request(method, url, headers=headers)
                response = await self._http.send(request, stream=True)
            except RefusedAddress:
                metrics.registry_response(reference.registry, None, refused=True)
                raise
            except httpx.TimeoutException as error:
                metrics.registry_response(reference.registry, None)
                raise InspectionError(
                    f"registry {reference.registry} did not answer within {self.settings.timeout_seconds:g}s",
                    reason=InspectionReason.REGISTRY_TIMEOUT,
                ) from error
            except httpx.HTTPError as error:
                metrics.registry_response(reference.registry, None)
                if (untrusted := _certificate_error(error)) is not None:
                    raise InspectionError(
                        f"registry {reference.registry} presents a certificate slimguard does not trust "
                        f"(certificate verify failed: {untrusted.verify_message}); give slimguard the CA that "
                        "signed it with --ca-file (Helm: registries.caBundle)",
                        reason=InspectionReason.REGISTRY_UNTRUSTED,
                    ) from error
                raise InspectionError(
                    f"registry {reference.registry} is unreachable: {error}",
                    reason=InspectionReason.REGISTRY_UNREACHABLE,
                ) from error
            metrics.registry_response(reference.registry, response.status_code)
            try:
                if response.status_code in (301, 302, 303, 307, 308) and "Location" in response.headers:
                    url = urljoin(url, response.headers["Location"])
                    if urlsplit(url).netloc != origin:
                        # Blob storage behind a redirect gets no registry credential.
                        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
                    continue
                if sink is not None and response.status_code == 200:
                    self._check_declared(response, max_bytes, reference)
                    consumed = await sink(self._capped_chunks(response, max_bytes, reference))
                    return _Reply(response.status_code, response.headers, b"", consumed)
                body = await self._read_capped(response, max_bytes, reference)
                return _Reply(response.status_code, response.headers, body)
            finally:
                await response.aclose()
        raise InspectionError(
            f"registry {reference.registry} redirected too many times", reason=InspectionReason.TOO_MANY_REDIRECTS
        )

    async def _read_capped(self, response: httpx.Response, max_bytes: int, reference: ImageReference) -> bytes:
        if response.request.method == "HEAD" or response.status_code not in (200, 206):
            return b""
        self._check_declared(response, max_bytes, reference)
        chunks = [chunk async for chunk in self._capped_chunks(response, max_bytes, reference)]
        return b"".join(chunks)

    @staticmethod
    def _check_declared(response: httpx.Response, max_bytes: int, reference: ImageReference) -> None:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise InspectionError(
                f"registry {reference.registry} sent {declared} bytes where at most {max_bytes} are expected",
                reason=InspectionReason.RESPONSE_TOO_LARGE,
            )

    async def _capped_chunks(
        self, response: httpx.Response, max_bytes: int, reference: ImageReference
    ) -> AsyncIterator[bytes]:
        """The body as it arrives, refused past ``max_bytes``, with httpx's errors said as InspectionErrors."""
        received = 0
        try:
            async for chunk in response.aiter_bytes():
                received += len(chunk)
                if received > max_bytes:
                    raise InspectionError(
                        f"registry {reference.registry} sent more than the {max_bytes} bytes expected",
                        reason=InspectionReason.RESPONSE_TOO_LARGE,
                    )
                yield chunk
        # The body is read after send()'s error mapping: a body cut short or stalled escaped as a raw httpx
        # error, which evaluation does not catch, so the webhook admitted unchecked (tests/e2e/test_faults.py).
        except httpx.TimeoutException as error:
            raise InspectionError(
                f"registry {reference.registry} stalled mid-response for over {self.settings.timeout_seconds:g}s",
                reason=InspectionReason.REGISTRY_TIMEOUT,
            ) from error
        except httpx.HTTPError as error:
            raise InspectionError(
                f"registry {reference.registry} broke off the response after {received} bytes: {error}",
                reason=InspectionReason.TRUNCATED_RESPONSE,
            ) from error

    def _retry_delay(self, response: _Reply, attempt: int) -> float:
        """Seconds to wait before the next attempt: the registry's Retry-After (capped), else exponential backoff.

        The header is the registry's to choose; a value that is neither seconds nor an HTTP date ("1.5",
        "soon", a superscript digit) is ignored, where it once raised ValueError out of the client
        (tests/unit/fuzz/test_fuzz_retry_after.py).
        """
        cap = self.settings.max_retry_after_seconds
        retry_after = response.headers.get("Retry-After", "").strip()
        if retry_after.isascii() and retry_after.isdigit():
            return min(float(retry_after), cap)
        if retry_after:
            try:
                when = email.utils.parsedate_to_datetime(retry_after)
            except (ValueError, TypeError, IndexError, OverflowError):
                when = None
            if when is not None:
                when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)  # HTTP dates are GMT
                return max(0.0, min(when.timestamp() - time.time(), cap))
        return float(self.settings.backoff_seconds * (2 ** (attempt - 1)))

    def _error(
        self, status: int, method: str, reference: ImageReference, path: str, credential: Credential | None
    ) -> InspectionError:
        what = f"{reference.name} ({path.split('/')[0].rstrip('s')} {path.split('/', 1)[1]})"
        if status in (401, 403):
            how = f"with {credential.describe()}" if credential else "without credentials"
            fix = (
                f"check that the identity slimguard's Pods run {credential.source} with may read it"
                if credential is not None and credential.source
                else "add an imagePullSecret for it to the workload or its ServiceAccount"
            )
            return InspectionError(
                f"registry {reference.registry} refused access to {reference.name} {how} (HTTP {status}); {fix}",
                reason=InspectionReason.REGISTRY_UNAUTHORIZED,
            )
        if status == 407:  # a plain-HTTP request forwarded by a proxy (HTTPS through one fails at CONNECT instead)
            return InspectionError(
                f"the proxy to registry {reference.registry} asks for credentials (HTTP 407); put its user and "
                "password in the proxy URL (--http-proxy http://USER:PASSWORD@HOST:PORT)",
                reason=InspectionReason.REGISTRY_UNREACHABLE,
            )
        if status == 404:
            return InspectionError(
                f"registry {reference.registry} has no {what}", reason=InspectionReason.IMAGE_NOT_FOUND
            )
        if status == 429:
            return InspectionError(
                f"registry {reference.registry} is rate limiting slimguard (HTTP 429)",
                reason=InspectionReason.REGISTRY_RATE_LIMITED,
            )
        return InspectionError(
            f"registry {reference.registry} answered {method} {what} with HTTP {status}",
            reason=InspectionReason.REGISTRY_ERROR,
        )

    # --- authentication ------------------------------------------------------------------------------------

    @staticmethod
    def _identity(credential: Credential | None) -> str:
        return credential.username if credential else ""

    def _authorization(self, registry: str, scope: str, credential: Credential | None) -> str | None:
        scheme = self._schemes.get(registry)
        if scheme == "basic" and credential:
            raw = f"{credential.username}:{credential.password}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        token = self._tokens.get((registry, scope, self._identity(credential)))
        if token and token.expires_at > self._clock():
            return f"Bearer {token.value}"
        return None

    async def _authenticate(
        self, response: _Reply, reference: ImageReference, scope: str, credential: Credential | None
    ) -> bool:
        header = response.headers.get("WWW-Authenticate", "")
        kind, _, params_text = header.partition(" ")
        params = dict(_CHALLENGE_RE.findall(params_text))
        if kind.lower() == "basic":
            self._schemes[reference.registry] = "basic"
            self._challenges.pop(reference.registry, None)
            return credential is not None
        if kind.lower() != "bearer" or "realm" not in params:
            return False
        self._schemes[reference.registry] = "bearer"
        challenge = {name: params[name] for name in ("realm", "service") if name in params}
        if urlsplit(challenge["realm"]).scheme not in ("https", "http"):
            return False
        self._challenges[reference.registry] = challenge
        return await self._fetch_token(challenge, params.get("scope", scope), reference, credential)

    async def _fetch_token(
        self, challenge: dict[str, str], scope: str, reference: ImageReference, credential: Credential | None
    ) -> bool:
        """A bearer token for ``scope`` from the token service the registry's challenge names; False if refused."""
        realm = challenge["realm"]
        realm_parts = urlsplit(realm)
        query = {"scope": scope}
        if "service" in challenge:
            query["service"] = challenge["service"]
        token_headers: dict[str, str] = {}
        # The credential goes to the token service the registry names, over TLS (or to the registry's own host).
        if credential and (realm_parts.scheme == "https" or realm_parts.hostname == reference.host):
            raw = f"{credential.username}:{credential.password}".encode()
            token_headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        separator = "&" if realm_parts.query else "?"
        token_url = f"{realm}{separator}{urlencode(query)}"
        token_response = await self._send("GET", token_url, token_headers, reference, 1024 * 1024)
        if token_response.status_code != 200:
            return False
        try:
            document = token_response.json()
            value = str(document.get("token") or document.get("access_token") or "")
            expires_in = float(document.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):  # TypeError: "expires_in": [1] (tests/e2e/test_faults.py)
            return False
        if not value:
            return False
        self._tokens[(reference.registry, scope, self._identity(credential))] = _Token(
            value=value, expires_at=self._clock() + max(expires_in - 10, 1)
        )
        return True
