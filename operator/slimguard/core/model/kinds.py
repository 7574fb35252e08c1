"""Every workload kind slimguard checks, in one table: where it lives in the Kubernetes API, where its pod template
is, and whether another workload usually makes it.

Everything else derives from ``WORKLOADS``: the kinds ``match.kinds`` and exemptions may name, the normaliser, the
kinds the webhook reviews and the metrics label, the informer's watches (``kube.resources``) and the patch that
writes the verdict (``kube.gateway``, addressed by URL, so a kind the kubernetes client has no method for, such as
an Argo Rollout, is written the same way). A new kind is an entry here, plus what this module cannot grant: the
ClusterRole and the webhook's rules (chart and kustomize) and the ImagePolicy CRD's kind enums, which
``tests/unit/kube/test_install_agrees_with_the_kinds.py`` holds to this table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WorkloadKind:
    kind: str
    group: str
    """The API group; ``""`` for the core group (Pods)."""
    version: str
    plural: str
    pod_spec_path: tuple[str, ...]
    """The keys from the object's root to its pod spec: ``spec`` for a Pod, ``spec.template.spec`` for most."""
    usually_owned: bool = False
    """Nearly always made by another workload (a Deployment's ReplicaSets, a Job's Pods): the informer reads
    such an object's body only when it was not (``kube.informer``'s ``needs_body``)."""

    @property
    def api_version(self) -> str:
        """``apps/v1`` for a Deployment, ``v1`` for a Pod (the core group has no name)."""
        return f"{self.group}/{self.version}" if self.group else self.version


TEMPLATE = ("spec", "template", "spec")

WORKLOADS: tuple[WorkloadKind, ...] = (
    WorkloadKind("Deployment", "apps", "v1", "deployments", TEMPLATE),
    WorkloadKind("StatefulSet", "apps", "v1", "statefulsets", TEMPLATE),
    WorkloadKind("DaemonSet", "apps", "v1", "daemonsets", TEMPLATE),
    WorkloadKind("ReplicaSet", "apps", "v1", "replicasets", TEMPLATE, usually_owned=True),
    WorkloadKind("ReplicationController", "", "v1", "replicationcontrollers", TEMPLATE),
    WorkloadKind("Job", "batch", "v1", "jobs", TEMPLATE, usually_owned=True),
    WorkloadKind("CronJob", "batch", "v1", "cronjobs", ("spec", "jobTemplate", "spec", "template", "spec")),
    WorkloadKind("Pod", "", "v1", "pods", ("spec",), usually_owned=True),
)
"""In the order the kinds are listed to users (error messages, the CRD's enum)."""

BY_KIND: Mapping[str, WorkloadKind] = {entry.kind: entry for entry in WORKLOADS}
WORKLOAD_KINDS: tuple[str, ...] = tuple(BY_KIND)
