"""The webhook's settings, validated once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from slimguard.admission.certificate_manager import SelfManagedCertificates
from slimguard.admission.server import ServerSettings
from slimguard.engine.view import describe_namespaces
from slimguard.kube.informer import REPORT_PAGE_SIZE
from slimguard.registry.settings import RegistrySettings


@dataclass(frozen=True)
class WebhookSettings:
    kubeconfig: str | None = None
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    timeout_seconds: float = 3.0
    """The ValidatingWebhookConfiguration's timeoutSeconds; slimguard answers before it, whatever happens."""
    trusted_report_namespaces: frozenset[str] | None = None
    """Namespaces whose VulnerabilityReports speak for an image in every namespace; None: all."""
    certificates: SelfManagedCertificates | None = None
    """The webhook makes and rotates its own certificate (``--certificate-secret``); None: it reads the files."""
    report_page_size: int = REPORT_PAGE_SIZE
    """Objects per LIST page of ImageReports and VulnerabilityReports (each page is decoded whole, then dropped)."""
    own_process: bool = False
    """The process runs this component alone (the CLI): it may tune the process, setting start-up objects aside
    from garbage collection (slimguard.heap). Tests running components in their own process leave it off."""

    def __post_init__(self) -> None:
        if not 1 <= self.report_page_size <= 10_000:
            raise ValueError("--report-page-size must be between 1 and 10000")
        if not 1 <= self.timeout_seconds <= 30:
            raise ValueError("--timeout-seconds must be between 1 and 30, as for timeoutSeconds")
        files = bool(self.server.cert_file or self.server.key_file)
        if self.certificates is not None and files:
            raise ValueError(
                "--certificate-secret and --tls-cert-file/--tls-key-file exclude each other: the webhook makes its "
                "own certificate, or serves the one in those files"
            )
        if self.certificates is None and (not self.server.cert_file or not self.server.key_file):
            raise ValueError(
                "the apiserver only calls HTTPS: give --tls-cert-file and --tls-key-file, or --certificate-secret "
                "for a certificate the webhook makes and rotates itself"
            )

    @property
    def deadline_seconds(self) -> float:
        """Leave room for TLS, JSON and the network: answer well inside the apiserver's timeout."""
        return max(0.5, self.timeout_seconds - 0.75)

    def describe(self) -> str:
        return (
            f"port={self.server.port} path={self.server.path} "
            f"timeout={self.timeout_seconds:g}s deadline={self.deadline_seconds:g}s "
            f"allow_loopback={self.registry.address_policy.allow_loopback} {self.registry.proxy.describe()} "
            f"cert={self.certificates.describe() if self.certificates else self.server.cert_file} "
            f"trusted_report_namespaces={describe_namespaces(self.trusted_report_namespaces)} "
            f"report_page_size={self.report_page_size} "
            f"credential_providers={self.registry.describe_credential_providers()}"
            + (f" decision_times={self.server.decision_times_file}" if self.server.decision_times_file else "")
        )
