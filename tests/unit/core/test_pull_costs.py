"""What bloat costs in pull time: the violation says how often and how slowly the image was pulled and what a
slim version would save per cold pull, at the throughput its own pulls reached; nothing is said unmeasured."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.builders import APP, MiB, facts, layers, platform_image, policy, verdict
from slimguard.core.evaluation.pull_costs import BY_LIMIT, saveables, with_pull_costs
from slimguard.core.facts.pulls import ImagePulls, PulledMessage, PullEvent, SizeKind

T0 = datetime(2026, 12, 7, 22, 0, tzinfo=UTC)


def pulled(digest: str, *, cold: int, seconds: float, size: int, namespace: str = "team-a") -> ImagePulls:
    pulls = ImagePulls(digest)
    for index in range(cold):
        event = PullEvent(
            uid=f"u{index}",
            count=1,
            at=T0 + timedelta(minutes=index),
            namespace=namespace,
            pod=f"api-{index}",
            container="app",
            node=f"node-{index % 3}",
            pulled=PulledMessage(APP, True, seconds=seconds, seconds_with_waiting=seconds, size=size),
        )
        pulls.fold(event, SizeKind.COMPRESSED)
    return pulls


def fat_verdict() -> tuple[object, str]:
    image = facts(platform_image(*layers("fat", 40, 10 * MiB)))  # 400 MiB
    return verdict(policy(rules={"maxCompressedSize": "100Mi"}), facts_by_image={APP: image}), image.digest


def test_the_size_violation_says_the_pulls_and_the_seconds_a_slim_image_would_save() -> None:
    judged, digest = fat_verdict()
    pulls = pulled(digest, cold=6, seconds=40.0, size=400 * MiB)  # 10 MiB/s measured
    noted = with_pull_costs(judged, {digest: pulls})  # type: ignore[arg-type]
    (finding,) = noted.findings
    assert finding.message.endswith(
        "; pulled cold 6 times on 3 nodes since 2026-12-07T22:00:00Z, 40 s each at the median; an image within the "
        "limit would save ~30 s per cold pull (10 MiB/s measured)"
    )
    (saveable,) = saveables(judged, {digest: pulls})  # type: ignore[arg-type]
    assert (saveable.cure, saveable.saved_bytes) == (BY_LIMIT, 300 * MiB)
    assert saveable.seconds_in("team-a") == pytest.approx(6 * 30.0)
    assert saveable.seconds_in("elsewhere") == 0.0


def test_without_pulls_on_record_the_verdict_is_unchanged() -> None:
    judged, digest = fat_verdict()
    assert with_pull_costs(judged, {}) is judged  # type: ignore[arg-type]
    assert with_pull_costs(judged, {"sha256:" + "0" * 64: pulled(digest, cold=1, seconds=1, size=1)}) is judged  # type: ignore[arg-type]


def test_a_compliant_image_has_nothing_saveable() -> None:
    image = facts()
    judged = verdict(policy(rules={"maxCompressedSize": "100Mi"}), facts_by_image={APP: image})
    assert saveables(judged, {image.digest: pulled(image.digest, cold=3, seconds=5, size=MiB)}) == []
