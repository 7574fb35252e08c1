"""The ImagePolicy model: what the platform team demands, parsed and checked once when a policy is loaded."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from slimguard.core.errors import InvalidPolicy, InvalidReference
from slimguard.core.model.globs import image_matches_any
from slimguard.core.model.kinds import WORKLOAD_KINDS
from slimguard.core.model.platform import DEFAULT_PLATFORMS, Platform
from slimguard.core.model.quantity import QuantityTooLarge, parse_bytes
from slimguard.core.model.reference import ImageReference
from slimguard.core.model.tools import CATEGORY_NAMES

_DURATION_RE = re.compile(r"^(?:[0-9]+[smhd])+$")
_DURATION_PART_RE = re.compile(r"([0-9]+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Bounds the CRD enforces too (crds/): what a timedelta, date arithmetic and the apiserver's int32 and
# quantity comparisons can hold. A value beyond them is the user's error, named, never an OverflowError.
MAX_REPORT_AGE = timedelta(days=36500)
MAX_POLICY_BYTES = 8 * 10**18  # 8E: the largest round quantity the apiserver still compares correctly (int64)
MAX_INT32 = 2**31 - 1


class Mode(StrEnum):
    ENFORCE = "Enforce"
    WARN = "Warn"
    AUDIT = "Audit"

    @property
    def strictness(self) -> int:
        return {Mode.AUDIT: 0, Mode.WARN: 1, Mode.ENFORCE: 2}[self]


class Decision(StrEnum):
    ALLOW = "Allow"
    DENY = "Deny"


def duration_seconds(text: str) -> int:
    """``168h``, ``7d``, ``1h30m`` → seconds, as an exact int: any length can be compared with a bound."""
    if not _DURATION_RE.match(text):
        raise ValueError(f"{text!r} is not a duration such as 24h, 7d or 1h30m")
    return sum(int(n) * _UNITS[unit] for n, unit in _DURATION_PART_RE.findall(text))


def parse_duration(text: str) -> timedelta:
    """``168h``, ``7d``, ``1h30m`` → timedelta."""
    seconds = duration_seconds(text)
    # timedelta() itself would raise OverflowError, which no validator expects.
    if seconds > _MAX_TIMEDELTA_SECONDS:
        raise ValueError(f"{text!r} is longer than any clock can count")
    return timedelta(seconds=seconds)


_MAX_TIMEDELTA_SECONDS = int(timedelta.max.total_seconds())


def _without_nulls(value: Any) -> Any:
    """A field set to null is a field not set, as the apiserver prunes it from a CRD's object before defaulting
    (so `mode: ~` in a policy file means the default mode, as `kubectl apply` of the same file stores it)."""
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


_PLATFORM = re.compile(r"[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?")
_PACKAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9+._-]*")  # dpkg, apk and rpm names alike
_PERCENTAGE = re.compile(r"[0-9]{1,6}([.][0-9]{1,3})?%")  # maxGrowth: 10%, 2.5%; 0% allows no growth


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid")


class LabelSelectorRequirement(_Model):
    key: str
    operator: str
    values: tuple[str, ...] = ()

    @field_validator("operator")
    @classmethod
    def _known_operator(cls, value: str) -> str:
        if value not in {"In", "NotIn", "Exists", "DoesNotExist"}:
            raise ValueError(f"operator {value!r} is not one of In, NotIn, Exists, DoesNotExist")
        return value

    @model_validator(mode="after")
    def _values_fit_the_operator(self) -> LabelSelectorRequirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"{self.operator} needs at least one value (key {self.key!r})")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"{self.operator} takes no values (key {self.key!r})")
        return self


class LabelSelector(_Model):
    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(key) != value for key, value in self.match_labels.items()):
            return False
        for requirement in self.match_expressions:
            present = requirement.key in labels
            value = labels.get(requirement.key)
            if requirement.operator == "In" and value not in requirement.values:
                return False
            if requirement.operator == "NotIn" and present and value in requirement.values:
                return False
            if requirement.operator == "Exists" and not present:
                return False
            if requirement.operator == "DoesNotExist" and present:
                return False
        return True


def _non_blank_globs(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        if not value.strip():
            raise ValueError("globs must not be empty")
    return values


class WorkloadMatcher(_Model):
    """Which workloads and containers a policy (or its ``exclude``) selects; every given field must hold."""

    namespaces: tuple[str, ...] | None = None
    namespace_selector: LabelSelector | None = None
    kinds: tuple[str, ...] | None = None
    selector: LabelSelector | None = None
    images: tuple[str, ...] | None = None

    _globs = field_validator("namespaces", "images")(
        lambda cls, value: None if value is None else _non_blank_globs(value)
    )

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for kind in value or ():
            if kind not in WORKLOAD_KINDS:
                raise ValueError(f"kind {kind!r} is not one of {', '.join(WORKLOAD_KINDS)}")
        return value

    @property
    def is_empty(self) -> bool:
        return all(
            value is None
            for value in (self.namespaces, self.namespace_selector, self.kinds, self.selector, self.images)
        )


class VulnerabilityRules(_Model):
    max_critical: StrictInt | None = Field(default=None, ge=0, le=MAX_INT32)
    max_high: StrictInt | None = Field(default=None, ge=0, le=MAX_INT32)
    max_medium: StrictInt | None = Field(default=None, ge=0, le=MAX_INT32)
    ignore_unfixed: StrictBool = False
    max_report_age: str | None = None
    on_missing_report: Decision = Decision.ALLOW

    @field_validator("max_report_age")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and duration_seconds(value) > MAX_REPORT_AGE.total_seconds():
            raise ValueError(f"maxReportAge must be at most {MAX_REPORT_AGE.days}d (100 years), not {value!r}")
        return value

    @model_validator(mode="after")
    def _limits_something(self) -> VulnerabilityRules:
        if self.max_critical is None and self.max_high is None and self.max_medium is None:
            raise ValueError("vulnerabilities must set at least one of maxCritical, maxHigh, maxMedium")
        if self.max_report_age is not None and parse_duration(self.max_report_age) <= timedelta(0):
            raise ValueError("maxReportAge must be longer than 0")
        return self

    @cached_property  # parsed once, when first read: evaluation reads it per container
    def report_age_limit(self) -> timedelta | None:
        return parse_duration(self.max_report_age) if self.max_report_age else None


class Rules(_Model):
    max_compressed_size: StrictInt | str | None = None
    max_uncompressed_size: StrictInt | str | None = None
    max_layers: StrictInt | None = Field(default=None, ge=1, le=MAX_INT32)
    allowed_base_images: tuple[str, ...] | None = None
    denied_base_images: tuple[str, ...] | None = None
    require_non_root_user: StrictBool = False
    require_digest: StrictBool = False
    platforms: tuple[str, ...] | None = None
    vulnerabilities: VulnerabilityRules | None = None
    require_current_base: StrictBool = False
    max_packages: StrictInt | None = Field(default=None, ge=0, le=MAX_INT32)
    forbidden_tools: tuple[str, ...] | None = None
    forbidden_packages: tuple[str, ...] | None = None
    min_efficiency: StrictFloat | None = Field(default=None, ge=0, le=1)
    max_wasted_bytes: StrictInt | str | None = None
    max_growth: str | None = None
    """Most an image may grow over its baseline, compressed, as a percentage of the baseline: ``10%``."""
    max_growth_bytes: StrictInt | str | None = None
    """Most an image may grow over its baseline, compressed, as a quantity: ``20Mi``."""

    @field_validator("max_growth")
    @classmethod
    def _growth_percentage(cls, value: str | None) -> str | None:
        if value is not None and not _PERCENTAGE.fullmatch(value):  # the CRD's pattern
            raise ValueError(f"{value!r} is not a percentage of the baseline's size, e.g. 10% or 2.5%")
        return value

    @field_validator("forbidden_tools")
    @classmethod
    def _tools(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for entry in value or ():
            if entry not in CATEGORY_NAMES and ("/" not in entry or re.search(r"\s", entry)):
                raise ValueError(
                    f"{entry!r} is neither a tool category ({', '.join(CATEGORY_NAMES)}) nor a path glob "
                    "with a '/', e.g. /usr/bin/gcc*"
                )
        return value or None  # an empty list sets no rule, as for the base-image lists

    @field_validator("forbidden_packages")
    @classmethod
    def _packages(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for name in value or ():
            if not _PACKAGE_NAME.fullmatch(name):  # the CRD's pattern
                raise ValueError(
                    f"{name!r} is not an OS package name (letters, digits and + . _ -, starting with a letter or "
                    "digit), e.g. gcc or openssh-server"
                )
        return value or None  # an empty list sets no rule, as for forbiddenTools

    @field_validator("max_wasted_bytes", "max_growth_bytes")
    @classmethod
    def _wasted(cls, value: int | str | None) -> int | str | None:
        if value is None:
            return value
        try:
            size = parse_bytes(value)
        except QuantityTooLarge:
            raise ValueError(f"must be at most 8E (8*10^18 bytes), not {value!r}") from None
        if size > MAX_POLICY_BYTES:
            raise ValueError(f"must be at most 8E (8*10^18 bytes), not {value!r}")
        return value

    @field_validator("max_compressed_size", "max_uncompressed_size")
    @classmethod
    def _quantity(cls, value: int | str | None) -> int | str | None:
        if value is None:
            return value
        too_large = ValueError(f"must be at most 8E (8*10^18 bytes), not {value!r}")
        try:
            size = parse_bytes(value)
        except QuantityTooLarge:
            raise too_large from None
        if size <= 0:
            raise ValueError("must be greater than zero")
        if size > MAX_POLICY_BYTES:
            raise too_large
        return value

    # An empty list sets no rule, as the CRD counts it ("rules must set at least one rule"): `allowedBaseImages:
    # []` is not "no base is allowed", which would deny every image whose base is known.
    _globs = field_validator("allowed_base_images", "denied_base_images")(
        lambda cls, value: _non_blank_globs(value) or None if value is not None else None
    )

    @field_validator("platforms")
    @classmethod
    def _platforms(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for text in value or ():
            if not _PLATFORM.fullmatch(text):  # the CRD's pattern: lower case, os/architecture[/variant]
                raise ValueError(
                    f"{text!r}: a platform must be os/architecture or os/architecture/variant in lower case, "
                    "e.g. linux/amd64 or linux/arm64/v8"
                )
            Platform.parse(text)
        return value or None

    @model_validator(mode="after")
    def _checks_something(self) -> Rules:
        # Every field is a rule (core.evaluation.rules names them all); a flag set to false sets none.
        values = [getattr(self, name) for name in type(self).model_fields]
        if all(value is None or value is False for value in values):
            raise ValueError("rules must set at least one rule")
        both = sorted(set(self.allowed_base_images or ()) & set(self.denied_base_images or ()))
        if both:
            raise ValueError(f"base images cannot be both allowed and denied: {', '.join(both)}")
        return self

    @cached_property
    def growth_percent_limit(self) -> float | None:
        return None if self.max_growth is None else float(self.max_growth.rstrip("%"))

    @cached_property
    def growth_bytes_limit(self) -> int | None:
        return None if self.max_growth_bytes is None else parse_bytes(self.max_growth_bytes)

    @cached_property  # parsed once, when first read: evaluation reads it per container
    def compressed_limit(self) -> int | None:
        return None if self.max_compressed_size is None else parse_bytes(self.max_compressed_size)

    @cached_property  # parsed once, when first read: evaluation reads it per container
    def uncompressed_limit(self) -> int | None:
        return None if self.max_uncompressed_size is None else parse_bytes(self.max_uncompressed_size)

    @cached_property  # parsed once, when first read: evaluation reads it per container
    def wasted_limit(self) -> int | None:
        return None if self.max_wasted_bytes is None else parse_bytes(self.max_wasted_bytes)

    _judged_platforms: tuple[Platform, ...] = PrivateAttr(default=DEFAULT_PLATFORMS)
    """What these rules judge when ``platforms`` lists none: set per decision by ``judged_on``, never by a policy."""

    @cached_property  # parsed once, when first read: evaluation reads it per container
    def required_platforms(self) -> tuple[Platform, ...]:
        """The platforms every rule measures: those ``platforms`` lists, else those the decision judges (the
        platforms of the cluster's Ready nodes, or of the pod's pin; linux/amd64 when nothing says)."""
        return tuple(Platform.parse(p) for p in self.platforms) if self.platforms else self._judged_platforms

    def judged_on(self, platforms: tuple[Platform, ...]) -> Rules:
        """These rules judging ``platforms`` when they list none; as they are when they list some.

        Only what the rules measure changes: the platforms rule still checks only what ``platforms`` lists, so a
        cluster's arm64 nodes do not make an amd64-only image a violation of a policy that never asked for arm64.
        """
        if self.platforms or platforms == self._judged_platforms:
            return self
        known = self.judged_variants.get(platforms)
        if known is None:
            known = self.model_copy()
            known._judged_platforms = platforms
            for cached in ("required_platforms", "judged_variants"):  # model_copy keeps what these cached
                known.__dict__.pop(cached, None)
            self.judged_variants[platforms] = known
        return known

    @cached_property
    def judged_variants(self) -> dict[tuple[Platform, ...], Rules]:
        """Each ``judged_on`` copy made, kept: every decision of a cluster with nodes asks for the same few, and
        one copy per platform set lets what is derived from it (``core.evaluation.plan``'s reads) be kept too."""
        return {}

    @property
    def has_base_rule(self) -> bool:
        """allowedBaseImages or deniedBaseImages is set: the base image must be found."""
        return self.allowed_base_images is not None or self.denied_base_images is not None

    @property
    def base_image_globs(self) -> tuple[str, ...]:
        return (self.allowed_base_images or ()) + (self.denied_base_images or ())


def _concrete_reference(value: str, field_name: str) -> str:
    if not value.strip() or any(c in value for c in "*?[") or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not a concrete image reference; {field_name} are fetched, so name exact ones")
    return value


class BaseAlternative(_Model):
    """Slimmer bases a policy names for the bases ``base`` matches, wherever they are published."""

    base: str
    """A reference or glob of the bases these alternatives replace, e.g. ``*/node:20-bookworm``."""
    candidates: tuple[str, ...]

    @field_validator("base")
    @classmethod
    def _base_glob(cls, value: str) -> str:
        return _non_blank_globs((value,))[0]

    @field_validator("candidates")
    @classmethod
    def _concrete_candidates(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("name at least one candidate")
        if len(value) > MAX_NAMED_CANDIDATES:
            raise ValueError(f"at most {MAX_NAMED_CANDIDATES} candidates per base")
        return tuple(_concrete_reference(ref, "candidates") for ref in value)


class SlimmerBases(_Model):
    """Hints: a slimmer variant of an image's base, measured in the registry, and the bytes it would save."""

    from_tags: StrictBool = True
    """Look in the base's own repository for the same version with a slim suffix (-slim, -alpine, ...)."""
    alternatives: tuple[BaseAlternative, ...] = ()


MAX_NAMED_CANDIDATES = 8


class WorkloadSelector(_Model):
    namespace: str | None = None
    kind: str | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _selects_something(self) -> WorkloadSelector:
        if not any(value and value.strip() for value in (self.namespace, self.kind, self.name)):
            raise ValueError("a workload entry must set at least one of namespace, kind, name")
        if self.kind is not None and self.kind not in WORKLOAD_KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {', '.join(WORKLOAD_KINDS)}")
        return self


class Exemption(_Model):
    images: tuple[str, ...] | None = None
    workloads: tuple[WorkloadSelector, ...] | None = None
    reason: str
    expires: datetime | None = None

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("an exemption needs a reason")
        return value

    @model_validator(mode="after")
    def _scope(self) -> Exemption:
        if not self.images and not self.workloads:
            raise ValueError("an exemption names images or workloads")
        return self

    @field_validator("expires")
    @classmethod
    def _utc_when_unzoned(cls, value: datetime | None) -> datetime | None:
        # The apiserver's date-time format admits "2027-01-01T00:00:00"; a naive time cannot be compared
        # with the aware `now` evaluation gets, so read it as UTC, as Kubernetes does.
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    def active(self, now: datetime) -> bool:
        return self.expires is None or now < self.expires


class PolicySpec(_Model):
    mode: Mode = Mode.AUDIT
    on_unknown: Decision = Decision.ALLOW
    match: WorkloadMatcher = Field(default_factory=WorkloadMatcher)
    exclude: WorkloadMatcher | None = None
    rules: Rules
    exemptions: tuple[Exemption, ...] = ()
    known_base_images: tuple[str, ...] = ()
    slimmer_bases: SlimmerBases | None = None

    @field_validator("known_base_images")
    @classmethod
    def _concrete(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for reference in value:
            if any(c in reference for c in "*?["):
                raise ValueError(f"{reference!r} is a glob; knownBaseImages are fetched, so name exact references")
        return value


class ImagePolicy(_Model):
    name: str
    generation: int = 0
    spec: PolicySpec

    @classmethod
    def from_resource(cls, name: str, spec: dict[str, Any], generation: int = 0) -> ImagePolicy:
        """Build from the custom resource, or fail naming the policy and each bad field."""
        try:
            return cls(name=name, generation=generation, spec=PolicySpec.model_validate(_without_nulls(spec)))
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(['spec', *(str(p) for p in item['loc'])])}: {item['msg'].removeprefix('Value error, ')}"
                for item in error.errors()
            )
            raise InvalidPolicy(f'ImagePolicy "{name}" is invalid: {problems}') from None
        except Exception as error:
            # A validator that raised something other than ValueError (OverflowError, ArithmeticError, …) is a
            # bug here, but the policy must still surface as invalid in its status, not as a handler crash.
            raise InvalidPolicy(
                f'ImagePolicy "{name}" is invalid: spec: cannot be read ({type(error).__name__}: {error})'
            ) from error

    def judged_on(self, platforms: tuple[Platform, ...]) -> ImagePolicy:
        """This policy judging ``platforms`` when its rules list none (``Rules.judged_on``); itself otherwise."""
        rules = self.spec.rules.judged_on(platforms)
        if rules is self.spec.rules:
            return self
        known = self.judged_variants.get(platforms)
        if known is None or known.spec.rules is not rules:
            known = self.model_copy(update={"spec": self.spec.model_copy(update={"rules": rules})})
            known.__dict__.pop("judged_variants", None)
            self.judged_variants[platforms] = known
        return known

    @cached_property
    def judged_variants(self) -> dict[tuple[Platform, ...], ImagePolicy]:
        """Each ``judged_on`` copy made, kept (``Rules.judged_variants`` says why)."""
        return {}

    @property
    def base_image_candidates(self) -> tuple[str, ...]:
        """Concrete references (no wildcard) worth fetching to recognise a base image by its layers."""
        named = self.spec.rules.base_image_globs + self.spec.known_base_images
        return tuple(dict.fromkeys(ref for ref in named if not any(c in ref for c in "*?[")))

    @property
    def annotation_only_base_globs(self) -> dict[str, tuple[str, ...]]:
        """Base image globs, by field, that no concrete reference of the policy matches.

        Such a glob can only match an image carrying the OCI base-image annotations, which ``docker build``
        and BuildKit do not write by default: the layer-prefix method has nothing to compare with. A glob is
        covered when a concrete entry of allowedBaseImages, deniedBaseImages or knownBaseImages matches it.
        """
        candidates = []
        for text in self.base_image_candidates:
            try:
                candidates.append(ImageReference.parse(text))
            except InvalidReference:
                continue  # never fetched either, so it covers nothing
        rules = self.spec.rules
        gaps = {}
        for field_name, globs in (
            ("deniedBaseImages", rules.denied_base_images),
            ("allowedBaseImages", rules.allowed_base_images),
        ):
            blind = tuple(
                glob
                for glob in globs or ()
                if any(c in glob for c in "*?[") and not any(image_matches_any(ref, [glob]) for ref in candidates)
            )
            if blind:
                gaps[field_name] = blind
        return gaps

    @property
    def base_detection_warning(self) -> str | None:
        """What the policy's status should say when base image rules can only match by annotation."""
        gaps = self.annotation_only_base_globs
        if not gaps:
            return None
        listed = " and ".join(f"{field_name} {', '.join(globs)}" for field_name, globs in gaps.items())
        return (
            f"{listed} match only images that carry the OCI base-image annotations, which images built with "
            "docker build usually lack; name the concrete base images they should match in "
            "knownBaseImages (e.g. docker.io/library/node:20-bookworm) so they are also found by shared layers"
        )
