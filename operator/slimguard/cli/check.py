"""``slimguard check`` and ``slimguard inspect``: the cluster's evaluation, run on images from a pipeline.

Only translation lives here: policies from files (or the cluster), a facts source (the registry inspector, the
local Docker engine, or an image archive), the same ``Evaluator`` and ``core.evaluation.outcome`` mapping the
webhook uses, and a report.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slimguard.archive import ArchiveFacts
from slimguard.core.errors import InspectionError, InspectionReason, InvalidPolicy, InvalidReference
from slimguard.core.evaluation.outcome import outcome_of
from slimguard.core.evaluation.plan import base_candidates, plan
from slimguard.core.facts.image_facts import FactsNeeds, ImageFacts
from slimguard.core.model.image_check import image_scoped, image_workload, narrowed_to, policies_from_yaml
from slimguard.core.model.platform import Platform
from slimguard.core.model.policy import ImagePolicy
from slimguard.core.model.reference import ImageReference
from slimguard.core.model.workload import Workload
from slimguard.core.reports.report import ImageResult, InspectedImage, image_result
from slimguard.docker_engine import DockerFacts, connect, docker_config_credentials
from slimguard.engine.evaluator import Evaluator
from slimguard.engine.facts import NO_CLUSTER, FactsSource
from slimguard.engine.kubelet_keyring import with_credential_providers
from slimguard.registry.client import RegistryClient
from slimguard.registry.credentials import Credential
from slimguard.registry.inspector import ImageInspector
from slimguard.registry.settings import RegistrySettings


def load_policy_files(paths: Sequence[str]) -> tuple[ImagePolicy, ...]:
    policies: list[ImagePolicy] = []
    for path in paths:
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise InvalidPolicy(f"{path}: cannot be read ({error.strerror or error})") from None
        except UnicodeDecodeError:
            raise InvalidPolicy(f"{path}: not a text file") from None
        policies.extend(policies_from_yaml(text, source=path))
    names = [policy.name for policy in policies]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidPolicy(f"ImagePolicy {', '.join(repeated)} is defined in more than one file")
    return tuple(policies)


async def load_cluster_policies(kubeconfig: str | None, *, context: str | None = None) -> tuple[ImagePolicy, ...]:
    """The cluster's ImagePolicies, read with the current kubeconfig (as ``kubectl get imagepolicies``)."""
    from slimguard.kube.errors import KubeError, NotConfigured
    from slimguard.kube.gateway import KubeGateway, load_api_client

    try:
        api = load_api_client(kubeconfig, context=context)
    except (NotConfigured, OSError) as error:
        raise InvalidPolicy(f"no cluster to read ImagePolicies from: {error}") from None
    try:
        items = await KubeGateway(api).list_policies()
    except KubeError as error:
        raise InvalidPolicy(f"the cluster's ImagePolicies could not be listed: {error.status} {error.reason}") from None
    except OSError as error:
        raise InvalidPolicy(f"the cluster's ImagePolicies could not be listed: {error}") from None
    finally:
        api.close()
    policies = []
    for item in items:
        metadata = item.get("metadata") or {}
        policies.append(
            ImagePolicy.from_resource(str(metadata.get("name")), item.get("spec") or {}, metadata.get("generation", 0))
        )
    if not policies:
        raise InvalidPolicy("the cluster has no ImagePolicy")
    return tuple(policies)


def registries_of(images: Sequence[str], policies: Sequence[ImagePolicy]) -> list[str]:
    found = []
    for text in (*images, *base_candidates(policies)):
        try:
            found.append(ImageReference.parse(text).registry)
        except InvalidReference:
            continue
    return found


def credential_source(credentials: list[Credential]) -> Callable[[Workload], Awaitable[list[Credential]]]:
    """The same credentials for every image checked: there is no workload to take pull secrets from."""

    async def for_workload(_: Workload) -> list[Credential]:
        return credentials

    return for_workload


@dataclass
class Sources:
    """The facts sources a command reads from, and what must be closed after."""

    facts: FactsSource
    docker: DockerFacts | None
    inspector: ImageInspector
    client: RegistryClient
    archive: ArchiveFacts | None = None

    @property
    def name(self) -> str:
        """Where the images are read: ``registry``, ``docker`` or ``archive`` (the reports' ``source``)."""
        return "docker" if self.docker is not None else "archive" if self.archive is not None else "registry"

    async def aclose(self) -> None:
        await self.inspector.stop_background()  # reads still running (a timed-out command) end before the client
        await self.client.aclose()
        if self.docker is not None:
            self.docker.client.close()
        if self.archive is not None:
            self.archive.close()


def open_sources(
    images: Sequence[str],
    *,
    registry: RegistrySettings,
    docker: bool,
    docker_host: str | None,
    measure_compressed: bool,
    archive: str | None = None,
    unnamed_ok: bool = False,
) -> Sources:
    """The facts source the options name; with ``archive``, ``images`` name images in it (none: all it names;
    ``unnamed_ok``: those it does not name too, by their digest or tag)."""
    engine = connect(docker_host) if docker else None  # first: an engine that is not there opens nothing
    archived = (  # so is an archive that cannot be read
        ArchiveFacts.open(archive, images, measure_compressed=measure_compressed, unnamed_ok=unnamed_ok)
        if archive is not None
        else None
    )
    client = RegistryClient(registry)
    inspector = ImageInspector(client)
    # The kubelet's credential providers (--image-credential-provider-config), after the Docker config's
    # credentials; their runs belong to the inspector's tasks, stopped before the client closes.
    from_registry = with_credential_providers(inspector, registry, tasks=inspector.tasks)
    if archived is not None:
        archived.registry = from_registry  # the bases its policies name are read from their registry
        return Sources(archived, None, inspector, client, archived)
    if engine is None:
        return Sources(from_registry, None, inspector, client)
    local = DockerFacts(engine, registry=from_registry, local_only=images, measure_compressed=measure_compressed)
    return Sources(local, local, inspector, client)


def only_image(sources: Sources, where: str | None) -> str:
    """The one image an archive holds, for ``inspect --input`` without a name."""
    names = sources.archive.names if sources.archive is not None else ()
    if len(names) != 1:
        raise InspectionError(
            f"{where} holds {len(names)} images ({', '.join(names[:10])}): name the one to inspect",
            reason=InspectionReason.IMAGE_NOT_FOUND,
        )
    return names[0]


async def check_images(
    images: Sequence[str],
    policies: Sequence[ImagePolicy],
    sources: Sources,
    *,
    strict: bool,
    now: datetime | None = None,
    baselines: Mapping[str, ImageFacts] | None = None,
) -> list[ImageResult]:
    """Each image evaluated on its own, as the cluster would evaluate a container running it; ``baselines``: per
    image, what the growth rules compare it with (``--baseline``)."""
    scoped = [image_scoped(policy) for policy in policies]
    # The user's Docker credentials for the registries of the images and of the bases the policies name.
    credentials = docker_config_credentials(registries_of(images, scoped))
    evaluator = Evaluator(
        inspector=sources.facts, view=NO_CLUSTER, credentials=credential_source(credentials), baselines=baselines
    )
    on_unknown = {policy.name: policy.spec.on_unknown for policy in scoped}
    results = []
    for image in images:
        applied: list[ImagePolicy] = scoped
        unchecked: tuple[Platform, ...] = ()
        if sources.docker is not None:
            available = await sources.docker.platforms_of(image)
            applied, unchecked = _narrowed(scoped, available)
        chosen = plan(applied, image_workload(image), {})  # outside a cluster: no namespace labels
        verdict = await evaluator.verdict(chosen, now=now or datetime.now(UTC))
        outcome = outcome_of(verdict, on_unknown=on_unknown)
        facts = sources.facts.cached(image, FactsNeeds(frozenset()), credentials=credentials)
        results.append(
            image_result(
                image,
                verdict,
                outcome,
                facts=facts if isinstance(facts, ImageFacts) else None,
                unchecked_platforms=unchecked,
                strict=strict,
            )
        )
    return results


def _narrowed(
    policies: Sequence[ImagePolicy], available: Sequence[Platform]
) -> tuple[list[ImagePolicy], tuple[Platform, ...]]:
    narrowed: list[ImagePolicy] = []
    unchecked: dict[Platform, None] = {}
    for policy in policies:
        kept, left = narrowed_to(policy, available)
        narrowed.append(kept)
        unchecked.update(dict.fromkeys(left))
    return narrowed, tuple(unchecked)


async def inspect_image(
    image: str,
    sources: Sources,
    *,
    platforms: Sequence[Platform],
    known_bases: Sequence[str],
    policies: Sequence[ImagePolicy],
    content: bool = False,
) -> InspectedImage:
    """The image's facts (every platform asked for, uncompressed sizes too) and the bases to compare it with."""
    candidates = list(dict.fromkeys([*known_bases, *(c for p in policies for c in p.base_image_candidates)]))
    credentials = docker_config_credentials(registries_of([image], policies) + registries_of(candidates, []))
    wanted = tuple(platforms)
    if not wanted and sources.docker is None:
        wanted = await listed_platforms(image, sources, credentials)
    facts = await sources.facts.inspect(
        image, FactsNeeds(frozenset(wanted), uncompressed=True, content=content), credentials=credentials
    )
    bases: dict[str, Any] = {}
    for candidate in candidates:
        try:
            bases[candidate] = await sources.facts.inspect(
                candidate, FactsNeeds(frozenset(p.platform for p in facts.platforms)), credentials=credentials
            )
        except InspectionError as error:
            bases[candidate] = error
    where = sources.archive.archive.where if sources.archive is not None else None
    return InspectedImage(image, sources.name, facts, bases, archive=where)


async def listed_platforms(image: str, sources: Sources, credentials: Sequence[Credential]) -> tuple[Platform, ...]:
    """Every platform an index lists (one look at the index first), or linux/amd64 for a single manifest."""
    first = await sources.facts.inspect(
        image, FactsNeeds(frozenset({Platform("linux", "amd64")})), credentials=credentials
    )
    return first.listed_platforms or tuple(p.platform for p in first.platforms) or (Platform("linux", "amd64"),)
