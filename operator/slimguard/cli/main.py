"""The ``slimguard`` command."""

from __future__ import annotations

import functools
import inspect
import logging
import os
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from slimguard import __version__, exhaustion
from slimguard.core.evaluation.outcome import EXIT_ERROR
from slimguard.listen import ANY_ADDRESS, listen_host, liveness_url
from slimguard.registry.guard import AddressPolicy
from slimguard.registry.provider_config import InvalidProviderConfig, load_credential_providers
from slimguard.registry.proxy import ProxySettingInvalid, ProxySettings
from slimguard.registry.settings import RegistrySettings
from slimguard.registry.trust import CaBundleUnreadable, registry_tls_context

if typing.TYPE_CHECKING:
    from slimguard.core.model.running_image import RunningImage, WorkloadName


class Command(typer.core.TyperCommand):
    """A command whose help names each argument by its metavar alone (``IMAGE``, not ``IMAGE <list[str]>``)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for param in self.params:
            if isinstance(param, typer.core.TyperArgument) and param.metavar is not None:
                param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
        super().format_help(ctx, formatter)


app = typer.Typer(
    help="slimguard keeps container images slim: policies checked in the cluster and in CI.",
    no_args_is_help=True,
    add_completion=False,
    # click's own help: two columns that wrap to the terminal (80 at most), where rich's tables cut option names
    rich_markup_mode=None,
    context_settings={"max_content_width": 80},
)


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"slimguard {__version__}")
        raise typer.Exit()


@app.callback()
def slimguard_options(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print slimguard's version and exit."),
    ] = False,
) -> None:
    """Options before the command (``slimguard --version``); each command has its own after its name."""


KubeconfigOption = Annotated[
    str | None,
    typer.Option(
        metavar="FILE",
        help="Path to a kubeconfig; default: in-cluster config, then $KUBECONFIG.",
        envvar="SLIMGUARD_KUBECONFIG",
    ),
]
AllowLoopback = Annotated[
    bool,
    typer.Option(
        "--allow-loopback-registries/--no-allow-loopback-registries",
        show_default=False,
        help="Allow registries on loopback addresses (labs and tests).",
        envvar="SLIMGUARD_ALLOW_LOOPBACK_REGISTRIES",
    ),
]
AllowPrivate = Annotated[
    bool,
    typer.Option(
        "--allow-private-registries/--no-allow-private-registries",
        show_default=False,
        help="Allow registries on private (RFC 1918 / ULA) addresses.",
        envvar="SLIMGUARD_ALLOW_PRIVATE_REGISTRIES",
    ),
]
RegistryAllowlist = Annotated[
    list[str] | None,
    typer.Option("--registry", metavar="HOST", help="Only contact these registry hosts (globs, repeatable)."),
]
CaFiles = Annotated[
    list[str] | None,
    typer.Option(
        "--ca-file",
        metavar="FILE",
        help="Extra CA bundle for registries (repeatable).",
        envvar="SLIMGUARD_REGISTRY_CA_FILES",
    ),
]
TrustedReportNamespaces = Annotated[
    list[str] | None,
    typer.Option(
        "--trusted-report-namespaces",
        help="Only VulnerabilityReports in these namespaces (NS[,NS], repeatable) speak for an image in every "
        "namespace; a report elsewhere speaks only for its own namespace. Default: all namespaces.",
        envvar="SLIMGUARD_TRUSTED_REPORT_NAMESPACES",
    ),
]
ReportPageSize = Annotated[
    int | None,
    typer.Option(
        "--report-page-size",
        help="ImageReports and VulnerabilityReports per LIST page (each page is decoded whole, then dropped). "
        "Default: 100.",
        envvar="SLIMGUARD_REPORT_PAGE_SIZE",
        min=1,
        max=10_000,
    ),
]
PlainHttp = Annotated[
    list[str] | None,
    typer.Option(
        "--plain-http-registry", metavar="HOST", help="Registry host spoken to over plain HTTP (labs only; repeatable)."
    ),
]
TagTtl = Annotated[
    float,
    typer.Option(
        "--tag-ttl",
        metavar="SECONDS",
        help="Seconds a tag's digest counts as current; tags in use are re-resolved in the background ahead of it.",
        envvar="SLIMGUARD_TAG_TTL",
        min=1,
    ),
]
TagMaxStale = Annotated[
    float,
    typer.Option(
        "--tag-max-stale",
        metavar="SECONDS",
        help="Seconds past its TTL a tag's last digest is still answered while it is re-resolved (slow or failing "
        "registry); an answer lags the registry by at most TTL + this. 0: wait for the registry.",
        envvar="SLIMGUARD_TAG_MAX_STALE",
        min=0,
    ),
]

ProviderConfig = Annotated[
    str | None,
    typer.Option(
        "--image-credential-provider-config",
        metavar="PATH",
        help="The kubelet's credential provider configuration (kind CredentialProviderConfig; a file, or a "
        "directory of them), as on the nodes: images are also read with the credentials its exec providers give "
        "(ECR, Artifact Registry, ACR), after the pull secrets, as the kubelet pulls them. Read at start; with "
        "--image-credential-provider-bin-dir.",
        envvar="SLIMGUARD_IMAGE_CREDENTIAL_PROVIDER_CONFIG",
    ),
]
ProviderBinDir = Annotated[
    str | None,
    typer.Option(
        "--image-credential-provider-bin-dir",
        metavar="DIR",
        help="The directory of the credential providers' binaries, as the kubelet's flag of that name.",
        envvar="SLIMGUARD_IMAGE_CREDENTIAL_PROVIDER_BIN_DIR",
    ),
]
_PROXY_ONLY_FOR_REGISTRIES = "Registry requests only: the Kubernetes API is never reached through it."
HttpsProxy = Annotated[
    str | None,
    typer.Option(
        "--https-proxy",
        metavar="URL",
        help="HTTP(S) proxy for registries spoken to over TLS (all but --plain-http-registry) and their token "
        "services, e.g. http://proxy.example.com:3128; USER:PASSWORD@ in it go to the proxy only. Default: "
        f'$https_proxy or $HTTPS_PROXY; "" for none. {_PROXY_ONLY_FOR_REGISTRIES}',
        envvar="SLIMGUARD_HTTPS_PROXY",
        show_default=False,
    ),
]
HttpProxy = Annotated[
    str | None,
    typer.Option(
        "--http-proxy",
        metavar="URL",
        help="Proxy for plain-HTTP registries and token services (requests and their credentials pass through it "
        f'in the clear). Default: $http_proxy or $HTTP_PROXY; "" for none. {_PROXY_ONLY_FOR_REGISTRIES}',
        envvar="SLIMGUARD_HTTP_PROXY",
        show_default=False,
    ),
]
NoProxy = Annotated[
    list[str] | None,
    typer.Option(
        "--no-proxy",
        metavar="HOSTS",
        help="Registry hosts reached without the proxy (HOST[,HOST], repeatable), as NO_PROXY: a host or domain "
        "(example.com and .example.com match every subdomain too), an IP address or a CIDR, optionally :PORT; * for "
        'all. Default: $no_proxy or $NO_PROXY; "" for none.',
        envvar="SLIMGUARD_NO_PROXY",
        show_default=False,
    ),
]


OPERATOR_EXTRA_MODULES = frozenset({"kopf", "kubernetes", "prometheus_client", "aiohttp", "cryptography"})
"""What ``slimguard[operator]`` adds to ``pip install slimguard`` (the CLI alone), by import name."""


@contextmanager
def operator_extra(command: str) -> Iterator[None]:
    """Around the imports of a command that needs the operator's dependencies: when one is missing, one line
    naming the extra to install and exit 2, not a traceback. Any other missing module is a bug, raised as is."""
    try:
        yield
    except ModuleNotFoundError as error:
        missing = (error.name or "").partition(".")[0]
        if missing not in OPERATOR_EXTRA_MODULES:
            raise
        raise fail(
            f"{command} needs {missing}, which `pip install slimguard` leaves out: pip install 'slimguard[operator]'"
        ) from None


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

PER_REQUEST_LOGGERS = ("kopf.objects", "httpx", "httpcore", "aiohttp.access", "kubernetes", "urllib3")
"""Loggers that write a line per watch event, HTTP request or probe: kept for DEBUG only. At INFO a busy cluster
would log every ReplicaSet update, every apiserver and registry request (httpx's "HTTP Request:") and every
kubelet probe (aiohttp's access log of kopf's liveness endpoint), and writing them costs the webhook real CPU."""


def configure_logging(level: str) -> None:
    """One logger setup for the process: kopf's handler on the root logger, at the level asked for."""
    import kopf

    name = level.upper()
    if name not in LOG_LEVELS:
        raise fail(f"--log-level {level!r} is not one of {', '.join(LOG_LEVELS)}")
    kopf.configure(debug=name == "DEBUG", quiet=name in ("WARNING", "ERROR"))
    logging.getLogger().setLevel(name)
    if name != "DEBUG":
        for logger in PER_REQUEST_LOGGERS:
            logging.getLogger(logger).setLevel(logging.WARNING)


_REGISTRY_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("allow_loopback_registries", AllowLoopback),
    ("allow_private_registries", AllowPrivate),
    ("registry", RegistryAllowlist),
    ("ca_file", CaFiles),
    ("plain_http_registry", PlainHttp),
    ("tag_ttl", TagTtl),
    ("tag_max_stale", TagMaxStale),
    ("image_credential_provider_config", ProviderConfig),
    ("image_credential_provider_bin_dir", ProviderBinDir),
    ("https_proxy", HttpsProxy),
    ("http_proxy", HttpProxy),
    ("no_proxy", NoProxy),
)
_REGISTRY_DEFAULTS: dict[str, Any] = {
    "allow_loopback_registries": False,
    "allow_private_registries": False,
    "registry": None,
    "ca_file": None,
    "plain_http_registry": None,
    "tag_ttl": RegistrySettings.tag_ttl_seconds,
    "tag_max_stale": RegistrySettings.tag_max_stale_seconds,
    "image_credential_provider_config": None,
    "image_credential_provider_bin_dir": None,
    "https_proxy": None,
    "http_proxy": None,
    "no_proxy": None,
}


def registry_settings(
    *,
    allow_loopback_registries: bool = False,
    allow_private_registries: bool = False,
    registry: list[str] | None = None,
    ca_file: list[str] | None = None,
    plain_http_registry: list[str] | None = None,
    tag_ttl: float = RegistrySettings.tag_ttl_seconds,
    tag_max_stale: float = RegistrySettings.tag_max_stale_seconds,
    image_credential_provider_config: str | None = None,
    image_credential_provider_bin_dir: str | None = None,
    https_proxy: str | None = None,
    http_proxy: str | None = None,
    no_proxy: list[str] | None = None,
) -> RegistrySettings:
    """The settings the options give, read and validated here, once: the credential provider configuration
    (InvalidProviderConfig or ValueError naming what is wrong) and the proxies not given as options, from the
    environment."""
    providers = None
    if image_credential_provider_config or image_credential_provider_bin_dir:
        if not (image_credential_provider_config and image_credential_provider_bin_dir):
            raise ValueError(
                "--image-credential-provider-config and --image-credential-provider-bin-dir go together, as for "
                "the kubelet: give both, or neither"
            )
        providers = load_credential_providers(image_credential_provider_config, image_credential_provider_bin_dir)
    return RegistrySettings(
        address_policy=AddressPolicy(
            allow_loopback=allow_loopback_registries,
            allow_private=allow_private_registries,
            allowed_registries=tuple(registry or ()),
        ),
        ca_files=tuple(ca_file or ()),
        plain_http_registries=tuple(plain_http_registry or ()),
        tag_ttl_seconds=tag_ttl,
        tag_max_stale_seconds=tag_max_stale,
        credential_providers=providers,
        proxy=ProxySettings.from_options(https_proxy=https_proxy, http_proxy=http_proxy, no_proxy=no_proxy),
    )


SERVER_ONLY_REGISTRY_OPTIONS = frozenset({"tag_ttl", "tag_max_stale"})
"""How long a tag's digest is kept: for the controller and the webhook, which run for days; a CI command resolves
each tag once, so its help does not offer them."""


def with_registry_options(command: Callable[..., None], *, server: bool = False) -> Callable[..., None]:
    """Give ``command`` the registry options, declared once here, as one ``registry_settings`` argument
    (``server``: also those only a long-running process uses)."""
    signature = inspect.signature(command)
    kept = [p for p in signature.parameters.values() if p.name != "registry_settings"]
    offered = [(name, kind) for name, kind in _REGISTRY_OPTIONS if server or name not in SERVER_ONLY_REGISTRY_OPTIONS]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=_REGISTRY_DEFAULTS[name], annotation=option)
        for name, option in offered
    ]

    @functools.wraps(command)
    def wrapper(**arguments: Any) -> None:
        options = {name: arguments.pop(name) for name, _ in offered}
        try:  # now, before anything starts: a bundle read later fails far from its cause (a crash loop says it)
            settings = registry_settings(**options)
            registry_tls_context(settings.ca_files)
        except (CaBundleUnreadable, ProxySettingInvalid, InvalidProviderConfig, ValueError) as error:
            raise fail(str(error)) from None
        command(registry_settings=settings, **arguments)

    hints = typing.get_type_hints(command, include_extras=True)
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p.replace(annotation=hints.get(p.name, p.annotation)) for p in kept] + added
    )
    wrapper.__annotations__ = {p.name: p.annotation for p in kept + added}
    return wrapper


@app.command(cls=Command)
@functools.partial(with_registry_options, server=True)
def controller(
    registry_settings: RegistrySettings,
    kubeconfig: KubeconfigOption = None,
    trusted_report_namespaces: TrustedReportNamespaces = None,
    report_page_size: ReportPageSize = None,
    workers: Annotated[int, typer.Option(help="Workloads evaluated at once.")] = 8,
    audit_interval: Annotated[float, typer.Option(help="Seconds between full re-audits (tags move).")] = 600.0,
    dry_run: Annotated[bool, typer.Option(help="Evaluate and log, but write nothing to the cluster.")] = False,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    liveness: Annotated[
        str | None,
        typer.Option(
            help="Serve a liveness probe, e.g. http://[::]:8080/healthz ([::]: the family of $POD_IP, which the "
            "kubelet probes; outside a Pod IPv6, or IPv4 where the node has no IPv6)."
        ),
    ] = None,
    metrics_port: Annotated[
        int, typer.Option(help="Plain-HTTP port for /metrics; 0 to disable.", envvar="SLIMGUARD_METRICS_PORT")
    ] = 9090,
    metrics_address: Annotated[
        str, typer.Option(help="Address /metrics listens on (:: is every address, IPv6 and IPv4).")
    ] = ANY_ADDRESS,
    image_metrics: Annotated[
        int,
        typer.Option(
            help="Export slimguard_image_bytes{namespace,image} for the N largest images in use (0: off). "
            "One series per image: mind the cardinality."
        ),
    ] = 0,
    policy_reports: Annotated[
        str,
        typer.Option(
            help="Write each workload's verdict as a PolicyReport of this API group (wgpolicyk8s.io, as Kyverno "
            "writes them, or openreports.io), for Policy Reporter and kubectl; none: no reports."
        ),
    ] = "wgpolicyk8s.io",
    report_grace_period: Annotated[
        float,
        typer.Option(help="Seconds an ImageReport of a digest no workload uses any more is kept before removal."),
    ] = 86400.0,
    leader_elect: Annotated[
        bool,
        typer.Option(
            help="Elect one writer among the replicas on a coordination.k8s.io Lease; the others watch and stand "
            "by, and one takes over when the leader goes. On by default, as for Kubernetes' own controllers: a "
            "second copy started by mistake (or by a rollout) then waits instead of writing too. Off with "
            "--dry-run, which writes nothing.",
            envvar="SLIMGUARD_LEADER_ELECT",
        ),
    ] = True,
    leader_elect_resource_name: Annotated[
        str, typer.Option(help="The Lease's name.", envvar="SLIMGUARD_LEADER_ELECT_RESOURCE_NAME")
    ] = "slimguard-controller",
    leader_elect_resource_namespace: Annotated[
        str | None,
        typer.Option(
            help="The Lease's namespace; default: $POD_NAMESPACE, in a Pod its ServiceAccount's, else the "
            "kubeconfig context's.",
            envvar="SLIMGUARD_LEADER_ELECT_RESOURCE_NAMESPACE",
        ),
    ] = None,
    leader_elect_lease_duration: Annotated[
        int,
        typer.Option(help="Seconds a standby waits, after the lease last changed, before it takes the lease."),
    ] = 10,
    leader_elect_renew_deadline: Annotated[
        float,
        typer.Option(help="Seconds the leader keeps writing without a renewal; below the lease duration."),
    ] = 7.0,
    leader_elect_retry_period: Annotated[
        float, typer.Option(help="Seconds between attempts to renew (the leader) or take (a standby) the lease.")
    ] = 2.0,
) -> None:
    """Run the operator: watch ImagePolicies and workloads, annotate verdicts, keep policy status current."""
    with operator_extra("slimguard controller"):
        from slimguard.controller.handlers import run
        from slimguard.controller.settings import ControllerSettings
        from slimguard.engine.view import parse_namespaces
        from slimguard.kube.informer import REPORT_PAGE_SIZE
        from slimguard.kube.leader import ElectionSettings, candidate_identity
        from slimguard.kube.login import own_namespace

        configure_logging(log_level)
    try:
        election = (
            ElectionSettings(
                namespace=leader_elect_resource_namespace or own_namespace(kubeconfig),
                name=leader_elect_resource_name,
                identity=candidate_identity(),
                lease_duration=leader_elect_lease_duration,
                renew_deadline=leader_elect_renew_deadline,
                retry_period=leader_elect_retry_period,
            )
            if leader_elect and not dry_run
            else None
        )
        settings = ControllerSettings(
            kubeconfig=kubeconfig,
            registry=registry_settings,
            workers=workers,
            audit_interval_seconds=audit_interval,
            dry_run=dry_run,
            liveness_endpoint=liveness_url(liveness, pod_ip=os.environ.get("POD_IP")) if liveness else None,
            metrics_port=metrics_port,
            metrics_address=listen_host(metrics_address),
            image_metrics=image_metrics,
            trusted_report_namespaces=parse_namespaces(trusted_report_namespaces),
            report_page_size=report_page_size or REPORT_PAGE_SIZE,
            policy_reports=None if policy_reports == "none" else policy_reports,
            report_grace_seconds=report_grace_period,
            leader_election=election,
            own_process=True,
        )
    except ValueError as error:
        raise fail(str(error)) from None
    with exhaustion.exit_when_exhausted("controller"):
        run(settings)


@app.command(cls=Command)
@functools.partial(with_registry_options, server=True)
def webhook(
    registry_settings: RegistrySettings,
    tls_cert_file: Annotated[
        str, typer.Option(help="Serving certificate (PEM); reloaded when it changes.", envvar="SLIMGUARD_TLS_CERT_FILE")
    ] = "",
    tls_key_file: Annotated[str, typer.Option(help="Serving key (PEM).", envvar="SLIMGUARD_TLS_KEY_FILE")] = "",
    certificate_secret: Annotated[
        str,
        typer.Option(
            help="Instead of the files: make and rotate a CA and serving certificate of the webhook's own, kept in "
            "this Secret (created if missing) in --namespace, and keep the caBundle of --webhook-configuration "
            "trusting it. Every replica may write; one write wins.",
            envvar="SLIMGUARD_CERTIFICATE_SECRET",
        ),
    ] = "",
    namespace: Annotated[
        str | None,
        typer.Option(
            help="The webhook's namespace: its certificate Secret's and its Service's. Default: $POD_NAMESPACE, "
            "else the in-cluster ServiceAccount's.",
            envvar="POD_NAMESPACE",
        ),
    ] = None,
    service: Annotated[
        str, typer.Option(help="The webhook's Service: its DNS names go into the certificate (--certificate-secret).")
    ] = "",
    webhook_configuration: Annotated[
        str,
        typer.Option(help="The ValidatingWebhookConfiguration whose caBundle it keeps (--certificate-secret)."),
    ] = "",
    certificate_host: Annotated[
        list[str] | None,
        typer.Option(help="Another DNS name or IP the certificate names, e.g. a webhook called by url (repeatable)."),
    ] = None,
    ca_validity_days: Annotated[
        float, typer.Option(help="Lifetime of the webhook's own CA; renewed with a third of it left.", min=0.001)
    ] = 365.0,
    certificate_validity_days: Annotated[
        float,
        typer.Option(help="Lifetime of its serving certificate; renewed with a third of it left.", min=0.001),
    ] = 90.0,
    ca_trust_delay: Annotated[
        float,
        typer.Option(help="Seconds a new CA is in the caBundle before it signs the certificate served.", min=0),
    ] = 300.0,
    ca_overlap: Annotated[
        float,
        typer.Option(help="Seconds the old CA stays in the caBundle after the new one signs.", min=0),
    ] = 3600.0,
    kubeconfig: KubeconfigOption = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on, for reviews and /metrics (:: is every address, IPv6 and IPv4).")
    ] = ANY_ADDRESS,
    port: Annotated[int, typer.Option(help="HTTPS port for reviews, /readyz and /healthz.")] = 8443,
    path: Annotated[
        str, typer.Option(help="Path reviews are posted to: the webhook configuration's clientConfig path.")
    ] = "/validate",
    timeout_seconds: Annotated[float, typer.Option(help="The webhook configuration's timeoutSeconds.")] = 3.0,
    shutdown_delay: Annotated[float, typer.Option(help="Seconds unready before the listener closes.")] = 5.0,
    cert_reload_interval: Annotated[
        float, typer.Option(help="Seconds between checks for a rotated certificate: its files, or its Secret.")
    ] = 10.0,
    metrics_port: Annotated[
        int, typer.Option(help="Plain-HTTP port for /metrics; 0 to disable.", envvar="SLIMGUARD_METRICS_PORT")
    ] = 9090,
    trusted_report_namespaces: TrustedReportNamespaces = None,
    report_page_size: ReportPageSize = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    decision_times: Annotated[
        Path | None,
        typer.Option(
            help="For benchmarks: append every review's decision time (ns), and how much of it was CPU and "
            "garbage collection, to this file and answer with a Server-Timing header.",
            hidden=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Run the validating admission webhook: reject bloated images before they run."""
    with operator_extra("slimguard webhook"):
        from prometheus_client import start_http_server

        from slimguard.admission.certificate_authority import RotationSchedule
        from slimguard.admission.certificate_manager import SelfManagedCertificates
        from slimguard.admission.certificates import CertificateReloader, CertificateUnavailable
        from slimguard.admission.handlers import run as run_webhook
        from slimguard.admission.server import ServerSettings
        from slimguard.admission.settings import WebhookSettings
        from slimguard.engine.view import parse_namespaces
        from slimguard.kube.informer import REPORT_PAGE_SIZE

        configure_logging(log_level)
    try:
        certificates = None
        if certificate_secret:
            certificates = SelfManagedCertificates(
                secret_name=certificate_secret,
                namespace=namespace or _service_account_namespace(),
                service=service,
                webhook_configuration=webhook_configuration,
                extra_hosts=tuple(certificate_host or ()),
                schedule=RotationSchedule(
                    ca_validity=timedelta(days=ca_validity_days),
                    serving_validity=timedelta(days=certificate_validity_days),
                    trust_delay=timedelta(seconds=ca_trust_delay),
                    overlap=timedelta(seconds=ca_overlap),
                ),
                interval=cert_reload_interval,
            )
        settings = WebhookSettings(
            kubeconfig=kubeconfig,
            registry=registry_settings,
            server=ServerSettings(
                host=host,
                port=port,
                path=path,
                cert_file=tls_cert_file,
                key_file=tls_key_file,
                shutdown_delay=shutdown_delay,
                reload_interval=cert_reload_interval,
                decision_times_file=str(decision_times or ""),
            ),
            timeout_seconds=timeout_seconds,
            trusted_report_namespaces=parse_namespaces(trusted_report_namespaces),
            report_page_size=report_page_size or REPORT_PAGE_SIZE,
            certificates=certificates,
            own_process=True,
        )
    except ValueError as error:
        raise fail(str(error)) from None
    if decision_times is not None and not decision_times.parent.is_dir():
        raise fail(f"--decision-times {decision_times}: no directory {decision_times.parent} to write it in")
    if certificates is None:
        try:  # a missing Secret or a bad pair is one clear line at start, not a retry loop inside kopf
            CertificateReloader(tls_cert_file, tls_key_file)
        except CertificateUnavailable as error:
            raise fail(str(error)) from None
    if metrics_port:
        start_http_server(metrics_port, addr=listen_host(host))
    with exhaustion.exit_when_exhausted("webhook"):
        run_webhook(settings)


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _service_account_namespace() -> str:
    """The Pod's namespace as its ServiceAccount token's mount says ("" outside a Pod)."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    except OSError:
        return ""


@app.command(cls=Command)
def version() -> None:
    """Print slimguard's version (the number alone, for scripts)."""
    typer.echo(__version__)


# --- the CI commands: check, inspect, lint ------------------------------------------------------------------
# Exit status: 0 pass, 1 violations (Enforce; Warn only with --strict), 2 usage, policy, registry or engine
# errors: a check that could not be completed is never a pass.


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    SARIF = "sarif"
    GITHUB = "github"


FormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        "-f",
        metavar="FORMAT",
        help="table (rich on a terminal, plain when piped), json, sarif, or github (workflow command annotations).",
    ),
]


class InspectFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


InspectFormatOption = Annotated[
    InspectFormat,
    typer.Option("--format", "-f", metavar="FORMAT", help="table (rich on a terminal, plain when piped) or json."),
]
OutputOption = Annotated[
    str | None,
    typer.Option("--output", "-o", metavar="FILE", help="Write the report to this file instead of standard output."),
]
StrictOption = Annotated[bool, typer.Option("--strict", help="Warn-level findings fail too (exit 1).")]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="No notes and no progress on standard error; errors still.")
]
TimeoutOption = Annotated[
    str | None,
    typer.Option(
        "--timeout",
        metavar="DURATION",
        help="Stop the whole command after this long (90s, 5m, 1h30m): exit 2, nothing left running.",
        show_default=False,
    ),
]
DockerOption = Annotated[
    bool, typer.Option("--docker", help="Read the images from the local Docker engine ($DOCKER_HOST), not a registry.")
]
DockerHostOption = Annotated[
    str | None,
    typer.Option(
        metavar="URL", help="The Docker engine to read, e.g. unix:///var/run/docker.sock; default $DOCKER_HOST."
    ),
]
PolicyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--policy", "-p", metavar="FILE", help="An ImagePolicy YAML file (repeatable; a file may hold several)."
    ),
]
InputOption = Annotated[
    str | None,
    typer.Option(
        "--input",
        metavar="ARCHIVE",
        help="Read the images from an archive, not a registry: a docker save tarball, or an OCI image layout (a "
        "directory or its tar). Images named then are images in it (an archive of one image: the name it is "
        "checked under).",
    ),
]


ContextOption = Annotated[
    str | None,
    typer.Option("--context", metavar="NAME", help="The kubeconfig context to use (default: its current one)."),
]
PlatformOption = Annotated[
    list[str] | None,
    typer.Option(
        "--platform", metavar="OS/ARCH", help="Platforms to read, e.g. linux/arm64 (default: every one listed)."
    ),
]
KnownBaseOption = Annotated[
    list[str] | None,
    typer.Option("--known-base", metavar="IMAGE", help="A base image to recognise by shared layers (repeatable)."),
]
MeasureCompressedOption = Annotated[
    bool,
    typer.Option(
        "--measure-compressed",
        help="With --docker or --input: gzip the layers kept uncompressed (streamed, never on disk) to measure "
        "compressed size.",
    ),
]


def _seconds(timeout: str | None) -> float | None:
    from slimguard.core.model.duration import parse_duration

    if timeout is None:
        return None
    try:
        return parse_duration(timeout)
    except ValueError as error:
        raise fail(f"--timeout {error}") from None


async def _running_in_cluster(
    workload_text: str, namespace: str | None, kubeconfig: str | None, context: str | None
) -> tuple[WorkloadName, str, tuple[RunningImage, ...]]:
    """What ``--baseline-from-cluster`` names: the workload, its namespace, and per container the digest it runs."""
    from slimguard.core.model.running_image import parse_workload_name

    workload = parse_workload_name(workload_text)
    with operator_extra("slimguard check --baseline-from-cluster"):
        from slimguard.kube.running_images import context_namespace, read_running_images

        where = namespace or context_namespace(kubeconfig, context)
        return workload, where, await read_running_images(workload, where, kubeconfig=kubeconfig, context=context)


def _one_source(*, docker: bool, archive: str | None) -> None:
    if docker and archive is not None:
        raise fail("give --docker or --input ARCHIVE, not both")


def fail(message: str) -> typer.Exit:
    """One clear line on standard error, exit 2: bad input is never a traceback."""
    typer.echo(f"slimguard: error: {message}", err=True)
    return typer.Exit(EXIT_ERROR)


def emit(text: str, output: str | None) -> None:
    if output is None:
        typer.echo(text)
        return
    try:
        Path(output).write_text(text + "\n")
    except OSError as error:
        raise fail(f"cannot write {output}: {error.strerror or error}") from None


def emit_report(
    document: dict[str, Any],
    format: OutputFormat,
    output: str | None,
    *,
    table: Callable[[dict[str, Any], Any], None],
    sarif: Callable[..., str] | None,
    github: Callable[[dict[str, Any]], str] | None = None,
) -> None:
    import json

    from rich.console import Console

    if format is OutputFormat.JSON:
        emit(json.dumps(document, indent=2), output)
    elif format is OutputFormat.SARIF:
        if sarif is None:
            raise fail("--format sarif is for check, lint and diff findings")
        emit(sarif(document, version=__version__), output)
    elif format is OutputFormat.GITHUB:
        if github is None:
            raise fail("--format github is for check, lint and diff findings")
        emit(github(document), output)
    elif output is None:
        table(document, Console(soft_wrap=False))
    else:
        try:
            with Path(output).open("w") as out:
                table(document, Console(file=out, force_terminal=False, width=200))
        except OSError as error:
            raise fail(f"cannot write {output}: {error.strerror or error}") from None


@app.command(cls=Command)
@with_registry_options
def check(
    registry_settings: RegistrySettings,
    images: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="IMAGE",
            help="Image references (a registry's, the engine's with --docker, an archive's with --input: default "
            "every image it names).",
            show_default=False,
        ),
    ] = None,
    policy: PolicyOption = None,
    cluster: Annotated[
        bool, typer.Option("--cluster", help="Use the ImagePolicies of the cluster in the current kubeconfig.")
    ] = False,
    kubeconfig: KubeconfigOption = None,
    docker: DockerOption = False,
    docker_host: DockerHostOption = None,
    archive: InputOption = None,
    measure_compressed: MeasureCompressedOption = False,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            metavar="IMAGE|REPORT",
            help="What maxGrowth and maxGrowthBytes compare with: an image (read as the checked one is), or a JSON "
            "report of an earlier check or diff (--format json).",
        ),
    ] = None,
    baseline_from_cluster: Annotated[
        str | None,
        typer.Option(
            "--baseline-from-cluster",
            metavar="KIND/NAME",
            help="The baseline is what this workload runs (e.g. deployment/web): the digest its spec pins, else "
            "the one its Pods report, else its tag's ImageReport; per image, the container running the same "
            "repository.",
        ),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace", "-n", metavar="NAME", help="The workload's namespace; default: the kubeconfig context's."
        ),
    ] = None,
    container: Annotated[
        str | None,
        typer.Option("--container", "-c", metavar="NAME", help="The workload's container whose image is the baseline."),
    ] = None,
    context: ContextOption = None,
    format: FormatOption = OutputFormat.TABLE,
    output: OutputOption = None,
    strict: StrictOption = False,
    quiet: QuietOption = False,
    timeout: TimeoutOption = None,
) -> None:
    """Check images against ImagePolicies, as the cluster would: exit 0 pass, 1 violations, 2 errors."""
    from slimguard.cli.check import check_images, load_cluster_policies, load_policy_files, open_sources
    from slimguard.cli.diff import baselines_for, baselines_running, growth_note, is_report_file
    from slimguard.cli.github import check_github
    from slimguard.cli.render import render_check
    from slimguard.cli.running import Voice, run_command
    from slimguard.cli.sarif import check_sarif
    from slimguard.core.errors import SlimguardError
    from slimguard.core.evaluation.plan import needs_of
    from slimguard.core.reports.report import check_document

    seconds = _seconds(timeout)
    voice = Voice(quiet=quiet)
    if bool(policy) == cluster:
        raise fail("give --policy FILE (one or more) or --cluster, not both and not neither")
    _one_source(docker=docker, archive=archive)
    if not images and archive is None:
        raise fail("give an image reference (or --input ARCHIVE)")
    if baseline is not None and baseline_from_cluster is not None:
        raise fail("give --baseline or --baseline-from-cluster, not both")
    if baseline_from_cluster is None and (namespace is not None or container is not None):
        raise fail("--namespace and --container name the workload of --baseline-from-cluster: give it too")
    if container is not None and len(images or ()) > 1:
        raise fail("--container names one baseline: check one image with it (or leave it out to match by repository)")

    async def run() -> dict[str, Any]:
        if policy:
            policies = load_policy_files(policy)
        else:
            with operator_extra("slimguard check --cluster"):  # the cluster is read with the kubernetes client
                policies = await load_cluster_policies(kubeconfig, context=context)
        running = None
        if baseline_from_cluster is not None:
            running = await _running_in_cluster(baseline_from_cluster, namespace, kubeconfig, context)
        # A baseline image is read as the checked ones are: from the engine or the archive when they hold it.
        baseline_image = baseline if baseline is not None and not is_report_file(baseline) else None
        sources = open_sources(
            [*(images or ()), *([baseline_image] if baseline_image and images else [])],
            registry=registry_settings,
            docker=docker,
            docker_host=docker_host,
            measure_compressed=measure_compressed,
            archive=archive,
        )
        named = sources.archive.names if sources.archive is not None else images or ()
        checked = [image for image in named if image != baseline_image or image in (images or ())]
        compared_with = baseline if running is None else f"{running[0]} in namespace {running[1]}"
        if (note := growth_note(policies, compared_with)) is not None:
            voice.note(note)
        # Layers streamed: gzipped to measure them, or read for their contents (or sizes) from a registry.
        needs = [needs_of(p.spec.rules) for p in policies]
        long = measure_compressed or any(n is not None and (n.content or n.uncompressed) for n in needs)
        try:
            with voice.progress(f"checking {', '.join(checked) or 'the archive'}: reading layers", long=long):
                if running is not None:
                    baselines, notes = await baselines_running(checked, *running, container=container, sources=sources)
                    for line in notes:
                        voice.note(line)
                else:
                    baselines = await baselines_for(checked, baseline, sources) if baseline is not None else {}
                results = await check_images(checked, policies, sources, strict=strict, baselines=baselines)
        finally:
            await sources.aclose()
        status = max((result.exit_status for result in results), default=0)
        return check_document(
            results,
            policies,
            source=sources.name,
            version=__version__,
            exit_status=status,
            archive=archive,
            baseline=compared_with,
        )

    try:
        document = run_command(run(), timeout=seconds)
    except SlimguardError as error:
        raise fail(str(error)) from None
    emit_report(document, format, output, table=render_check, sarif=check_sarif, github=check_github)
    raise typer.Exit(document["exitCode"])


@app.command(name="inspect", cls=Command)
@with_registry_options
def inspect_command(
    registry_settings: RegistrySettings,
    image: Annotated[
        str | None,
        typer.Argument(
            metavar="IMAGE",
            help="An image reference (with --input, an image in the archive: optional when it holds one).",
            show_default=False,
        ),
    ] = None,
    docker: DockerOption = False,
    docker_host: DockerHostOption = None,
    archive: InputOption = None,
    platform: PlatformOption = None,
    known_base: KnownBaseOption = None,
    policy: PolicyOption = None,
    measure_compressed: MeasureCompressedOption = False,
    content: Annotated[
        bool, typer.Option("--content", help="Read the layers (streamed): package count, tools, wasted bytes.")
    ] = False,
    format: InspectFormatOption = InspectFormat.TABLE,
    output: OutputOption = None,
    quiet: QuietOption = False,
    timeout: TimeoutOption = None,
) -> None:
    """Show an image: size per platform, layers by size with the step that made each, base image, user."""
    from slimguard.cli.check import inspect_image, load_policy_files, only_image, open_sources
    from slimguard.cli.render import render_inspect
    from slimguard.cli.running import Voice, run_command
    from slimguard.core.errors import SlimguardError
    from slimguard.core.model.platform import Platform
    from slimguard.core.reports.report import inspect_document

    seconds = _seconds(timeout)
    voice = Voice(quiet=quiet)
    try:
        platforms = [Platform.parse(text) for text in platform or ()]
    except ValueError as error:
        raise fail(str(error)) from None
    _one_source(docker=docker, archive=archive)
    if image is None and archive is None:
        raise fail("give an image reference (or --input ARCHIVE)")

    async def run() -> dict[str, Any]:
        policies = load_policy_files(policy) if policy else ()
        sources = open_sources(
            [image] if image else [],
            registry=registry_settings,
            docker=docker,
            docker_host=docker_host,
            measure_compressed=measure_compressed,
            archive=archive,
            unnamed_ok=True,
        )
        try:
            shown = image or only_image(sources, archive)
            # From a registry inspect reads every layer's uncompressed size (a few bytes of each): not long.
            with voice.progress(f"inspecting {shown}: reading layers", long=content or measure_compressed):
                inspected = await inspect_image(
                    shown,
                    sources,
                    platforms=platforms,
                    known_bases=known_base or (),
                    policies=policies,
                    content=content,
                )
        finally:
            await sources.aclose()
        return inspect_document(inspected, version=__version__)

    try:
        document = run_command(run(), timeout=seconds)
    except SlimguardError as error:
        raise fail(str(error)) from None
    emit_report(document, OutputFormat(format.value), output, table=render_inspect, sarif=None)


class DiffFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    SARIF = "sarif"
    MARKDOWN = "markdown"
    GITHUB = "github"


@app.command(name="diff", cls=Command)
@with_registry_options
def diff_command(
    registry_settings: RegistrySettings,
    old: Annotated[
        str, typer.Argument(metavar="OLD", help="The image before (a registry's, the engine's, the archive's).")
    ],
    new: Annotated[str, typer.Argument(metavar="NEW", help="The image after.")],
    docker: DockerOption = False,
    docker_host: DockerHostOption = None,
    archive: InputOption = None,
    platform: PlatformOption = None,
    known_base: KnownBaseOption = None,
    measure_compressed: MeasureCompressedOption = False,
    uncompressed: Annotated[
        bool,
        typer.Option(
            "--uncompressed",
            help="From a registry, also read each layer's uncompressed size (a few bytes of each layer blob).",
        ),
    ] = False,
    content: Annotated[
        bool,
        typer.Option("--content", help="Read the layers (streamed): packages added and removed, tools, wasted bytes."),
    ] = False,
    format: Annotated[
        DiffFormat,
        typer.Option(
            "--format",
            "-f",
            metavar="FORMAT",
            help="table, json, sarif, markdown (a pull-request comment) or github (notices).",
        ),
    ] = DiffFormat.TABLE,
    output: OutputOption = None,
    quiet: QuietOption = False,
    timeout: TimeoutOption = None,
) -> None:
    """Compare two images: sizes per platform, layers added, removed and changed, bases (exit 0; 2 on errors).

    Reads manifests and configs only, unless --uncompressed or --content."""
    from slimguard.cli.check import open_sources
    from slimguard.cli.diff import diff_two
    from slimguard.cli.github import diff_github
    from slimguard.cli.render import render_diff
    from slimguard.cli.running import Voice, run_command
    from slimguard.cli.sarif import diff_sarif
    from slimguard.core.errors import SlimguardError
    from slimguard.core.model.platform import Platform
    from slimguard.core.reports.image_diff import diff_document, diff_markdown

    seconds = _seconds(timeout)
    voice = Voice(quiet=quiet)
    try:
        platforms = [Platform.parse(text) for text in platform or ()]
    except ValueError as error:
        raise fail(str(error)) from None
    _one_source(docker=docker, archive=archive)

    async def run() -> dict[str, Any]:
        sources = open_sources(
            [old, new],
            registry=registry_settings,
            docker=docker,
            docker_host=docker_host,
            measure_compressed=measure_compressed,
            archive=archive,
            unnamed_ok=True,
        )
        long = content or uncompressed or measure_compressed
        try:
            with voice.progress(f"comparing {old} and {new}: reading layers", long=long):
                compared = await diff_two(
                    old,
                    new,
                    sources,
                    platforms=platforms,
                    known_bases=known_base or (),
                    uncompressed=uncompressed,
                    content=content,
                )
        finally:
            await sources.aclose()
        return diff_document(
            compared, old_image=old, new_image=new, source=sources.name, version=__version__, content=content
        )

    try:
        document = run_command(run(), timeout=seconds)
    except SlimguardError as error:
        raise fail(str(error)) from None
    if format is DiffFormat.MARKDOWN:
        emit(diff_markdown(document).rstrip("\n"), output)
        return
    emit_report(document, OutputFormat(format.value), output, table=render_diff, sarif=diff_sarif, github=diff_github)


@app.command(cls=Command)
def lint(
    dockerfiles: Annotated[
        list[str] | None,
        typer.Argument(metavar="DOCKERFILE", help="Dockerfiles to lint (default: ./Dockerfile).", show_default=False),
    ] = None,
    build_arg: Annotated[
        list[str] | None,
        typer.Option(metavar="NAME=VALUE", help="As docker build --build-arg (resolves FROM ${NAME}); repeatable."),
    ] = None,
    format: FormatOption = OutputFormat.TABLE,
    output: OutputOption = None,
    strict: StrictOption = False,
) -> None:
    """Lint Dockerfiles against the lesson (rules SG1xx, each with a fix): exit 0 pass, 1 errors, 2 unreadable."""
    from slimguard.cli.github import lint_github
    from slimguard.cli.render import render_lint
    from slimguard.cli.sarif import lint_sarif
    from slimguard.core.lint import UnparsableDockerfile, lint_exit_status, parse_dockerfile
    from slimguard.core.lint import lint as lint_dockerfile
    from slimguard.core.reports.report import lint_document

    args = {}
    for text in build_arg or ():
        name, equals, value = text.partition("=")
        if not equals or not name:
            raise fail(f"--build-arg {text!r} is not NAME=VALUE")
        args[name] = value
    findings = {}
    status = 0
    for path in dockerfiles or ["Dockerfile"]:
        file = Path(path)
        try:
            text = file.read_text()
        except UnicodeDecodeError:
            raise fail(f"{path}: not a Dockerfile (not UTF-8 text)") from None
        except OSError as error:
            raise fail(f"{path}: cannot be read ({error.strerror or error})") from None
        ignore_file = file.parent / ".dockerignore"
        try:
            ignore = ignore_file.read_text() if ignore_file.is_file() else None
            parsed = parse_dockerfile(text, path=path, dockerignore=ignore, build_args=args)
        except UnparsableDockerfile as error:
            raise fail(str(error)) from None
        except (OSError, UnicodeDecodeError) as error:
            raise fail(f"{ignore_file}: cannot be read ({error})") from None
        findings[path] = lint_dockerfile(parsed)
        status = max(status, lint_exit_status(findings[path], strict=strict))
    document = lint_document(findings, version=__version__, exit_status=status)
    emit_report(document, format, output, table=render_lint, sarif=lint_sarif, github=lint_github)
    raise typer.Exit(status)


if __name__ == "__main__":
    app()
