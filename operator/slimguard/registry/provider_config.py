"""The kubelet's credential provider configuration (``--image-credential-provider-config``), read as the kubelet
v1.36 reads it (k8s.io/kubernetes ``pkg/credentialprovider/plugin/config.go``) and validated once, at start-up.

A file (JSON or YAML) or a directory of them (``*.json``, ``*.yaml``, ``*.yml``, in name order, merged), each
``kind: CredentialProviderConfig`` of ``kubelet.config.k8s.io/v1`` (or ``v1beta1``, ``v1alpha1``), decoded strictly:
an unknown or repeated field is an error, as the kubelet's strict decoder has it. Whatever is wrong is said at
once, every item by its place (``providers[1].matchImages``) and the provider's name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from slimguard.core.errors import SlimguardError
from slimguard.registry.keyring import InvalidPattern, Location

CONFIG_KIND = "CredentialProviderConfig"
CONFIG_GROUP = "kubelet.config.k8s.io"
CONFIG_API_VERSIONS = tuple(f"{CONFIG_GROUP}/{version}" for version in ("v1", "v1beta1", "v1alpha1"))
EXEC_API_VERSIONS = tuple(f"credentialprovider.kubelet.k8s.io/{version}" for version in ("v1", "v1beta1", "v1alpha1"))
"""What a provider's ``apiVersion`` may be: the version of the request it is sent and of the answer it must give."""
TOKEN_CACHE_TYPES = ("ServiceAccount", "Token")
_CONFIG_SUFFIXES = (".json", ".yaml", ".yml")


class InvalidProviderConfig(SlimguardError):
    """A credential provider configuration the kubelet would refuse; the message names the file and every bad item."""


# --- Go's time.ParseDuration, for metav1.Duration fields ("12h", "1m30s", "500ms", "0s") -------------------------

_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string; ValueError for anything ``time.ParseDuration`` refuses."""
    rest, sign = text, 1.0
    if rest[:1] in ("+", "-"):
        sign, rest = (-1.0 if rest[0] == "-" else 1.0), rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise ValueError(f"invalid duration {text!r}")
    total, position = 0.0, 0
    while position < len(rest):
        part = _DURATION_PART.match(rest, position)
        if part is None or part[1] in ("", "."):
            raise ValueError(f"invalid duration {text!r} (a Go duration: 12h, 1m30s, 500ms)")
        total += float(part[1]) * _UNIT_SECONDS[part[2]]
        position = part.end()
    return sign * total


# --- the file, as decoded ---------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _EnvVar(_Strict):
    name: str
    value: str = ""


class _TokenAttributes(_Strict):
    service_account_token_audience: str = Field("", alias="serviceAccountTokenAudience")
    cache_type: str = Field("", alias="cacheType")
    require_service_account: bool | None = Field(None, alias="requireServiceAccount")
    required_annotation_keys: list[str] | None = Field(None, alias="requiredServiceAccountAnnotationKeys")
    optional_annotation_keys: list[str] | None = Field(None, alias="optionalServiceAccountAnnotationKeys")


class _Provider(_Strict):
    name: str = ""
    match_images: list[str] | None = Field(None, alias="matchImages")
    default_cache_duration: str | None = Field(None, alias="defaultCacheDuration")
    api_version: str = Field("", alias="apiVersion")
    args: list[str] | None = None
    env: list[_EnvVar] | None = None
    token_attributes: _TokenAttributes | None = Field(None, alias="tokenAttributes")


class _ConfigFile(_Strict):
    api_version: str = Field("", alias="apiVersion")
    kind: str = ""
    providers: list[_Provider] | None = None


# --- what the rest of slimguard uses ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderSpec:
    """One exec credential provider, validated."""

    name: str
    match_images: tuple[str, ...]
    default_cache_seconds: float
    api_version: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # its values may be secrets: never logged
    service_account_token_audience: str | None = None
    """Set when the provider wants a service-account token bound to the Pod (``tokenAttributes``), which
    slimguard does not request: such a provider is never run, and says why (``credential_providers.py``)."""


@dataclass(frozen=True)
class CredentialProviderSettings:
    """``--image-credential-provider-config`` and ``--image-credential-provider-bin-dir``, read and validated."""

    config_path: str
    bin_dir: str
    providers: tuple[ProviderSpec, ...]

    def describe(self) -> str:
        return f"{','.join(provider.name for provider in self.providers)} ({self.config_path}, bin {self.bin_dir})"

    def binary(self, provider: ProviderSpec) -> Path:
        """Where the kubelet looks for a provider's executable: the bin directory joined with its name."""
        return Path(self.bin_dir) / provider.name


class _NoDuplicateKeysLoader(yaml.SafeLoader):
    """YAML (and so JSON) whose mappings may not name a key twice: the kubelet's strict decoder refuses that."""


def _mapping_without_duplicates(loader: _NoDuplicateKeysLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"field {key!r} appears twice", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_NoDuplicateKeysLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _mapping_without_duplicates,
)


def load_credential_providers(config_path: str, bin_dir: str) -> CredentialProviderSettings:
    """Read and validate the configuration (a file or a directory of them) and the bin directory, as the kubelet
    does at start-up; InvalidProviderConfig naming the file and every bad item otherwise.

    A provider's binary missing from the bin directory is not an error here (the kubelet refuses to start): it is
    said on every image the provider matches, as an ``error`` finding naming it, so that a node whose binary
    arrives later, or a component whose mount is wrong, never stops the webhook (an unanswered webhook admits
    everything under ``failurePolicy: Ignore``).
    """
    directory = Path(bin_dir)
    if not directory.is_dir():
        raise InvalidProviderConfig(
            f"--image-credential-provider-bin-dir {bin_dir}: "
            + ("not a directory" if directory.exists() else "no such directory")
        )
    files = _config_files(Path(config_path))
    providers: list[ProviderSpec] = []
    seen: dict[str, Path] = {}
    for file in files:
        for provider in _read_file(file):
            if provider.name in seen:
                raise InvalidProviderConfig(
                    f"{file}: provider {provider.name!r} is configured twice (also in {seen[provider.name]})"
                )
            seen[provider.name] = file
            providers.append(provider)
    return CredentialProviderSettings(config_path=config_path, bin_dir=bin_dir, providers=tuple(providers))


def _config_files(path: Path) -> list[Path]:
    where = f"--image-credential-provider-config {path}"
    if path.is_dir():
        try:
            files = sorted(entry for entry in path.iterdir() if entry.suffix in _CONFIG_SUFFIXES and not entry.is_dir())
        except OSError as error:
            raise InvalidProviderConfig(f"{where}: cannot be listed ({error.strerror or error})") from None
        if not files:
            raise InvalidProviderConfig(f"{where}: the directory holds no *.json, *.yaml or *.yml file")
        return files
    if not path.exists():
        raise InvalidProviderConfig(f"{where}: no such file or directory")
    return [path]


def _read_file(file: Path) -> list[ProviderSpec]:
    try:
        text = file.read_text()
    except OSError as error:
        raise InvalidProviderConfig(f"{file}: cannot be read ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise InvalidProviderConfig(f"{file}: not a text file") from None
    try:
        document = yaml.load(text, Loader=_NoDuplicateKeysLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as error:
        raise InvalidProviderConfig(f"{file}: not YAML or JSON ({_first_line(error)})") from None
    if not isinstance(document, dict):
        raise InvalidProviderConfig(f"{file}: not a {CONFIG_KIND} (a mapping with apiVersion and kind)")
    problems = _header_problems(document)
    if problems:
        raise InvalidProviderConfig(f"{file}: " + "; ".join(problems))
    try:
        decoded = _ConfigFile.model_validate(document)
    except ValidationError as error:
        raise InvalidProviderConfig(f"{file}: " + "; ".join(_describe(error, document))) from None
    problems = []
    specs = []
    for index, provider in enumerate(decoded.providers or ()):
        spec, found = _validated(index, provider)
        problems.extend(found)
        if spec is not None:
            specs.append(spec)
    if not decoded.providers:
        problems.append("providers: at least one provider is required")
    names = [provider.name for provider in decoded.providers or ()]
    repeated = sorted({name for name in names if names.count(name) > 1})
    problems.extend(f"providers: the name {name!r} is used twice" for name in repeated)
    if problems:
        raise InvalidProviderConfig(f"{file}: " + "; ".join(problems))
    return specs


def _header_problems(document: dict[str, Any]) -> list[str]:
    api_version, kind = document.get("apiVersion"), document.get("kind")
    problems = []
    if api_version not in CONFIG_API_VERSIONS:
        problems.append(f"apiVersion {api_version!r} is not one of {', '.join(CONFIG_API_VERSIONS)}")
    if kind != CONFIG_KIND:
        problems.append(f"kind {kind!r} is not {CONFIG_KIND}")
    return problems


def _validated(index: int, provider: _Provider) -> tuple[ProviderSpec | None, list[str]]:
    """The kubelet's ``validateCredentialProviderConfig`` for one provider: (spec, problems)."""
    where = f"providers[{index}]" + (f" ({provider.name})" if provider.name else "")
    problems = []
    if not provider.name:
        problems.append(f"{where}.name: required")
    for bad, why in (("/", "cannot contain '/'"), (" ", "cannot contain spaces")):
        if bad in provider.name:
            problems.append(f"{where}.name {provider.name!r}: {why}")
    if provider.name in (".", ".."):
        problems.append(f"{where}.name {provider.name!r}: cannot be '{provider.name}'")
    if not provider.api_version:
        problems.append(f"{where}.apiVersion: required")
    elif provider.api_version not in EXEC_API_VERSIONS:
        problems.append(f"{where}.apiVersion {provider.api_version!r}: not one of {', '.join(EXEC_API_VERSIONS)}")
    if not provider.match_images:
        problems.append(f"{where}.matchImages: at least one image pattern is required")
    for pattern in provider.match_images or ():
        try:
            Location.parse(pattern)
        except InvalidPattern as error:
            problems.append(f"{where}.matchImages: {error}")
    seconds = 0.0
    if provider.default_cache_duration is None:
        problems.append(f"{where}.defaultCacheDuration: required (a Go duration: 12h, 5m, 0s)")
    else:
        try:
            seconds = parse_go_duration(provider.default_cache_duration)
        except ValueError as error:
            problems.append(f"{where}.defaultCacheDuration: {error}")
        if seconds < 0:
            problems.append(f"{where}.defaultCacheDuration {provider.default_cache_duration!r}: must not be negative")
    audience = None
    if provider.token_attributes is not None:
        problems.extend(_token_problems(f"{where}.tokenAttributes", provider))
        audience = provider.token_attributes.service_account_token_audience
    if problems:
        return None, problems
    return (
        ProviderSpec(
            name=provider.name,
            match_images=tuple(provider.match_images or ()),
            default_cache_seconds=seconds,
            api_version=provider.api_version,
            args=tuple(provider.args or ()),
            env=tuple((variable.name, variable.value) for variable in provider.env or ()),
            service_account_token_audience=audience,
        ),
        [],
    )


def _token_problems(where: str, provider: _Provider) -> list[str]:
    attributes = provider.token_attributes
    assert attributes is not None
    problems = []
    if not attributes.service_account_token_audience:
        problems.append(f"{where}.serviceAccountTokenAudience: required")
    if attributes.require_service_account is None:
        problems.append(f"{where}.requireServiceAccount: required")
    if provider.api_version != EXEC_API_VERSIONS[0]:
        problems.append(f"{where}: only for apiVersion {EXEC_API_VERSIONS[0]}")
    required, optional = attributes.required_annotation_keys or [], attributes.optional_annotation_keys or []
    if attributes.require_service_account is False and required:
        problems.append(f"{where}.requiredServiceAccountAnnotationKeys: needs requireServiceAccount: true")
    if both := sorted(set(required) & set(optional)):
        problems.append(f"{where}: annotation keys {both} are both required and optional")
    if attributes.cache_type not in TOKEN_CACHE_TYPES:
        problems.append(f"{where}.cacheType {attributes.cache_type!r}: not one of {', '.join(TOKEN_CACHE_TYPES)}")
    return problems


def _describe(error: ValidationError, document: dict[str, Any]) -> list[str]:
    """Each decoding problem by its place, with the provider's name when it has one; never the value given."""
    described = []
    for problem in error.errors():
        location = problem["loc"]
        place = ""
        for part in location:
            place += f"[{part}]" if isinstance(part, int) else (f".{part}" if place else str(part))
        if len(location) > 1 and location[0] == "providers" and isinstance(location[1], int):
            providers = document.get("providers") or []
            entry = providers[location[1]] if location[1] < len(providers) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str) and name:
                place = place.replace(f"providers[{location[1]}]", f"providers[{location[1]}] ({name})", 1)
        message = "unknown field" if problem["type"] == "extra_forbidden" else problem["msg"].lower()
        described.append(f"{place}: {message}")
    return described


def _first_line(error: yaml.YAMLError) -> str:
    return " ".join(str(error).split())[:300]
