"""Checking images on their own, outside a cluster (the CLI in CI): policy files, and images as workloads.

The evaluation is the cluster's own (``core.evaluation.evaluate``); what differs is only what it is given. An image
checked in a pipeline belongs to no workload, so a policy is applied to it by its image globs alone: its
``match`` and ``exclude`` keep their ``images`` and drop what selects workloads (namespaces, kinds, labels),
and only exemptions that name images apply. Every rule is the same rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import yaml

from slimguard.core.errors import InvalidPolicy
from slimguard.core.model.platform import Platform
from slimguard.core.model.policy import ImagePolicy, WorkloadMatcher
from slimguard.core.model.workload import Container, ContainerType, Workload

API_VERSION = "slimguard.dev/v1alpha1"
KIND = "ImagePolicy"
CHECK_WORKLOAD_NAME = "slimguard-check"


def policies_from_yaml(text: str, *, source: str) -> tuple[ImagePolicy, ...]:
    """Every ImagePolicy in a YAML file (one or several documents; a ``List`` of them too), validated with the
    model that mirrors the CRD. A malformed file is one InvalidPolicy naming the file and what is wrong."""
    try:
        documents = [document for document in yaml.safe_load_all(text) if document is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise InvalidPolicy(f"{source}: not YAML{where}: {problem}") from None
    policies: list[ImagePolicy] = []
    for document in _flatten(documents, source):
        policies.append(_policy_of(document, source))
    if not policies:
        raise InvalidPolicy(f"{source}: holds no ImagePolicy")
    names = [policy.name for policy in policies]
    if len(set(names)) != len(names):
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise InvalidPolicy(f"{source}: ImagePolicy {', '.join(repeated)} is defined more than once")
    return tuple(policies)


def _flatten(documents: Iterable[Any], source: str) -> Iterable[Any]:
    for document in documents:
        if isinstance(document, dict) and document.get("kind") == "List" and isinstance(document.get("items"), list):
            yield from document["items"]
        else:
            yield document


def _policy_of(document: Any, source: str) -> ImagePolicy:
    if not isinstance(document, dict):
        raise InvalidPolicy(f"{source}: a document is not a mapping (an ImagePolicy resource is)")
    kind, api_version = document.get("kind"), document.get("apiVersion")
    if kind != KIND or api_version != API_VERSION:
        raise InvalidPolicy(f"{source}: {kind or 'a document without kind'} is not an {API_VERSION} {KIND}")
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not name:
        raise InvalidPolicy(f"{source}: an ImagePolicy has no metadata.name")
    spec = document.get("spec")
    if not isinstance(spec, dict):
        raise InvalidPolicy(f'{source}: ImagePolicy "{name}" has no spec')
    try:
        return ImagePolicy.from_resource(name, spec)
    except InvalidPolicy as error:
        raise InvalidPolicy(f"{source}: {error}") from None


def image_scoped(policy: ImagePolicy) -> ImagePolicy:
    """``policy`` as it applies to an image checked on its own: image globs and image exemptions only."""
    spec = policy.spec
    exclude = spec.exclude
    image_exclude = WorkloadMatcher(images=exclude.images) if exclude is not None and exclude.images else None
    exemptions = tuple(
        exemption.model_copy(update={"workloads": None}) for exemption in spec.exemptions if exemption.images
    )
    scoped = spec.model_copy(
        update={"match": WorkloadMatcher(images=spec.match.images), "exclude": image_exclude, "exemptions": exemptions}
    )
    return policy.model_copy(update={"spec": scoped})


def narrowed_to(policy: ImagePolicy, available: Sequence[Platform]) -> tuple[ImagePolicy, tuple[Platform, ...]]:
    """``policy`` checking only the required platforms ``available`` satisfies, and those it leaves unchecked.

    A local engine holds one platform of an image; the others exist only once a multi-platform build is
    pushed. They are said to be unchecked rather than reported missing. When none is available the policy is
    left as it is, so the platforms rule reports what the image lacks.
    """
    rules = policy.spec.rules
    required = rules.required_platforms
    kept = tuple(p for p in required if any(a.satisfies(p) for a in available))
    if not kept or len(kept) == len(required):
        return policy, ()
    unchecked = tuple(p for p in required if p not in kept)
    narrowed = rules.model_copy(update={"platforms": tuple(str(p) for p in kept)})
    # model_copy keeps the cached parse of the old list: drop it so required_platforms is read afresh.
    narrowed.__dict__.pop("required_platforms", None)
    return policy.model_copy(update={"spec": policy.spec.model_copy(update={"rules": narrowed})}), unchecked


def image_workload(image: str) -> Workload:
    """One image as the workload evaluation takes: one unnamed container, so findings say ``image X ...``."""
    container = Container(type=ContainerType.REGULAR, index=0, name="", image=image)
    return Workload(kind="Pod", namespace="", name=CHECK_WORKLOAD_NAME, labels={}, containers=(container,))
