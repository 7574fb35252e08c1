"""``maxGrowth`` and ``maxGrowthBytes``: how much an image may grow over its baseline, the image it replaces.

Compared on the compressed size, per platform: it is what every node pulls on every rollout and what the registry
stores, and the manifests say it exactly, so the gate reads no layer. (The uncompressed size needs a read of every
layer from a registry, and gzip's ratio makes the two grow nearly together.) The layers responsible are those
``core.facts.image_diff`` finds added or rebuilt larger, named by the instruction that made them.

A baseline is given by the entry point (``slimguard check --baseline``). Without one (at admission, in the audit
loop, or a check without ``--baseline``) the rules do not apply: nothing is compared, so nothing is denied and
nothing passes by comparison; ``slimguard check`` says so on standard error.
"""

from __future__ import annotations

from slimguard.core.errors import InspectionReason
from slimguard.core.evaluation.rules.blame import BLAMED_LAYERS, short_command
from slimguard.core.evaluation.rules.common import NOTHING, PolicyRule, Reads, Reporter, Subject
from slimguard.core.facts.image_diff import LayerStatus, PlatformDiff, diff_platform
from slimguard.core.facts.image_facts import FactsNeeds, PlatformImage
from slimguard.core.model.policy import Rules
from slimguard.core.model.quantity import format_bytes

HINT = (
    "Compare the two builds with slimguard diff; if the growth is intended, raise the allowance or make this image "
    "the new baseline."
)
MAX_GROWTH = PolicyRule(
    "maxGrowth",
    summary="The image grew at most the allowed percentage over its baseline",
    description="Each required platform's image is at most maxGrowth (a percentage, e.g. 10%) larger compressed "
    "than the same platform of its baseline (slimguard check --baseline); without a baseline the rule does not "
    "apply.",
    fix=HINT,
    anchor="the-regression-gate",
)
MAX_GROWTH_BYTES = PolicyRule(
    "maxGrowthBytes",
    summary="The image grew at most the allowed bytes over its baseline",
    description="Each required platform's image is at most maxGrowthBytes (a quantity, e.g. 20Mi) larger "
    "compressed than the same platform of its baseline (slimguard check --baseline); without a baseline the rule "
    "does not apply.",
    fix=HINT,
    anchor="the-regression-gate",
)


def reads(rules: Rules) -> Reads:
    if rules.max_growth is None and rules.max_growth_bytes is None:
        return NOTHING
    return Reads(FactsNeeds(frozenset(rules.required_platforms)))


def check(subject: Subject) -> None:
    rules, report = subject.rules, subject.report
    if rules.max_growth is None and rules.max_growth_bytes is None:
        return
    baseline = subject.context.baselines.get(subject.container.image)
    if baseline is None:
        return  # nothing to compare with: not applicable (the module's docstring says why)
    for image in subject.images:
        old = baseline.for_platform(image.platform)
        if old is None:
            continue  # a platform the baseline lacks is new, not grown
        if not (old.compressed_measured and image.compressed_measured):
            for rule in _set_rules(rules):
                report.error(
                    rule,
                    f"has no compressed size to compare with its baseline ({image.platform}): the layers were read "
                    "uncompressed. Pass --measure-compressed, or compare pushed images.",
                    reason=InspectionReason.COMPRESSED_SIZE_UNKNOWN,
                )
            continue
        compared = diff_platform(image.platform, old, image)
        growth = compared.compressed_delta
        before = old.compressed_size
        if rules.growth_percent_limit is not None:
            allowed = before * rules.growth_percent_limit / 100
            if growth > allowed:
                percent = 100 * growth / before if before else float("inf")
                _violation(
                    report,
                    MAX_GROWTH.name,
                    compared,
                    f"{percent:.1f}% ({format_bytes(growth)})",
                    f"{rules.max_growth} ({format_bytes(int(allowed))})",
                    actual=f"{percent:.1f}%",
                    limit=str(rules.max_growth),
                    excess=growth - int(allowed),
                    old=old,
                    new=image,
                )
        limit = rules.growth_bytes_limit
        if limit is not None and growth > limit:
            _violation(
                report,
                MAX_GROWTH_BYTES.name,
                compared,
                format_bytes(growth),
                format_bytes(limit),
                actual=format_bytes(growth),
                limit=format_bytes(limit),
                excess=growth - limit,
                old=old,
                new=image,
            )


def _set_rules(rules: Rules) -> list[str]:
    return [
        rule.name
        for rule, value in ((MAX_GROWTH, rules.max_growth), (MAX_GROWTH_BYTES, rules.max_growth_bytes))
        if value is not None
    ]


def responsible_layers(compared: PlatformDiff, count: int = BLAMED_LAYERS) -> str:
    """``layer 2/3 added +40 MiB: RUN apt-get install -y gcc; layer 3/3 rebuilt +1 MiB: COPY . /app``."""
    new = compared.new
    total = len(new.layers) if new is not None else 0
    parts = []
    for change in compared.growing_layers()[:count]:
        what = "added" if change.status is LayerStatus.ADDED else "rebuilt"
        position = (change.new_index or 0) + 1
        parts.append(
            f"layer {position}/{total} {what} +{format_bytes(change.size_delta)}: {short_command(change.created_by)}"
        )
    if not parts:  # only the config grew, or layers shrank less than others grew: nothing single to name
        return "No one layer grew; the config or many small changes did."
    label = "Layer responsible" if len(parts) == 1 else "Layers responsible"
    return f"{label}: {'; '.join(parts)}."


def _violation(
    report: Reporter,
    rule: str,
    compared: PlatformDiff,
    grew: str,
    allows: str,
    *,
    actual: str,
    limit: str,
    excess: int,
    old: PlatformImage,
    new: PlatformImage,
) -> None:
    report.violation(
        rule,
        f"grew {grew} compressed over its baseline ({compared.platform}): {format_bytes(old.compressed_size)} → "
        f"{format_bytes(new.compressed_size)}; {report.policy_name} allows {allows}. "
        f"{responsible_layers(compared)} {HINT}",
        limit=limit,
        actual=actual,
        excess_bytes=excess,
    )


__all__ = ["MAX_GROWTH", "MAX_GROWTH_BYTES", "check", "reads", "responsible_layers"]
