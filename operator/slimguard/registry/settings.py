"""Settings of the registry adapter, validated once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from slimguard.registry.guard import AddressPolicy
from slimguard.registry.provider_config import CredentialProviderSettings
from slimguard.registry.proxy import ProxySettings


@dataclass(frozen=True)
class RegistrySettings:
    address_policy: AddressPolicy = field(default_factory=AddressPolicy)
    ca_files: tuple[str, ...] = ()
    """Extra CA bundles to trust besides the system's (private registries with their own CA)."""
    plain_http_registries: tuple[str, ...] = ()
    """Registries spoken to over plain HTTP (labs only); all others use TLS."""
    proxy: ProxySettings = field(default_factory=ProxySettings)
    """The HTTP(S) proxies registries are reached through (none by default), for registry traffic only."""
    timeout_seconds: float = 10.0
    max_manifest_bytes: int = 4 * 1024 * 1024
    max_config_bytes: int = 8 * 1024 * 1024
    retries: int = 3
    backoff_seconds: float = 0.5
    max_retry_after_seconds: float = 30.0
    concurrency_per_registry: int = 8
    tag_ttl_seconds: float = 120.0
    """How long a tag's digest counts as current. Tags of images in use are re-resolved in the background
    from `tag_refresh_after_seconds` on, so admissions of a seen image never wait for the registry's HEAD."""
    tag_max_stale_seconds: float = 300.0
    """How long past its TTL a tag's last digest is still answered while it is re-resolved (a slow or failing
    registry). The longest an answer can lag the registry is `tag_ttl_seconds + tag_max_stale_seconds` (7 min
    by default); 0: once the TTL is out, the next lookup waits for the registry."""
    tag_refresh_after_seconds: float = 90.0
    """Age from which a tag looked up is re-resolved in the background, ahead of its TTL."""
    failure_ttl_seconds: float = 15.0
    credential_providers: CredentialProviderSettings | None = None
    """The kubelet's credential providers (``--image-credential-provider-config``, ``-bin-dir``), read at start-up;
    None: pull secrets (or, for the CLI, the Docker config) alone."""
    facts_cache_size: int = 4096
    max_platform_manifests: int = 16

    def __post_init__(self) -> None:
        if self.tag_ttl_seconds < 0 or self.tag_max_stale_seconds < 0:
            raise ValueError("the tag TTL and its staleness must not be negative")
        if not 0 <= self.tag_refresh_after_seconds <= self.tag_ttl_seconds:
            # A TTL shorter than the default refresh: refresh from three quarters of it.
            object.__setattr__(self, "tag_refresh_after_seconds", self.tag_ttl_seconds * 0.75)

    def describe_credential_providers(self) -> str:
        """For the start-up log line: the providers' names and where they come from, or ``off``."""
        return "off" if self.credential_providers is None else self.credential_providers.describe()
