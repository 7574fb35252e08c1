"""Terse, plain-data builders for the core's inputs: images, policies, workloads, reports and contexts.

Every builder has defaults that make a compliant, unremarkable thing, so a test states only what matters to it.
Policies go through ``ImagePolicy.from_resource``, the path a policy from the cluster takes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from slimguard.core.evaluation.context import Context
from slimguard.core.evaluation.evaluate import evaluate
from slimguard.core.evaluation.plan import plan
from slimguard.core.evaluation.verdict import Verdict
from slimguard.core.facts.image_facts import BaseImage, BaseImageMethod, FactsOrError, ImageFacts, Layer, PlatformImage
from slimguard.core.facts.media_types import OCI_INDEX, OCI_MANIFEST
from slimguard.core.facts.vulnerabilities import VulnerabilityReport
from slimguard.core.model.platform import Platform
from slimguard.core.model.policy import ImagePolicy
from slimguard.core.model.workload import Container, ContainerType, Workload

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
KiB = 1024
MiB = 1024**2
GiB = 1024**3
AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")
APP = "registry.example.com/team/app:1.0"


def digest(seed: str) -> str:
    """A well-formed sha256 digest, the same for the same seed."""
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def layer(seed: str, size: int = MiB, *, uncompressed: int | None = -1, estimated: bool = False) -> Layer:
    """A gzip layer; its uncompressed size is twice ``size`` unless given (``None``: unknown)."""
    return Layer(
        digest=digest(f"blob:{seed}"),
        size=size,
        media_type="application/vnd.oci.image.layer.v1.tar+gzip",
        diff_id=digest(f"diff:{seed}"),
        uncompressed_size=2 * size if uncompressed == -1 else uncompressed,
        uncompressed_estimated=estimated,
    )


def layers(prefix: str, count: int, size: int = MiB, *, estimated: bool = False) -> tuple[Layer, ...]:
    return tuple(layer(f"{prefix}-{n}", size, estimated=estimated) for n in range(count))


def platform_image(
    *layer_list: Layer,
    platform: Platform = AMD64,
    user: str = "10001",
    config_size: int = 0,
    base: BaseImage | None = None,
    seed: str = "app",
) -> PlatformImage:
    """One platform's image; by default three 1 MiB layers and a non-root USER."""
    chosen = layer_list or layers(seed, 3)
    return PlatformImage(
        platform=platform,
        manifest_digest=digest(f"manifest:{seed}:{platform}:{[item.digest for item in chosen]}"),
        config_digest=digest(f"config:{seed}:{platform}"),
        config_size=config_size,
        layers=chosen,
        user=user,
        annotated_base=base,
    )


def facts(
    *images: PlatformImage,
    base: BaseImage | None = None,
    listed: Sequence[Platform] = (),
    seed: str = "app",
) -> ImageFacts:
    """Facts for a single-platform manifest, or for an index when several images (or ``listed``) are given."""
    chosen = images or (platform_image(seed=seed),)
    index = len(chosen) > 1 or bool(listed)
    return ImageFacts(
        digest=digest(f"top:{seed}:{[image.manifest_digest for image in chosen]}")
        if index
        else chosen[0].manifest_digest,
        media_type=OCI_INDEX if index else OCI_MANIFEST,
        platforms=tuple(chosen),
        annotated_base=base,
        listed_platforms=tuple(listed),
    )


def annotated(reference: str) -> BaseImage:
    return BaseImage(reference=reference, method=BaseImageMethod.ANNOTATION)


def policy(name: str = "slim", /, *, rules: Mapping[str, Any] | None = None, **spec: Any) -> ImagePolicy:
    """An ImagePolicy from its spec as written in YAML (camelCase); ``rules`` defaults to a lax maxLayers."""
    return ImagePolicy.from_resource(name, {"rules": dict(rules if rules is not None else {"maxLayers": 100}), **spec})


def container(
    image: str = APP,
    name: str = "app",
    *,
    type: ContainerType = ContainerType.REGULAR,
    index: int = 0,
    run_as_user: int | None = None,
    run_as_non_root: bool | None = None,
) -> Container:
    return Container(
        type=type, index=index, name=name, image=image, run_as_user=run_as_user, run_as_non_root=run_as_non_root
    )


def workload(
    *containers: Container | str,
    kind: str = "Deployment",
    namespace: str = "team-a",
    name: str = "api",
    labels: Mapping[str, str] | None = None,
    owners: Iterable[tuple[str, str]] = (),
) -> Workload:
    """A workload whose containers are given as Containers or as bare images (named app, app-1, ...)."""
    built = tuple(
        item if isinstance(item, Container) else container(item, "app" if n == 0 else f"app-{n}", index=n)
        for n, item in enumerate(containers or (APP,))
    )
    return Workload(
        kind=kind, namespace=namespace, name=name, labels=dict(labels or {}), containers=built, owners=tuple(owners)
    )


def vulnerability_report(
    *,
    kind: str = "ReplicaSet",
    name: str = "api-5d9c8b7f4",
    namespace: str = "team-a",
    container: str = "app",
    artifact_digest: str | None = None,
    updated: datetime | None = NOW - timedelta(hours=1),
    critical: int = 0,
    high: int = 0,
    medium: int = 0,
    vulnerabilities: Sequence[Mapping[str, Any]] | None = None,
) -> VulnerabilityReport:
    """A Trivy Operator VulnerabilityReport, parsed from the resource as the cluster holds it."""
    report: dict[str, Any] = {
        "artifact": {"repository": "team/app", "tag": "1.0", "digest": artifact_digest},
        "summary": {"criticalCount": critical, "highCount": high, "mediumCount": medium, "lowCount": 0},
        "updateTimestamp": updated.isoformat().replace("+00:00", "Z") if updated else None,
    }
    if vulnerabilities is not None:
        report["vulnerabilities"] = list(vulnerabilities)
    return VulnerabilityReport.from_resource(
        {
            "metadata": {
                "namespace": namespace,
                "name": f"{kind.lower()}-{name}-{container}",
                "labels": {
                    "trivy-operator.resource.kind": kind,
                    "trivy-operator.resource.name": name,
                    "trivy-operator.resource.namespace": namespace,
                    "trivy-operator.container.name": container,
                },
            },
            "report": report,
        }
    )


def context(facts_by_image: Mapping[str, FactsOrError] | None = None, **fields: Any) -> Context:
    return Context(now=fields.pop("now", NOW), facts=dict(facts_by_image or {}), **fields)


def verdict(
    policies: ImagePolicy | Sequence[ImagePolicy],
    subject: Workload | None = None,
    facts_by_image: Mapping[str, FactsOrError] | None = None,
    **fields: Any,
) -> Verdict:
    """Evaluate; by default one Deployment running APP, whose facts are a plain compliant image."""
    chosen = [policies] if isinstance(policies, ImagePolicy) else list(policies)
    target = subject if subject is not None else workload()
    known = facts_by_image if facts_by_image is not None else {image: facts() for image in target.images}
    return evaluate(plan(chosen, target, {}), context(known, **fields))
