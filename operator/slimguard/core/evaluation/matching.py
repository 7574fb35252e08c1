"""Which policies apply to which workloads and containers, and which findings an exemption waives."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from slimguard.core.errors import InvalidReference
from slimguard.core.model.globs import glob_matches, image_matches_any, matches_any
from slimguard.core.model.policy import Exemption, ImagePolicy, WorkloadMatcher
from slimguard.core.model.workload import Container, Workload


def _workload_matches(matcher: WorkloadMatcher, workload: Workload, namespace_labels: Mapping[str, str]) -> bool:
    if matcher.namespaces is not None and not matches_any(workload.namespace, matcher.namespaces):
        return False
    if matcher.namespace_selector is not None and not matcher.namespace_selector.matches(dict(namespace_labels)):
        return False
    if matcher.kinds is not None and workload.kind not in matcher.kinds:
        return False
    return matcher.selector is None or matcher.selector.matches(dict(workload.labels))


def _image_matches(globs: tuple[str, ...] | None, container: Container) -> bool:
    if globs is None:
        return True
    if isinstance(container.reference, InvalidReference):
        return matches_any(container.image, globs)  # still excludable or exemptable by its text
    return image_matches_any(container.reference, globs)


def selected_containers(
    policy: ImagePolicy, workload: Workload, namespace_labels: Mapping[str, str]
) -> tuple[Container, ...]:
    """The containers of ``workload`` that ``policy`` checks: matched, and not excluded."""
    spec = policy.spec
    if not _workload_matches(spec.match, workload, namespace_labels):
        return ()
    exclude = spec.exclude if spec.exclude is not None and not spec.exclude.is_empty else None
    workload_excluded = exclude is not None and _workload_matches(exclude, workload, namespace_labels)
    return tuple(
        container
        for container in workload.containers
        if _image_matches(spec.match.images, container)
        and not (workload_excluded and exclude is not None and _image_matches(exclude.images, container))
    )


def exemption_for(policy: ImagePolicy, workload: Workload, container: Container, now: datetime) -> Exemption | None:
    """The first active exemption of ``policy`` covering this container of this workload."""
    for exemption in policy.spec.exemptions:
        if not exemption.active(now):
            continue
        if exemption.images and _image_matches(exemption.images, container):
            return exemption
        for selector in exemption.workloads or ():
            if (
                (selector.namespace is None or glob_matches(workload.namespace, selector.namespace))
                and (selector.kind is None or selector.kind == workload.kind)
                and (selector.name is None or glob_matches(workload.name, selector.name))
            ):
                return exemption
    return None
