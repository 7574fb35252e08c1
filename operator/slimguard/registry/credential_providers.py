"""The kubelet's exec credential providers (KEP-2133), run as the kubelet v1.36 runs them
(k8s.io/kubernetes ``pkg/credentialprovider/plugin/plugin.go``), so slimguard reads a private image in ECR,
Artifact Registry or ACR with the credentials the node pulls it with.

For an image (``registry/repository``), every provider whose ``matchImages`` match it is asked, in the
configuration's order: its binary (``BIN_DIR/NAME``) is started with the configuration's ``args``, the process's
environment with the configuration's ``env`` over it, and a ``CredentialProviderRequest`` of the provider's
``apiVersion`` on stdin; it answers a ``CredentialProviderResponse`` of the same ``apiVersion`` on stdout, within a
minute. Its ``auth`` entries go into one keyring with the other providers' (``keyring.keyring_lookup``): an entry
serves the image only if its key matches the image, so a credential is never sent to a host its key does not name.

An answer is kept for its ``cacheDuration`` (else the provider's ``defaultCacheDuration``; 0: not kept) under the
key its ``cacheKeyType`` says: the image, its registry (``host[:port]``) or one key for every image; a lookup tries
the image's, then its registry's, then the global one, as the kubelet does. Concurrent lookups of one image share
one run (the kubelet's singleflight); a run a caller gave up on (an admission deadline) carries on for the next.

A provider that cannot answer (binary missing or not executable, a non-zero exit, no answer within the minute, an
answer that is not a ``CredentialProviderResponse``, of another ``apiVersion``, or with an invalid
``cacheKeyType``) gives no credentials, as in the kubelet, and a ``ProviderFailure`` naming it and what went wrong;
the image is then read with what else it has, and when that is refused, the finding names the provider
(``engine/kubelet_keyring.py``). Unlike the kubelet, a failure is remembered for ``failure_ttl`` seconds (the
registry failure cache's 15 s) so that a broken provider is not run again for every admission.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from slimguard.registry.cache import Coalescer, LruCache, TtlCache
from slimguard.registry.credentials import Credential
from slimguard.registry.keyring import AuthEntry, keyring_lookup, provider_matches
from slimguard.registry.provider_config import (
    CredentialProviderSettings,
    ProviderSpec,
    parse_go_duration,
)
from slimguard.tasks import BackgroundTasks

log = logging.getLogger(__name__)

EXEC_TIMEOUT_SECONDS = 60.0
"""The kubelet's catch-all timeout for every exec provider (not configurable there either)."""
MAX_ANSWER_BYTES = 1 << 20
"""More than this on stdout is not an answer (an ECR token answer is ~3 KB)."""
_STDERR_KEPT = 2000
GLOBAL_CACHE_KEY = "<global>"
CACHE_KEY_TYPES = ("Image", "Registry", "Global")


@dataclass(frozen=True)
class ProviderFailure:
    """Why one provider gave no credentials for one image; ``message`` is a sentence naming the provider."""

    provider: str
    message: str


@dataclass(frozen=True)
class ProvidedCredentials:
    """What the providers give an image: credentials in the kubelet's order, and the providers that failed."""

    credentials: tuple[Credential, ...] = ()
    failures: tuple[ProviderFailure, ...] = ()


NOTHING_PROVIDED = ProvidedCredentials()


class _Failed(Exception):
    """A run that gave no usable answer; the message completes "credential provider NAME ..."."""


class _AuthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    username: str = ""
    password: str = ""


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    api_version: str = Field(alias="apiVersion")
    kind: str
    cache_key_type: str = Field("", alias="cacheKeyType")
    cache_duration: str | None = Field(None, alias="cacheDuration")
    auth: dict[str, _AuthConfig] | None = None


@dataclass(frozen=True)
class _Answer:
    """One provider's answer, as kept: its auth entries until ``expires_at`` (on the providers' clock)."""

    entries: tuple[AuthEntry, ...]
    expires_at: float


def registry_of(image: str) -> str:
    """The kubelet's ``parseRegistry``: everything before the first ``/``."""
    return image.split("/", 1)[0]


class _Provider:
    """One configured provider: its runs, its answers kept by cache key, its recent failures."""

    def __init__(
        self,
        spec: ProviderSpec,
        binary: str,
        *,
        clock: Callable[[], float],
        timeout: float,
        failure_ttl: float,
        tasks: BackgroundTasks,
        environ: Mapping[str, str],
    ) -> None:
        self.spec = spec
        self.binary = binary
        self.clock = clock
        self.timeout = timeout
        self.environ = environ
        self.runs = 0
        """How many times its binary was started (what a cache saves)."""
        self._answers: LruCache[str, _Answer] = LruCache(4096)
        self._failures: TtlCache[str, ProviderFailure] = TtlCache(failure_ttl, clock, capacity=4096)
        self._running: Coalescer[str, _Answer | ProviderFailure] = Coalescer(tasks)

    def cached(self, image: str) -> tuple[AuthEntry, ...] | ProviderFailure | None:
        """Its kept answer for ``image`` (by image, then registry, then the global key), a recent failure, or None."""
        now = self.clock()
        for key in (image, registry_of(image), GLOBAL_CACHE_KEY):
            answer = self._answers.get(key)
            if answer is not None and now <= answer.expires_at:
                return answer.entries
        return self._failures.get(image)

    async def provide(self, image: str) -> tuple[AuthEntry, ...] | ProviderFailure:
        known = self.cached(image)
        if known is not None:
            return known
        answered = await self._running.run(image, lambda: self._run(image))
        return answered.entries if isinstance(answered, _Answer) else answered

    async def _run(self, image: str) -> _Answer | ProviderFailure:
        if self.spec.service_account_token_audience is not None:
            return self._failed(
                image,
                "asks for a service-account token bound to the Pod (tokenAttributes, audience "
                f"{self.spec.service_account_token_audience!r}), which slimguard does not request: it is not run",
            )
        try:
            response = await self._exec(image)
        except _Failed as failure:
            return self._failed(image, str(failure))
        key = {"Image": image, "Registry": registry_of(image), "Global": GLOBAL_CACHE_KEY}[response.cache_key_type]
        entries = tuple(
            AuthEntry(pattern, auth.username, auth.password) for pattern, auth in (response.auth or {}).items()
        )
        seconds = (
            self.spec.default_cache_seconds
            if response.cache_duration is None
            else parse_go_duration(response.cache_duration)
        )
        answer = _Answer(entries, self.clock() + seconds)
        if seconds > 0:  # 0 (or less): used for this lookup only, as the kubelet does
            self._answers.put(key, answer)
        log.debug(
            "credential provider %s answered for %s: %d auth entries, cache key %s for %gs",
            self.spec.name, image, len(entries), response.cache_key_type, seconds,
        )  # fmt: skip
        return answer

    def _failed(self, image: str, what: str) -> ProviderFailure:
        failure = ProviderFailure(self.spec.name, f"credential provider {self.spec.name} {what}")
        self._failures.put(image, failure)
        log.warning("%s (no credentials from it for %s)", failure.message, image)
        return failure

    async def _exec(self, image: str) -> _Response:
        request = json.dumps({"kind": "CredentialProviderRequest", "apiVersion": self.spec.api_version, "image": image})
        environment = {**self.environ, **dict(self.spec.env)}  # the configured ones win, as with Go's exec
        self.runs += 1
        try:
            process = await asyncio.create_subprocess_exec(
                self.binary,
                *self.spec.args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=environment,
            )
        except FileNotFoundError:
            raise _Failed(f"has no binary {self.binary} (--image-credential-provider-bin-dir)") from None
        except PermissionError:
            raise _Failed(f"cannot be run: {self.binary} is not executable") from None
        except OSError as error:
            raise _Failed(f"cannot be run: {self.binary}: {error.strerror or error}") from None
        try:
            async with asyncio.timeout(self.timeout):
                (stdout, too_much), (stderr, _), _ = await asyncio.gather(
                    _read(process.stdout, MAX_ANSWER_BYTES, keep_tail=False),
                    _read(process.stderr, _STDERR_KEPT, keep_tail=True),
                    _write(process.stdin, f"{request}\n".encode()),
                )
                code = await process.wait()
        except TimeoutError:
            raise _Failed(f"gave no answer for {image} within {self.timeout:g} s and was stopped") from None
        finally:
            if process.returncode is None:  # timed out, or the lookup was cancelled (shutdown)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await asyncio.shield(process.wait())
        said = _said(stderr)
        if code < 0:
            raise _Failed(f"was killed by signal {-code} while answering for {image}{said}")
        if code != 0:
            raise _Failed(f"exited with status {code} for {image}{said}")
        if too_much:
            raise _Failed(f"printed more than {MAX_ANSWER_BYTES} bytes for {image}: not a CredentialProviderResponse")
        return self._parsed(stdout, image)

    def _parsed(self, stdout: bytes, image: str) -> _Response:
        """The answer, checked as the kubelet checks it; a message never quotes it (it may hold a password)."""
        try:
            document = json.loads(stdout)
        except (ValueError, UnicodeDecodeError):
            raise _Failed(f"printed no JSON for {image}: not a CredentialProviderResponse") from None
        if not isinstance(document, dict):
            raise _Failed(f"printed JSON that is not an object for {image}: not a CredentialProviderResponse")
        version = document.get("apiVersion")
        if version != self.spec.api_version:
            raise _Failed(
                f"answered apiVersion {_shown(version)} for {image}; its configuration says {self.spec.api_version}"
            )
        try:
            response = _Response.model_validate(document)
        except ValidationError as error:
            fields = ", ".join(
                ".".join(str(part) for part in problem["loc"])
                + (" (unknown field)" if problem["type"] == "extra_forbidden" else f" ({problem['msg'].lower()})")
                for problem in error.errors()
            )
            raise _Failed(
                f"answered a CredentialProviderResponse for {image} that cannot be decoded: {fields}"
            ) from None
        if response.kind != "CredentialProviderResponse":
            raise _Failed(f"answered kind {_shown(response.kind)} for {image}, not CredentialProviderResponse")
        if response.cache_key_type not in CACHE_KEY_TYPES:
            raise _Failed(
                f"answered cacheKeyType {_shown(response.cache_key_type)} for {image}, not one of "
                f"{', '.join(CACHE_KEY_TYPES)}: its answer is not used"
            )
        if response.cache_duration is not None:
            try:
                parse_go_duration(response.cache_duration)
            except ValueError:
                raise _Failed(
                    f"answered cacheDuration {_shown(response.cache_duration)} for {image}: not a Go duration"
                ) from None
        return response


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _said(stderr: bytes) -> str:
    text = " ".join(stderr.decode(errors="replace").split())
    return f": {text}" if text else " (nothing on stderr)"


async def _read(stream: asyncio.StreamReader | None, limit: int, *, keep_tail: bool) -> tuple[bytes, bool]:
    """Everything until EOF, keeping at most ``limit`` bytes (the first, or the last); and whether there was more."""
    if stream is None:
        return b"", False
    kept, more = bytearray(), False
    while chunk := await stream.read(65536):
        kept += chunk
        if len(kept) > limit:
            more = True
            kept = kept[-limit:] if keep_tail else kept[:limit]
    return bytes(kept), more


async def _write(stream: asyncio.StreamWriter | None, data: bytes) -> None:
    """The request on stdin, then EOF; a provider that exits without reading it is not an error here."""
    if stream is None:
        return
    try:
        stream.write(data)
        await stream.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        stream.close()


class CredentialProviders:
    """The configured providers; ``lookup`` (and ``cached``, from memory alone) gives an image its credentials."""

    def __init__(
        self,
        settings: CredentialProviderSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = EXEC_TIMEOUT_SECONDS,
        failure_ttl: float = 15.0,
        tasks: BackgroundTasks | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.tasks = tasks if tasks is not None else BackgroundTasks("the credential providers")
        self.providers = tuple(
            _Provider(
                spec,
                str(settings.binary(spec)),
                clock=clock,
                timeout=timeout,
                failure_ttl=failure_ttl,
                tasks=self.tasks,
                environ=os.environ if environ is None else environ,
            )
            for spec in settings.providers
        )

    def warnings(self) -> list[str]:
        """What start-up should say once: binaries not there (yet), providers slimguard will not run."""
        said = []
        for provider in self.providers:
            if not os.access(provider.binary, os.X_OK):
                said.append(
                    f"credential provider {provider.spec.name}: {provider.binary} is missing or not executable; "
                    f"images matching {list(provider.spec.match_images)} get an error finding naming it until it is"
                )
            if provider.spec.service_account_token_audience is not None:
                said.append(
                    f"credential provider {provider.spec.name} asks for service-account tokens (tokenAttributes), "
                    "which slimguard does not request: it is never run"
                )
        return said

    def runs(self, name: str) -> int:
        """How many times the named provider's binary was started."""
        return next(provider.runs for provider in self.providers if provider.spec.name == name)

    def _matching(self, image: str) -> list[_Provider]:
        return [provider for provider in self.providers if provider_matches(provider.spec.match_images, image)]

    def cached(self, image: str) -> ProvidedCredentials | None:
        """The credentials for ``image`` (``registry/repository``) from memory alone; None when a matching provider
        has to be run first. No provider matching is an answer: nothing provided."""
        answers: list[tuple[str, tuple[AuthEntry, ...]]] = []
        failures: list[ProviderFailure] = []
        for provider in self._matching(image):
            known = provider.cached(image)
            if known is None:
                return None
            if isinstance(known, ProviderFailure):
                failures.append(known)
            else:
                answers.append((provider.spec.name, known))
        return _provided(answers, failures, image)

    async def lookup(self, image: str) -> ProvidedCredentials:
        """The credentials for ``image`` (``registry/repository``), running the matching providers (together) that
        have no answer kept for it."""
        matching = self._matching(image)
        if not matching:
            return NOTHING_PROVIDED
        results = await asyncio.gather(*(provider.provide(image) for provider in matching))
        answers = [
            (provider.spec.name, result)
            for provider, result in zip(matching, results, strict=True)
            if not isinstance(result, ProviderFailure)
        ]
        failures = [result for result in results if isinstance(result, ProviderFailure)]
        return _provided(answers, failures, image)


def _provided(
    answers: list[tuple[str, tuple[AuthEntry, ...]]], failures: list[ProviderFailure], image: str
) -> ProvidedCredentials:
    if not answers and not failures:
        return NOTHING_PROVIDED
    return ProvidedCredentials(tuple(keyring_lookup(answers, image)), tuple(failures))
