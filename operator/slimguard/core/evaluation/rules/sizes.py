"""``maxCompressedSize``, ``maxUncompressedSize`` and ``maxLayers``: what a node pulls and unpacks."""

from __future__ import annotations

from slimguard.core.errors import InspectionReason
from slimguard.core.evaluation.rules.blame import largest_layers
from slimguard.core.evaluation.rules.common import NOTHING, PolicyRule, Reads, Reporter, Subject
from slimguard.core.facts.image_facts import FactsNeeds, PlatformImage
from slimguard.core.model.policy import Rules
from slimguard.core.model.quantity import format_bytes

SLIM_HINT = "Use a multi-stage build with a slim, alpine or distroless final stage."
LAYERS_HINT = "Combine RUN steps, or copy the result of a build stage in one COPY."

MAX_COMPRESSED_SIZE = PolicyRule(
    "maxCompressedSize",
    summary="The compressed size is within the limit",
    description="Each required platform's image is at most maxCompressedSize compressed: what a node pulls.",
    fix=SLIM_HINT,
)
MAX_UNCOMPRESSED_SIZE = PolicyRule(
    "maxUncompressedSize",
    summary="The uncompressed size is within the limit",
    description="Each required platform's image is at most maxUncompressedSize uncompressed: what a node unpacks, "
    "read from the layers' gzip trailers and zstd headers, never by pulling them.",
    fix=SLIM_HINT,
)
MAX_LAYERS = PolicyRule(
    "maxLayers",
    summary="The layer count is within the limit",
    description="Each required platform's image has at most maxLayers layers.",
    fix=LAYERS_HINT,
)


def reads(rules: Rules) -> Reads:
    if rules.compressed_limit is None and rules.uncompressed_limit is None and rules.max_layers is None:
        return NOTHING
    return Reads(FactsNeeds(frozenset(rules.required_platforms), uncompressed=rules.uncompressed_limit is not None))


def check(subject: Subject) -> None:
    report, rules = subject.report, subject.rules
    for image in subject.images:
        platform = str(image.platform)
        if image.compressed_measured:
            _size_check(
                report, MAX_COMPRESSED_SIZE.name, image.compressed_size, rules.compressed_limit, "compressed", image
            )
        else:
            _unmeasured_compressed_check(report, image, rules.compressed_limit)
        if rules.uncompressed_limit is not None:
            uncompressed = image.uncompressed_size
            if uncompressed is None:
                report.error(
                    MAX_UNCOMPRESSED_SIZE.name,
                    f"has layers whose uncompressed size is unknown ({platform})",
                    reason=InspectionReason.UNKNOWN_UNCOMPRESSED_SIZE,
                )
            else:
                what = "uncompressed (estimated)" if image.uncompressed_estimated else "uncompressed"
                _size_check(report, MAX_UNCOMPRESSED_SIZE.name, uncompressed, rules.uncompressed_limit, what, image)
        if rules.max_layers is not None and len(image.layers) > rules.max_layers:
            report.violation(
                MAX_LAYERS.name,
                f"has {len(image.layers)} layers ({platform}); {report.policy_name} allows {rules.max_layers}. "
                f"{largest_layers(image)} {LAYERS_HINT}",
                limit=str(rules.max_layers),
                actual=str(len(image.layers)),
            )


def _unmeasured_compressed_check(report: Reporter, image: PlatformImage, limit: int | None) -> None:
    """Layers kept uncompressed (a local engine, a docker save archive): within the limit uncompressed, the image
    is within it compressed too; beyond it, its compressed size is unknown, and that is said rather than guessed."""
    uncompressed = image.compressed_size
    if limit is None or uncompressed <= limit:
        return
    report.error(
        MAX_COMPRESSED_SIZE.name,
        f"is {format_bytes(uncompressed)} uncompressed ({image.platform}) in {image.kept_uncompressed_in}, which "
        f"holds no compressed size; {report.policy_name} allows {format_bytes(limit)} compressed. Pass "
        "--measure-compressed to compress the layers and measure, or check the pushed image.",
        reason=InspectionReason.COMPRESSED_SIZE_UNKNOWN,
    )


def _size_check(report: Reporter, rule: str, size: int, limit: int | None, what: str, image: PlatformImage) -> None:
    if limit is not None and size > limit:
        blame = largest_layers(image, uncompressed=rule == MAX_UNCOMPRESSED_SIZE.name)
        actual, allowed = format_bytes(size), format_bytes(limit)
        if actual == allowed:  # rounding hid the excess ("200 MiB; allows 200 MiB"): show the bytes
            actual, allowed = f"{actual} ({size} bytes)", f"{allowed} ({limit} bytes)"
        report.violation(
            rule,
            f"is {actual} {what} ({image.platform}); {report.policy_name} allows {allowed}. {blame} {SLIM_HINT}",
            limit=allowed,
            actual=actual,
            excess_bytes=size - limit,
        )
