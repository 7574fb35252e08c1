"""What evaluation reads besides the plan: facts, base candidates, reports, the time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from slimguard.core.facts.bases import BaseOptions
from slimguard.core.facts.image_facts import FactsOrError, ImageFacts
from slimguard.core.facts.vulnerabilities import DigestReports, VulnerabilityReport


@dataclass(frozen=True)
class Context:
    """Everything evaluation reads besides the plan (``core.evaluation.plan``), gathered by the adapters as the
    plan says."""

    now: datetime
    facts: Mapping[str, FactsOrError] = field(default_factory=dict)
    base_candidates: Mapping[str, FactsOrError] = field(default_factory=dict)
    """The concrete base references policies name, as read from their registries (or why they could not be)."""
    reports: Sequence[VulnerabilityReport] = ()
    """The workload's own reports: those filed under it or one of ``report_owners``."""
    report_owners: tuple[tuple[str, str], ...] = ()
    """(kind, name) of the objects whose reports speak for this workload: itself, and for a Deployment
    its current ReplicaSet (Trivy Operator files a Deployment's reports under the ReplicaSet)."""
    reports_listed: bool = True
    """False while the cluster's VulnerabilityReports are still being listed (the watch just started): vulnerability
    rules are then undecided (ReportsPending), never decided on part of the reports."""
    digest_reports: Mapping[str, Sequence[DigestReports]] = field(default_factory=dict)
    """Per image digest, the reports filed for it under any workload (those the cluster view trusts)."""
    base_options: Mapping[str, BaseOptions] = field(default_factory=dict)
    """Per base reference (by tag), the base and its slimmer candidates as measured (absent: not measured)."""
    base_versions: Mapping[str, FactsOrError] = field(default_factory=dict)
    """For requireCurrentBase: the bases images name by annotation, read by tag (now) and by digest (then)."""
    base_history: Mapping[str, Sequence[ImageFacts]] = field(default_factory=dict)
    """Per base reference, earlier versions its tag pointed to that slimguard read (newest first)."""
    baselines: Mapping[str, ImageFacts] = field(default_factory=dict)
    """Per image reference, the image it is compared with for growth (``check --baseline``): its manifests and
    configs. None here (the cluster; a check without a baseline): the growth rules do not apply."""
