"""Which digest a workload runs, per container: the baseline of ``check --baseline-from-cluster KIND/NAME``.

Pure: the workload's body, its Pods and the ImageReports (digest and references) as read from the apiserver go
in; per container the digest and where it was learned come out. The sources, most reliable first:

1. the workload's own spec, when the image is pinned by digest (``repo@sha256:…``): what every Pod runs;
2. its Pods' ``status.containerStatuses[].imageID``, the digest the kubelet pulled, when every Pod of the current
   template that reports one agrees (Pods of two digests are a rollout under way: refused, not guessed);
3. the ImageReport the controller wrote for the tag (``report.references``), when exactly one names it (a tag
   that moved has two until the old one is collected: refused, not guessed).

A tag is never resolved in the registry here: the pipeline asking may just have pushed that very tag.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from slimguard.core.errors import InvalidReference, SlimguardError
from slimguard.core.model.kinds import BY_KIND, WORKLOADS, WorkloadKind
from slimguard.core.model.reference import ImageReference
from slimguard.core.model.workload import ContainerType, normalise

SHORT_NAMES: Mapping[str, str] = {
    "deploy": "Deployment",
    "sts": "StatefulSet",
    "ds": "DaemonSet",
    "rs": "ReplicaSet",
    "rc": "ReplicationController",
    "cj": "CronJob",
    "po": "Pod",
}
"""kubectl's short names, so ``deploy/web`` means what it means to kubectl."""


class NoRunningDigest(SlimguardError):
    """The workload, its container or the digest it runs could not be found: said, never guessed."""


@dataclass(frozen=True, slots=True)
class WorkloadName:
    kind: WorkloadKind
    name: str

    def __str__(self) -> str:
        return f"{self.kind.kind.lower()}/{self.name}"


def parse_workload_name(text: str) -> WorkloadName:
    """``deployment/web``, ``Deployment/web``, ``deployments/web`` or ``deploy/web``, as kubectl takes them."""
    kind_text, slash, name = text.partition("/")
    by_name = {entry.kind.lower(): entry for entry in WORKLOADS}
    by_name.update({entry.plural: entry for entry in WORKLOADS})
    by_name.update({short: BY_KIND[kind] for short, kind in SHORT_NAMES.items()})
    kind = by_name.get(kind_text.lower())
    if not slash or not name or "/" in name or kind is None:
        kinds = ", ".join(entry.kind.lower() for entry in WORKLOADS)
        raise NoRunningDigest(f"{text!r} is not KIND/NAME, e.g. deployment/web (KIND one of {kinds})")
    return WorkloadName(kind, name)


class DigestSource(StrEnum):
    SPEC = "pinned by digest in its spec"
    PODS = "its Pods' imageID"
    IMAGE_REPORT = "the cluster's ImageReport of its tag"


@dataclass(frozen=True, slots=True)
class RunningImage:
    """One container of the workload: its image as the spec names it, and the digest it runs (None: unknown,
    ``unknown_why`` says why)."""

    container: str
    image: str
    digest: str | None
    source: DigestSource | None
    unknown_why: str = ""

    @property
    def reference(self) -> str:
        """``registry/repository@digest``: the image that runs, as a reference any facts source reads."""
        if self.digest is None:
            raise NoRunningDigest(f"container {self.container}: {self.unknown_why}")
        return f"{ImageReference.parse(self.image).name}@{self.digest}"


def template_labels(kind: WorkloadKind, body: Mapping[str, Any]) -> Mapping[str, str]:
    """The labels its Pods carry: the pod template's (``…template.metadata.labels``), a Pod's own."""
    found: Mapping[str, Any] = body
    for key in (*kind.pod_spec_path[:-1], "metadata", "labels"):
        found = found.get(key) or {}
    return {str(key): str(value) for key, value in found.items()}


def label_selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def image_id_digest(image_id: str) -> str | None:
    """The digest in a container status' ``imageID``: ``repo@sha256:…`` (containerd) or
    ``docker-pullable://repo@sha256:…`` (dockershim). A bare ``sha256:…`` is the local image's ID, the digest of
    its config, not of anything a registry serves: None."""
    _, at, digest = image_id.rpartition("@")
    return digest if at and digest.startswith("sha256:") and len(digest) == 71 else None


def running_images(
    workload: WorkloadName,
    body: Mapping[str, Any],
    pods: Iterable[Mapping[str, Any]] = (),
    reports: Iterable[tuple[str, Sequence[str]]] = (),
    *,
    unread: Sequence[str] = (),
) -> tuple[RunningImage, ...]:
    """Per container (init and regular) the digest it runs, from the first source that knows it (see the module).

    ``pods``: the Pods carrying the template's labels; ``reports``: each ImageReport's digest and references;
    ``unread``: sources that could not be read (forbidden), named when no digest is known."""
    normalised = normalise(workload.kind.kind, body)
    pods = list(pods)
    reports = list(reports)
    running = []
    for container in normalised.containers:
        if container.type is ContainerType.EPHEMERAL:
            continue
        reference = container.reference
        if isinstance(reference, InvalidReference):
            running.append(RunningImage(container.name, container.image, None, None, str(reference)))
            continue
        if reference.digest is not None:
            running.append(RunningImage(container.name, container.image, reference.digest, DigestSource.SPEC))
            continue
        digests = _pod_digests(container.name, container.image, pods)
        if len(digests) > 1:
            raise NoRunningDigest(
                f"{workload}: the Pods of container {container.name} run {len(digests)} digests "
                f"({', '.join(sorted(digests))}): a rollout under way? Wait for it, or pin the baseline with --baseline"
            )
        if digests:
            (digest,) = digests
            running.append(RunningImage(container.name, container.image, digest, DigestSource.PODS))
            continue
        named = sorted({digest for digest, refs in reports if _names_tag(refs, reference)})
        if len(named) > 1:
            raise NoRunningDigest(
                f"{workload}: no Pod reports the digest of container {container.name} and {len(named)} ImageReports "
                f"name {container.image} ({', '.join(named)}: the tag moved); pin the baseline with --baseline"
            )
        if named:
            running.append(RunningImage(container.name, container.image, named[0], DigestSource.IMAGE_REPORT))
            continue
        why = (
            f"no digest known for {container.image}: not pinned by digest, no Pod of {workload} reports an imageID, "
            "no ImageReport names the tag"
        )
        if unread:
            why += f" ({', '.join(unread)} could not be read)"
        running.append(RunningImage(container.name, container.image, None, None, why))
    return tuple(running)


def _pod_digests(container: str, image: str, pods: Iterable[Mapping[str, Any]]) -> set[str]:
    """The digests the Pods report for ``container``, counting only Pods whose container still names ``image``
    (a Pod of an older template runs what the workload no longer asks for)."""
    found = set()
    for pod in pods:
        spec = pod.get("spec") or {}
        specified = {
            str(c.get("name")): str(c.get("image"))
            for c in (*(spec.get("containers") or ()), *(spec.get("initContainers") or ()))
        }
        if specified.get(container) != image:
            continue
        status = pod.get("status") or {}
        for entry in (*(status.get("containerStatuses") or ()), *(status.get("initContainerStatuses") or ())):
            if entry.get("name") == container and (digest := image_id_digest(str(entry.get("imageID") or ""))):
                found.add(digest)
    return found


def _names_tag(references: Sequence[str], wanted: ImageReference) -> bool:
    for text in references:
        try:
            reference = ImageReference.parse(text)
        except InvalidReference:
            continue
        if reference.name == wanted.name and reference.tag == wanted.tag:
            return True
    return False


def baseline_container(
    workload: WorkloadName, running: Sequence[RunningImage], image: str, container: str | None
) -> RunningImage:
    """The container whose running image is ``image``'s baseline: the one named (``--container``), the only one,
    or the one running the same repository; a clear error otherwise, and when its digest is unknown."""
    names = ", ".join(entry.container for entry in running) or "none"
    if container is not None:
        chosen = [entry for entry in running if entry.container == container]
        if not chosen:
            raise NoRunningDigest(f"{workload} has no container {container!r} (its containers: {names})")
    elif len(running) == 1:
        chosen = list(running)
    else:
        try:
            repository = ImageReference.parse(image).name
        except InvalidReference:
            repository = image
        chosen = [entry for entry in running if _repository(entry.image) == repository]
        if len(chosen) != 1:
            how = "none runs" if not chosen else f"{len(chosen)} run"
            raise NoRunningDigest(
                f"{workload} has {len(running)} containers ({names}) and {how} {repository}: name one with --container"
            )
    (entry,) = chosen
    if entry.digest is None:
        raise NoRunningDigest(f"{workload}, container {entry.container}: {entry.unknown_why}")
    return entry


def _repository(image: str) -> str | None:
    try:
        return ImageReference.parse(image).name
    except InvalidReference:
        return None
