"""The pull metrics: seconds saveable per namespace and policy (each image once), and the image label of the pull
counters, empty unless --image-metrics and then bounded."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from core.builders import MiB, facts, layers, platform_image, policy, verdict, workload

from slimguard import metrics
from slimguard.controller.fleet import pull_seconds_saveable
from slimguard.core.facts.pulls import ImagePulls, PulledMessage, PullEvent, SizeKind

FAT = "registry.example.com/team/fat:1.0"


def pulls_of(digest: str, *, namespace: str, cold: int, seconds: float, size: int) -> ImagePulls:
    record = ImagePulls(digest)
    for index in range(cold):
        pulled = PulledMessage(FAT, True, seconds=seconds, seconds_with_waiting=seconds, size=size)
        at = datetime(2026, 12, 7, 22, index, tzinfo=UTC)
        record.fold(PullEvent(f"u{index}", 1, at, namespace, f"p{index}", "app", "n", pulled), SizeKind.COMPRESSED)
    return record


def test_seconds_saveable_count_each_image_once_per_namespace_and_policy() -> None:
    fat = facts(platform_image(*layers("fat", 3, 100 * MiB), seed="fat"))  # 300 MiB
    limited = policy("slim", rules={"maxCompressedSize": "200Mi"})
    verdicts = (
        verdict(limited, workload(FAT, namespace="shop", name="a"), {FAT: fat}),
        verdict(limited, workload(FAT, namespace="shop", name="b"), {FAT: fat}),  # the same image: once
        verdict(limited, workload(FAT, namespace="web", name="c"), {FAT: fat}),  # pulled only in shop
    )
    pulled = pulls_of(fat.digest, namespace="shop", cold=4, seconds=30.0, size=300 * MiB)  # 10 MiB/s
    assert pull_seconds_saveable(verdicts, {fat.digest: pulled}) == {
        ("shop", "slim"): pytest.approx(4 * 10.0),  # 100 MiB over the limit: 10 s a pull
        ("web", "slim"): 0.0,
    }
    snapshot = metrics.FleetSnapshot(
        verdicts=verdicts,
        policies=[limited],
        now=datetime(2026, 12, 7, tzinfo=UTC),
        pull_seconds_saveable={("shop", "slim"): 40.0},
    )
    (family,) = [f for f in metrics.fleet_metrics(snapshot) if f.name == "slimguard_pull_seconds_saveable"]
    assert [(sample.labels, sample.value) for sample in family.samples] == [
        ({"namespace": "shop", "policy": "slim"}, 40.0)
    ]


def test_the_image_label_is_empty_unless_asked_for_and_then_bounded() -> None:
    assert metrics.PullImageLabel(0)("registry.example.com/a:1") == ""
    bounded = metrics.PullImageLabel(2)
    assert [bounded(image) for image in ("a:1", "b:1", "c:1", "a:1")] == ["a:1", "b:1", metrics.OTHER, "a:1"]
