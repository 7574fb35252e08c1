"""``minEfficiency`` and ``maxWastedBytes``: dive's image efficiency and wasted bytes, as ``.dive-ci`` sets them.

The numbers are dive v0.13.1's (``core.facts.content_analysis.dive_efficiency``): bytes a layer adds and a later
layer overwrites or deletes still ship in every pull.
"""

from __future__ import annotations

import math

from slimguard.core.evaluation.rules.common import PolicyRule, Reads, Subject, content_or_pending, reads_contents
from slimguard.core.model.policy import Rules
from slimguard.core.model.quantity import format_bytes

HINT = (
    "Delete what a step downloads or builds in that same RUN step (a later step cannot take it back out), "
    "or build in one stage and copy only the result into the final one."
)
MIN_EFFICIENCY = PolicyRule(
    "minEfficiency",
    summary="dive's image efficiency is at least the minimum",
    description="Each required platform's image is at least minEfficiency efficient (0-1) as dive v0.13.1 counts "
    "it: per path over every layer, the smallest size over the cumulative size.",
    fix=HINT,
)
MAX_WASTED_BYTES = PolicyRule(
    "maxWastedBytes",
    summary="dive's wasted bytes are within the limit",
    description="Each required platform's image wastes at most maxWastedBytes as dive v0.13.1 counts it: the "
    "cumulative size of every path written in two or more layers.",
    fix=HINT,
)


def reads(rules: Rules) -> Reads:
    return reads_contents(rules, when=rules.min_efficiency is not None or rules.max_wasted_bytes is not None)


def check(subject: Subject) -> None:
    rules, report = subject.rules, subject.report
    if rules.min_efficiency is None and rules.wasted_limit is None:
        return
    for image in subject.images:
        if rules.min_efficiency is not None:
            content = content_or_pending(report, MIN_EFFICIENCY.name, image)
            if content is not None and content.efficiency < rules.min_efficiency:
                actual, limit = _percent(content.efficiency), _percent(rules.min_efficiency)
                report.violation(
                    MIN_EFFICIENCY.name,
                    f"is {actual} efficient as dive counts it ({format_bytes(content.wasted_bytes)} wasted, "
                    f"{image.platform}); {report.policy_name} requires at least {limit}. {HINT}",
                    limit=limit,
                    actual=actual,
                )
        limit_bytes = rules.wasted_limit
        if limit_bytes is not None:
            content = content_or_pending(report, MAX_WASTED_BYTES.name, image)
            if content is not None and content.wasted_bytes > limit_bytes:
                actual, allowed = format_bytes(content.wasted_bytes), format_bytes(limit_bytes)
                if actual == allowed:
                    actual, allowed = f"{actual} ({content.wasted_bytes} bytes)", f"{allowed} ({limit_bytes} bytes)"
                report.violation(
                    MAX_WASTED_BYTES.name,
                    f"wastes {actual} as dive counts it (files added by one layer and overwritten or deleted by "
                    f"another, {image.platform}); {report.policy_name} allows {allowed}. {HINT}",
                    limit=allowed,
                    actual=actual,
                    excess_bytes=content.wasted_bytes - limit_bytes,
                )


def _percent(value: float) -> str:
    """``0.9543`` → ``95.43%``: two decimals, rounded down, so 0.99999 never reads as the 100% it falls short of."""
    text = f"{math.floor(value * 10000) / 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"
