"""What evaluation reads besides the policies and the workload: facts, base candidates, reports, the time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from slimguard.core.errors import InspectionError
from slimguard.core.facts import ImageFacts
from slimguard.core.vulnerabilities import DigestReports, VulnerabilityReport

FactsOrError = ImageFacts | InspectionError


@dataclass(frozen=True)
class Context:
    """Everything evaluation reads besides the policies and the workload, gathered by the adapters."""

    now: datetime
    facts: Mapping[str, FactsOrError] = field(default_factory=dict)
    base_candidates: Mapping[str, FactsOrError] = field(default_factory=dict)
    """The concrete base references policies name, as read from their registries (or why they could not be)."""
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    reports: Sequence[VulnerabilityReport] = ()
    """The workload's own reports: those filed under it or one of ``report_owners``."""
    report_owners: tuple[tuple[str, str], ...] = ()
    """(kind, name) of the objects whose reports speak for this workload: itself, and for a Deployment
    its current ReplicaSet (Trivy Operator files a Deployment's reports under the ReplicaSet)."""
    digest_reports: Mapping[str, Sequence[DigestReports]] = field(default_factory=dict)
    """Per image digest, the reports filed for it under any workload (those the cluster view trusts)."""
