"""The test bed's own registry client, for pushing fixtures and reading them back.

It deliberately shares no code with slimguard.registry (the reader under test), so fixtures are published and
checked by a second, independent implementation of the distribution API and its auth flows.
"""

from __future__ import annotations

import base64
import re
import ssl
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import httpx

from slimguard_testbed.oci.artifacts import Artifact, Index
from slimguard_testbed.oci.blobs import (
    _COPY_CHUNK,
    ACCEPT_MANIFESTS,
    UPLOAD_CHUNK,
    Blob,
    EndpointLike,
    RegistryError,
    sha256_digest,
)

# -- the registry client -------------------------------------------------------------------------------

_CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]*))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="https://..",service="..",scope="a b"` -> ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m[1].lower(): m[2] if m[2] is not None else m[3] for m in _CHALLENGE_PARAM.finditer(rest)}
    return scheme.lower(), params


def _once(data: bytes) -> Iterator[bytes]:
    yield data


def _repo_scope(repo: str, actions: str) -> str:
    return f"repository:{repo}:{actions}"


@dataclass
class _Token:
    value: str
    expires: float


class IndependentRegistryClient:
    """An HTTP client for one registry's /v2/ API that answers its auth challenges.

    Keeps one keep-alive connection, one token per scope set and what it has pushed where (to mount blobs
    across repositories instead of uploading them again). Use it as a context manager, or `close()` it.
    """

    def __init__(
        self, endpoint: EndpointLike, *, timeout: float = 120.0, user_agent: str = "slimguard-testbed"
    ) -> None:
        self.endpoint = endpoint
        scheme = "https" if endpoint.ca_file else "http"
        self.base_url = f"{scheme}://{endpoint.host}"
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(endpoint.ca_file)) if endpoint.ca_file else False
        )
        self._http = httpx.Client(verify=verify, timeout=timeout, headers={"User-Agent": user_agent})
        self._basic = False
        self._bearer: dict[str, str] | None = None  # realm and service, once the registry has named them
        self._tokens: dict[frozenset[str], _Token] = {}
        self._holders: dict[str, set[str]] = {}  # blob digest -> repositories known to hold it

    def __enter__(self) -> IndependentRegistryClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # auth

    def _credentials(self) -> tuple[str, str] | None:
        if self.endpoint.username is None:
            return None
        return self.endpoint.username, self.endpoint.password or ""

    def _authorization(self, scopes: frozenset[str]) -> str | None:
        if self._basic:
            credentials = self._credentials()
            if credentials is None:
                return None
            return "Basic " + base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
        if self._bearer is None:
            return None
        token = self._tokens.get(scopes)
        if token is None or token.expires <= time.monotonic():
            token = self._fetch_token(scopes)
        return f"Bearer {token.value}"

    def _fetch_token(self, scopes: frozenset[str]) -> _Token:
        assert self._bearer is not None
        params: list[tuple[str, str | int | float | bool | None]] = [("service", self._bearer.get("service", ""))]
        params += [("scope", scope) for scope in sorted(scopes)]
        credentials = self._credentials()
        if credentials:
            params.append(("account", credentials[0]))
        response = self._http.get(
            self._bearer["realm"], params=params, auth=httpx.BasicAuth(*credentials) if credentials else None
        )
        if response.status_code != 200:
            raise RegistryError(
                f"token request to {self._bearer['realm']} failed: {response.status_code} {response.text[:300]}"
            )
        body = response.json()
        value = body.get("token") or body.get("access_token")
        if not value:
            raise RegistryError(f"token response from {self._bearer['realm']} has no token")
        # Renew a little early: a token that expires mid-upload fails the upload.
        token = _Token(value, time.monotonic() + max(int(body.get("expires_in", 60)) - 15, 5))
        self._tokens[scopes] = token
        return token

    def request(
        self,
        method: str,
        url: str,
        *,
        scopes: Iterable[str],
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """Send a request with the credentials `scopes` need, answering one 401 challenge if one comes.

        `url` is a path ("/v2/...") or a full URL (an upload Location). Bodies are bytes so a request can
        be sent twice.
        """
        wanted = frozenset(scopes)
        full_url = url if "://" in url else self.base_url + url
        for attempt in (1, 2):
            request_headers = dict(headers or {})
            authorization = self._authorization(wanted)
            if authorization:
                request_headers["Authorization"] = authorization
            body: Iterator[bytes] | None = None
            if content is not None:
                # A one-shot generator, not the bytes: httpx keeps a sent request alive in a reference cycle
                # with its response until the cyclic GC runs, and 16 MB upload chunks would pile up meanwhile.
                # With Content-Length set, httpx sends it as a plain (not chunked) body.
                request_headers["Content-Length"] = str(len(content))
                body = _once(content)
            request = self._http.build_request(method, full_url, headers=request_headers, content=body, params=params)
            response = self._http.send(request, stream=stream)
            if response.status_code != 401 or attempt == 2:
                return response
            challenge = response.headers.get("WWW-Authenticate", "")
            response.close()
            scheme, values = parse_challenge(challenge)
            if scheme == "basic":
                if self._credentials() is None:
                    raise RegistryError(f"{self.endpoint.host} wants Basic credentials and none were given")
                self._basic = True
            elif scheme == "bearer" and "realm" in values:
                self._bearer = {"realm": values["realm"], "service": values.get("service", "")}
                # The challenge's scopes, plus ours: a push token must also allow pull.
                wanted = wanted | frozenset(values.get("scope", "").split())
                self._tokens.pop(wanted, None)
            else:
                raise RegistryError(f"{method} {full_url}: 401 with an unusable challenge {challenge!r}")
        raise AssertionError("unreachable")

    def _check(self, response: httpx.Response, *expected: int) -> httpx.Response:
        if response.status_code not in expected:
            body = response.read()[:500].decode(errors="replace")
            raise RegistryError(f"{response.request.method} {response.request.url}: {response.status_code} {body}")
        return response

    # reading

    def manifest(self, repo: str, reference: str) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of a manifest or index, by tag or digest."""
        response = self._check(
            self.request(
                "GET",
                f"/v2/{repo}/manifests/{reference}",
                scopes=[_repo_scope(repo, "pull")],
                headers={"Accept": ACCEPT_MANIFESTS},
            ),
            200,
        )
        body = response.content
        return body, response.headers.get("Content-Type", ""), sha256_digest(body)

    def manifest_digest(self, repo: str, reference: str) -> str | None:
        """The digest a tag points at (HEAD), or None if there is no such manifest."""
        response = self.request(
            "HEAD",
            f"/v2/{repo}/manifests/{reference}",
            scopes=[_repo_scope(repo, "pull")],
            headers={"Accept": ACCEPT_MANIFESTS},
        )
        if response.status_code == 404:
            return None
        self._check(response, 200)
        digest = response.headers.get("Docker-Content-Digest")
        return str(digest) if digest is not None else None

    def blob(self, repo: str, digest: str) -> bytes:
        return self._check(
            self.request("GET", f"/v2/{repo}/blobs/{digest}", scopes=[_repo_scope(repo, "pull")]), 200
        ).content

    def iter_blob(self, repo: str, digest: str, *, chunk_size: int = _COPY_CHUNK) -> Iterator[bytes]:
        """A blob's bytes in chunks, streamed (a fat layer is hundreds of MB)."""
        response = self.request("GET", f"/v2/{repo}/blobs/{digest}", scopes=[_repo_scope(repo, "pull")], stream=True)
        try:
            if response.status_code in (301, 302, 307):  # storage drivers that redirect to a blob URL
                location = response.headers["Location"]
                response.close()
                response = self._http.send(self._http.build_request("GET", location), stream=True)
            self._check(response, 200)
            yield from response.iter_bytes(chunk_size)
        finally:
            response.close()

    def has_blob(self, repo: str, digest: str) -> bool:
        response = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scopes=[_repo_scope(repo, "pull")])
        if response.status_code == 404:
            return False
        self._check(response, 200)
        return True

    # pushing

    def push(
        self, repo: str, tag: str | None, artifact: Artifact, *, mount_from: Sequence[str] = (), check_tag: bool = True
    ) -> str:
        """Upload `artifact`'s blobs and manifests to `repo`, tag it, and return its manifest digest.

        A tag already pointing at this digest means everything is there: one HEAD and done (`check_tag`
        False saves that HEAD for images that are new anyway).
        """
        if check_tag and tag is not None and self.manifest_digest(repo, tag) == artifact.digest:
            return artifact.digest
        images = artifact.images if isinstance(artifact, Index) else (artifact,)
        for image in images:
            for blob in image.blobs():
                self.ensure_blob(repo, blob, mount_from=mount_from)
            if isinstance(artifact, Index):
                self.put_manifest(repo, image.digest, image.manifest, image.media_type)
        return self.put_manifest(repo, tag or artifact.digest, artifact.manifest, artifact.media_type)

    def put_manifest(self, repo: str, reference: str, manifest: Blob, media_type: str) -> str:
        response = self._check(
            self.request(
                "PUT",
                f"/v2/{repo}/manifests/{reference}",
                scopes=[_repo_scope(repo, "pull,push")],
                headers={"Content-Type": media_type},
                content=manifest.read(),
            ),
            201,
        )
        digest = str(response.headers.get("Docker-Content-Digest", manifest.digest))
        if digest != manifest.digest:
            raise RegistryError(f"registry stored manifest {reference} of {repo} as {digest}, not {manifest.digest}")
        return digest

    def ensure_blob(self, repo: str, blob: Blob, *, mount_from: Sequence[str] = ()) -> None:
        """Make `repo` hold `blob`: skip it if it is there, mount it from a repository that has it, or upload."""
        holders = self._holders.setdefault(blob.digest, set())
        if repo in holders:
            return
        if self.has_blob(repo, blob.digest):
            holders.add(repo)
            return
        push_scope = _repo_scope(repo, "pull,push")
        location: str | None = None
        for source in (*mount_from, *sorted(holders)):
            if source == repo:
                continue
            response = self.request(
                "POST",
                f"/v2/{repo}/blobs/uploads/",
                params={"mount": blob.digest, "from": source},
                scopes=[push_scope, _repo_scope(source, "pull")],
            )
            if response.status_code == 201:
                holders.add(repo)
                return
            if response.status_code == 202:  # not mountable (not there, or no pull access): upload into this
                location = response.headers["Location"]
                break
        if location is None:
            response = self._check(self.request("POST", f"/v2/{repo}/blobs/uploads/", scopes=[push_scope]), 202)
            location = response.headers["Location"]
        self._upload(location, blob, push_scope)
        holders.add(repo)

    def _upload(self, location: str, blob: Blob, scope: str) -> None:
        octets = {"Content-Type": "application/octet-stream"}
        if blob.size <= UPLOAD_CHUNK:
            # Monolithic: the whole blob in the closing PUT.
            url = self._with_digest(location, blob.digest)
            self._check(self.request("PUT", url, scopes=[scope], headers=octets, content=blob.read()), 201)
            return
        # Chunked: PATCH it from the file a chunk at a time, so a 300 MB layer is never all in memory.
        offset = 0
        with blob.open() as source:
            while chunk := source.read(UPLOAD_CHUNK):
                headers = {**octets, "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
                response = self._check(
                    self.request("PATCH", location, scopes=[scope], headers=headers, content=chunk), 202
                )
                location = response.headers["Location"]
                offset += len(chunk)
        if offset != blob.size:
            raise RegistryError(f"blob {blob.digest} is {offset} bytes on disk, expected {blob.size}")
        self._check(self.request("PUT", self._with_digest(location, blob.digest), scopes=[scope]), 201)

    def _with_digest(self, location: str, digest: str) -> str:
        url = httpx.URL(location if "://" in location else self.base_url + location)
        return str(url.copy_merge_params({"digest": digest}))


def push(
    endpoint: EndpointLike,
    repo: str,
    tag: str | None,
    artifact: Artifact,
    *,
    client: IndependentRegistryClient | None = None,
    mount_from: Sequence[str] = (),
) -> str:
    """Push `artifact` to `endpoint`'s `repo` under `tag`; returns the manifest digest."""
    if client is not None:
        return client.push(repo, tag, artifact, mount_from=mount_from)
    with IndependentRegistryClient(endpoint) as own:
        return own.push(repo, tag, artifact, mount_from=mount_from)
