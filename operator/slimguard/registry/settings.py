"""Settings of the registry adapter, validated once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from slimguard.registry.guard import AddressPolicy


@dataclass(frozen=True)
class RegistrySettings:
    address_policy: AddressPolicy = field(default_factory=AddressPolicy)
    ca_files: tuple[str, ...] = ()
    """Extra CA bundles to trust besides the system's (private registries with their own CA)."""
    plain_http_registries: tuple[str, ...] = ()
    """Registries spoken to over plain HTTP (labs only); all others use TLS."""
    timeout_seconds: float = 10.0
    max_manifest_bytes: int = 4 * 1024 * 1024
    max_config_bytes: int = 8 * 1024 * 1024
    retries: int = 3
    backoff_seconds: float = 0.5
    max_retry_after_seconds: float = 30.0
    concurrency_per_registry: int = 8
    tag_ttl_seconds: float = 120.0
    failure_ttl_seconds: float = 15.0
    facts_cache_size: int = 4096
    max_platform_manifests: int = 16
