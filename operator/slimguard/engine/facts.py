"""What the evaluator reads, and from where: image facts (``FactsSource``), the cluster (``ClusterFacts``;
``NO_CLUSTER`` outside one) and pull credentials (``CredentialSource``). ``engine.evaluator`` gathers them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Protocol

from slimguard.core.errors import InspectionError
from slimguard.core.facts.image_facts import FactsNeeds, ImageFacts
from slimguard.core.facts.vulnerabilities import DigestReports, VulnerabilityReport
from slimguard.core.model.workload import Workload
from slimguard.registry.credentials import Credential

CredentialSource = Callable[[Workload], Awaitable[list[Credential]]]
"""A workload's pull credentials (``engine.credentials.PullCredentials.for_workload`` in the cluster)."""


class FactsSource(Protocol):
    """Where image facts come from: the registry inspector (``registry/inspector.py``; in the cluster it asks the
    ImageReports before the registry), a local Docker engine (``docker_engine/facts.py``) or an image archive
    (``archive/facts.py``).

    ``cached`` answers from memory alone (None when it cannot), so a warm admission never yields; ``inspect``
    may do I/O and raises InspectionError with a message meant for the user. Both are asked for one needs object
    (``core.evaluation.plan`` says what each image needs): a new kind of read is a field there, not a new
    argument here.
    """

    def cached(
        self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential]
    ) -> ImageFacts | InspectionError | None: ...

    async def inspect(self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential]) -> ImageFacts: ...


class ClusterFacts(Protocol):
    """What evaluation reads of the cluster besides the workload: namespace labels and scan reports.

    ``ClusterView`` (fed by watches) is the one in the cluster; an entry point outside it passes ``NO_CLUSTER``.
    """

    def namespace_labels(self, namespace: str) -> Mapping[str, str]: ...

    def report_owners(self, workload: Workload) -> tuple[tuple[str, str], ...]: ...

    def own_reports(self, namespace: str, owners: Iterable[tuple[str, str]]) -> Sequence[VulnerabilityReport]: ...

    def digest_reports(self, namespace: str, digest: str) -> tuple[DigestReports, ...]: ...

    @property
    def reports_pending(self) -> bool:
        """The scan reports are still being listed: vulnerability rules are left undecided until they are."""
        ...


class _NoCluster:
    """No namespace labels and no scan reports: for checks outside a cluster (CI, a local image)."""

    reports_pending = False

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        return {}

    def report_owners(self, workload: Workload) -> tuple[tuple[str, str], ...]:
        return ()

    def own_reports(self, namespace: str, owners: Iterable[tuple[str, str]]) -> Sequence[VulnerabilityReport]:
        return ()

    def digest_reports(self, namespace: str, digest: str) -> tuple[DigestReports, ...]:
        return ()


NO_CLUSTER: ClusterFacts = _NoCluster()
