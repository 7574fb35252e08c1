"""Images read with the credentials the kubelet pulls them with: the workload's pull secrets, then what the
kubelet's credential providers give (``registry/credential_providers.py``), each tried in turn.

The kubelet (v1.36 ``pkg/kubelet/images/image_manager.go``) looks an image up in one union keyring, the Pod's
``imagePullSecrets`` first and the credential providers after, and tries every credential found, in that order,
until a pull succeeds; with none, it pulls anonymously. ``KubeletKeyring`` does the same around a facts source:
the pull secrets matching the image (most specific first, as ``registry.credentials.credentials_for`` orders
them), then the providers' (in the keyring's order), each tried while the registry refuses the one before (HTTP
401/403); any other failure is the image's. When every try is refused and a provider failed for the image, the
error names the provider and what went wrong (reason ``CredentialProviderFailed``): a missing binary, a crash or
a garbled answer says so, instead of a bare 401.

Only used when credential providers are configured: without them, reads are what they were (the first matching
pull secret).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from slimguard.core.errors import InspectionError, InspectionReason, InvalidReference
from slimguard.core.facts.image_facts import FactsNeeds, ImageFacts
from slimguard.core.model.reference import ImageReference
from slimguard.engine.facts import FactsSource
from slimguard.registry.credential_providers import CredentialProviders, ProvidedCredentials
from slimguard.registry.credentials import Credential, credentials_for
from slimguard.registry.settings import RegistrySettings
from slimguard.tasks import BackgroundTasks

log = logging.getLogger(__name__)


def with_credential_providers(
    inspector: FactsSource, registry: RegistrySettings, *, tasks: BackgroundTasks | None = None
) -> FactsSource:
    """``inspector`` reading with the kubelet's credential providers too, when ``registry`` configures them (what a
    provider cannot do yet is logged once, here); else ``inspector`` itself. The one wiring of the controller, the
    webhook and ``slimguard check``."""
    if registry.credential_providers is None:
        return inspector
    providers = CredentialProviders(
        registry.credential_providers, failure_ttl=registry.failure_ttl_seconds, tasks=tasks
    )
    for warning in providers.warnings():
        log.warning("%s", warning)
    return KubeletKeyring(inspector, providers)


class KubeletKeyring:
    """A ``FactsSource`` that reads each image with the kubelet's credentials for it, through ``inner``."""

    def __init__(self, inner: FactsSource, providers: CredentialProviders) -> None:
        self.inner = inner
        self.providers = providers

    def cached(
        self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential]
    ) -> ImageFacts | InspectionError | None:
        reference = _parsed(image)
        if reference is None:
            return self.inner.cached(image, needs, credentials=credentials)
        provided = self.providers.cached(reference.name)
        if provided is None:  # a provider must be run first: not from memory
            return None
        tries = _tries(reference, credentials, provided)
        for index, credential in enumerate(tries):
            found = self.inner.cached(image, needs, credentials=() if credential is None else (credential,))
            if found is None:
                return None
            if isinstance(found, InspectionError) and _refused(found) and index + 1 < len(tries):
                continue
            return _blamed(found, provided) if isinstance(found, InspectionError) else found
        return None  # never reached: there is always one try

    async def inspect(self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential]) -> ImageFacts:
        reference = _parsed(image)
        if reference is None:
            return await self.inner.inspect(image, needs, credentials=credentials)
        provided = await self.providers.lookup(reference.name)
        tries = _tries(reference, credentials, provided)
        for index, credential in enumerate(tries):
            try:
                return await self.inner.inspect(image, needs, credentials=() if credential is None else (credential,))
            except InspectionError as error:
                if _refused(error) and index + 1 < len(tries):
                    continue
                raise _blamed(error, provided) from None
        raise AssertionError("unreachable: there is always one try")


def _parsed(image: str) -> ImageReference | None:
    """The reference, or None for one the inner source will refuse with its own message."""
    try:
        return ImageReference.parse(image)
    except InvalidReference:
        return None


def _tries(
    reference: ImageReference, credentials: Sequence[Credential], provided: ProvidedCredentials
) -> list[Credential | None]:
    """The credentials to try, in the kubelet's order; none found: one anonymous try.

    A provider's credential was matched to this image by the kubelet's rules (``registry/keyring.py``); it goes to
    the inner source filed under the image's own name, so that source's choice (``credentials_for``, whose path
    prefix is a whole segment) cannot drop it again for an image the kubelet would send it with."""
    found: list[Credential | None] = [
        *credentials_for(reference, credentials),
        *(replace(credential, location=reference.name) for credential in provided.credentials),
    ]
    return found or [None]


def _refused(error: InspectionError) -> bool:
    return error.reason is InspectionReason.REGISTRY_UNAUTHORIZED


def _blamed(error: InspectionError, provided: ProvidedCredentials) -> InspectionError:
    """A refusal with a provider that failed for the image names the provider first."""
    if not provided.failures or not _refused(error):
        return error
    why = "; ".join(failure.message for failure in provided.failures)
    return InspectionError(f"{why}; {error}", reason=InspectionReason.CREDENTIAL_PROVIDER_FAILED)
