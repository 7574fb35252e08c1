"""The controller's settings: from flags and environment, validated once at start-up, logged once."""

from __future__ import annotations

from dataclasses import dataclass, field

from slimguard.core.reports.policy_report import REPORT_APIS
from slimguard.engine.view import describe_namespaces
from slimguard.kube.informer import REPORT_PAGE_SIZE
from slimguard.kube.leader import ElectionSettings
from slimguard.listen import ANY_ADDRESS
from slimguard.registry.settings import RegistrySettings


@dataclass(frozen=True)
class ControllerSettings:
    kubeconfig: str | None = None
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    workers: int = 8
    audit_interval_seconds: float = 600.0
    dry_run: bool = False
    liveness_endpoint: str | None = None
    metrics_port: int = 0
    metrics_address: str = ANY_ADDRESS
    image_metrics: int = 0
    """Export slimguard_image_bytes for this many of the largest images in use (0: off; one series each)."""
    trusted_report_namespaces: frozenset[str] | None = None
    """Namespaces whose VulnerabilityReports speak for an image in every namespace; None: all."""
    policy_reports: str | None = "wgpolicyk8s.io"
    """The API group verdicts are written to as PolicyReports (core.reports.policy_report.REPORT_APIS); None: none."""
    report_grace_seconds: float = 24 * 3600.0
    """How long the ImageReport of a digest no workload uses any more is kept (it may come back: a rollback)."""
    report_page_size: int = REPORT_PAGE_SIZE
    """Objects per LIST page of ImageReports and VulnerabilityReports (each page is decoded whole, then dropped)."""
    leader_election: ElectionSettings | None = None
    """The Lease replicas elect their one writer on; None: this process writes without asking (the CLI elects
    by default, see ``slimguard controller --help``; tests running one controller in-process do not)."""
    own_process: bool = False
    """The process runs this component alone (the CLI): it may tune the process, setting start-up objects aside
    from garbage collection (slimguard.heap). Tests running components in their own process leave it off."""

    def __post_init__(self) -> None:
        if not 1 <= self.report_page_size <= 10_000:
            raise ValueError("--report-page-size must be between 1 and 10000")
        if self.workers < 1:
            raise ValueError("--workers must be at least 1")
        if self.audit_interval_seconds < 10:
            raise ValueError("--audit-interval must be at least 10 seconds")
        if self.image_metrics < 0:
            raise ValueError("--image-metrics must be 0 (off) or a number of images")
        if self.policy_reports is not None and self.policy_reports not in REPORT_APIS:
            raise ValueError(f"--policy-reports must be one of {', '.join(REPORT_APIS)} or none")
        if self.report_grace_seconds <= 0:
            raise ValueError("--report-grace-period must be a positive number of seconds")
        if self.dry_run and self.leader_election is not None:
            raise ValueError("--dry-run writes nothing, so it takes no lease: run it with --no-leader-elect")

    def describe(self) -> str:
        policy = self.registry.address_policy
        return (
            f"workers={self.workers} audit_interval={self.audit_interval_seconds:g}s dry_run={self.dry_run} "
            f"allow_loopback={policy.allow_loopback} allow_private={policy.allow_private} "
            f"registry_allowlist={list(policy.allowed_registries) or 'any'} extra_cas={len(self.registry.ca_files)} "
            f"{self.registry.proxy.describe()} "
            f"trusted_report_namespaces={describe_namespaces(self.trusted_report_namespaces)} "
            f"report_page_size={self.report_page_size} "
            f"policy_reports={self.policy_reports or 'none'} "
            f"report_grace_period={self.report_grace_seconds:g}s "
            f"leader_election={self.leader_election.describe() if self.leader_election else 'off'} "
            f"credential_providers={self.registry.describe_credential_providers()}"
        )
