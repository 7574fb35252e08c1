"""One normaliser for every workload kind: what runs, from which images, with which pull credentials."""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from slimguard.core.errors import InvalidReference
from slimguard.core.model.kinds import BY_KIND, TEMPLATE, WORKLOAD_KINDS
from slimguard.core.model.placement import ANYWHERE, PlatformPin, platform_pin
from slimguard.core.model.reference import ImageReference

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
OWN_ANNOTATION_PREFIX = "slimguard.dev/"
"""The annotations a Workload keeps: slimguard's own, read back so that only what changed is written. Others
are not kept: a kubectl ``last-applied-configuration`` alone can be the size of the whole object."""
STATUS_LABEL = "slimguard.dev/status"
"""slimguard's verdict on a workload (``compliant``, ``noncompliant``, ``pending``, ``error``), as a label: users
select on it, and the Deployment controller does not copy labels onto ReplicaSets as it does annotations."""


class ContainerType(StrEnum):
    INIT = "initContainers"
    REGULAR = "containers"
    EPHEMERAL = "ephemeralContainers"


@functools.lru_cache(maxsize=4096)
def _parsed(image: str) -> ImageReference | InvalidReference:
    """One parse and one object per distinct image: 10,000 Deployments on 1,000 images hold 1,000 of them."""
    try:
        return ImageReference.parse(image)
    except InvalidReference as error:
        return error.with_traceback(None)  # kept as a value: no frames held with it


@dataclass(frozen=True, slots=True)
class Container:
    type: ContainerType
    index: int
    name: str
    image: str
    run_as_user: int | None = None
    run_as_non_root: bool | None = None
    reference: ImageReference | InvalidReference = field(init=False, compare=False, repr=False)
    """``image`` parsed once, here: every rule and matcher reads this; a bad reference is kept as its error."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "reference", _parsed(self.image))  # frozen: set once, at construction

    @property
    def runs_as_non_root(self) -> bool:
        """The pod spec itself guarantees a non-root user, whatever the image says."""
        return bool(self.run_as_non_root) or (self.run_as_user is not None and self.run_as_user != 0)


@dataclass(frozen=True, slots=True)
class WorkloadKey:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Workload:
    kind: str
    namespace: str
    name: str
    labels: Mapping[str, str]
    containers: tuple[Container, ...]
    pull_secrets: tuple[str, ...] = ()
    service_account: str = "default"
    owners: tuple[tuple[str, str], ...] = field(default=())
    uid: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    revision: int = 0
    """A ReplicaSet's ``deployment.kubernetes.io/revision``: the highest is its Deployment's current one."""
    status_label: str | None = None
    """The ``STATUS_LABEL`` it carries. Not in ``labels``: slimguard's verdict is an output of evaluation, never
    an input (no policy selects on it, and writing it is no change worth evaluating again)."""
    platform_pin: PlatformPin = ANYWHERE
    """What its nodeSelector and required node affinity say of the nodes' ``kubernetes.io/arch`` and ``/os``:
    a policy without ``platforms`` judges its images on the platforms that admits (``core.model.placement``)."""

    @property
    def key(self) -> WorkloadKey:
        return WorkloadKey(self.kind, self.namespace, self.name)

    @property
    def images(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(container.image for container in self.containers))

    @property
    def controlled(self) -> bool:
        """True for objects made by a workload controller (a ReplicaSet of a Deployment, a Pod of a Job)."""
        return any(kind in WORKLOAD_KINDS for kind, _ in self.owners)


def made_by_a_workload(body: Mapping[str, Any]) -> bool:
    """An object a workload controller made (a Deployment's ReplicaSet, a Job's Pod), from its metadata alone:
    it is judged on its owner, as ``Workload.controlled`` says once normalised."""
    references = (body.get("metadata") or {}).get("ownerReferences") or ()
    return any(ref.get("controller") and ref.get("kind") in WORKLOAD_KINDS for ref in references)


def pod_spec_of(kind: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod spec, where the kind's entry in ``core.model.kinds`` says it is (``spec.template.spec`` for a kind
    slimguard does not check)."""
    found: Mapping[str, Any] = body
    for key in BY_KIND[kind].pod_spec_path if kind in BY_KIND else TEMPLATE:
        found = found.get(key) or {}
    return found


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def normalise(kind: str, body: Mapping[str, Any]) -> Workload:
    """Map any workload kind to its containers (init, regular, ephemeral), pull secrets and ServiceAccount."""
    if kind not in WORKLOAD_KINDS:
        raise ValueError(f"{kind} is not a workload kind slimguard checks")
    metadata = body.get("metadata") or {}
    labels: Mapping[str, Any] = metadata.get("labels") or {}
    pod_spec = pod_spec_of(kind, body)
    pod_security = pod_spec.get("securityContext") or {}
    containers: list[Container] = []
    for container_type in ContainerType:
        for index, raw in enumerate(pod_spec.get(container_type.value) or ()):
            security = raw.get("securityContext") or {}
            run_as_user = _int_or_none(security.get("runAsUser", pod_security.get("runAsUser")))
            non_root = security.get("runAsNonRoot", pod_security.get("runAsNonRoot"))
            containers.append(
                Container(
                    type=container_type,
                    index=index,
                    name=str(raw.get("name") or f"{container_type.value}[{index}]"),
                    image=sys.intern(str(raw.get("image") or "")),
                    run_as_user=run_as_user,
                    run_as_non_root=non_root if isinstance(non_root, bool) else None,
                )
            )
    return Workload(
        kind=kind,
        namespace=sys.intern(str(metadata.get("namespace") or "")),  # one string per namespace, not per object
        name=str(metadata.get("name") or metadata.get("generateName") or ""),
        labels={sys.intern(str(k)): str(v) for k, v in labels.items() if k != STATUS_LABEL},
        containers=tuple(containers),
        pull_secrets=tuple(
            str(ref["name"]) for ref in pod_spec.get("imagePullSecrets") or () if ref and ref.get("name")
        ),
        service_account=str(pod_spec.get("serviceAccountName") or pod_spec.get("serviceAccount") or "default"),
        owners=tuple(
            (str(ref.get("kind")), str(ref.get("name")))
            for ref in metadata.get("ownerReferences") or ()
            if ref.get("controller")
        ),
        uid=str(metadata["uid"]) if metadata.get("uid") else None,
        annotations={
            sys.intern(str(k)): str(v)
            for k, v in (metadata.get("annotations") or {}).items()
            if k.startswith(OWN_ANNOTATION_PREFIX)
        },
        revision=_revision(metadata.get("annotations") or {}),
        status_label=str(labels[STATUS_LABEL]) if STATUS_LABEL in labels else None,
        platform_pin=platform_pin(pod_spec),
    )


def _revision(annotations: Mapping[str, Any]) -> int:
    text = str(annotations.get(REVISION_ANNOTATION) or "0")
    return int(text) if text.isdigit() else 0
