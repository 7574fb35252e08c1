"""The fleet metrics, computed from in-memory verdicts as the controller holds them: values, labels, bounds."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from core.builders import AMD64, APP, ARM64, NOW, MiB, facts, layers, platform_image, policy, verdict, workload
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from slimguard import metrics
from slimguard.core.facts.content import ContentFacts, FoundTool, PackageCount, PackageManager
from slimguard.core.facts.image_facts import PlatformImage
from slimguard.core.facts.vulnerabilities import SeverityCounts
from slimguard.core.model.platform import Platform

FAT = "registry.example.com/team/fat:1.0"
SLIM = "registry.example.com/team/slim:1.0"
FAT_SIZE = 300 * MiB
SLIM_SIZE = 30 * MiB
LIMIT = 200 * MiB


def _facts_by_image() -> dict[str, object]:
    return {
        FAT: facts(platform_image(*layers("fat", 3, FAT_SIZE // 3), seed="fat")),
        SLIM: facts(platform_image(*layers("slim", 3, SLIM_SIZE // 3), seed="slim")),
        APP: facts(),
    }


def _samples(families: list[Metric], name: str) -> dict[tuple[str, ...], float]:
    (family,) = [f for f in families if f.name == name]
    return {tuple(sample.labels[label] for label in sample.labels): sample.value for sample in family.samples}


def _fleet(**snapshot: object) -> list[Metric]:
    limited = policy("slim", rules={"maxCompressedSize": "200Mi"})
    verdicts = [
        verdict(limited, workload(FAT, namespace="shop", name="api-fat"), _facts_by_image()),
        verdict(limited, workload(FAT, namespace="shop", name="api-fat-copy", kind="StatefulSet"), _facts_by_image()),
        verdict(limited, workload(SLIM, namespace="shop", name="api-slim"), _facts_by_image()),
        verdict(limited, workload(SLIM, namespace="web", name="api-slim", kind="CronJob"), _facts_by_image()),
    ]
    fields = {"verdicts": verdicts, "policies": [limited], "now": NOW, **snapshot}
    return metrics.fleet_metrics(metrics.FleetSnapshot(**fields))


def test_workloads_are_counted_by_policy_namespace_kind_and_status() -> None:
    assert _samples(_fleet(), "slimguard_workloads") == {
        ("slim", "shop", "Deployment", "compliant"): 1,
        ("slim", "shop", "Deployment", "noncompliant"): 1,
        ("slim", "shop", "StatefulSet", "noncompliant"): 1,
        ("slim", "web", "CronJob", "compliant"): 1,
    }


def test_violations_are_counted_by_policy_namespace_and_rule() -> None:
    assert _samples(_fleet(), "slimguard_violations") == {("slim", "shop", "maxCompressedSize"): 2}


def test_image_bytes_count_each_distinct_image_once_per_namespace() -> None:
    families = _fleet()
    # fat runs twice in shop: pulled by both, but one image to slim down
    assert _samples(families, "slimguard_image_compressed_bytes") == {
        ("shop",): FAT_SIZE + SLIM_SIZE,
        ("web",): SLIM_SIZE,
    }
    # builders' layers know their uncompressed size (twice the compressed)
    assert _samples(families, "slimguard_image_uncompressed_bytes") == {
        ("shop",): 2 * (FAT_SIZE + SLIM_SIZE),
        ("web",): 2 * SLIM_SIZE,
    }
    assert _samples(families, "slimguard_images") == {
        ("shop", "0-50Mi"): 1,
        ("shop", "200Mi-500Mi"): 1,
        ("web", "0-50Mi"): 1,
    }


def test_vulnerabilities_sum_each_image_in_use_once_per_namespace_by_severity() -> None:
    fat_scan = SeverityCounts(critical=3, high=10, medium=20, low=40)
    slim_scan = SeverityCounts(critical=0, high=1, medium=2, low=4)
    families = _fleet(
        vulnerabilities={
            ("shop", FAT): fat_scan,  # two workloads run it in shop: one image to patch
            ("shop", SLIM): slim_scan,
            ("web", SLIM): slim_scan,
            ("gone", FAT): fat_scan,  # no workload runs it there any more
        }
    )
    assert _samples(families, "slimguard_image_vulnerabilities") == {
        ("shop", "critical"): 3,
        ("shop", "high"): 11,
        ("shop", "medium"): 22,
        ("shop", "low"): 44,
        ("web", "critical"): 0,
        ("web", "high"): 1,
        ("web", "medium"): 2,
        ("web", "low"): 4,
    }


def test_bytes_over_limit_are_the_exact_excess_of_each_image_once() -> None:
    assert _samples(_fleet(), "slimguard_compressed_bytes_over_limit") == {("shop", "slim"): FAT_SIZE - LIMIT}


def test_a_workload_that_went_away_leaves_no_series() -> None:
    limited = policy("slim", rules={"maxCompressedSize": "200Mi"})
    families = metrics.fleet_metrics(metrics.FleetSnapshot(verdicts=[], policies=[limited], now=NOW))
    for name in ("slimguard_workloads", "slimguard_violations", "slimguard_images", "slimguard_image_compressed_bytes"):
        assert _samples(families, name) == {}, name


def test_exemptions_in_force_and_their_expiry_exclude_expired_ones() -> None:
    soon, past = NOW + timedelta(days=3), NOW - timedelta(days=1)
    exempting = policy(
        "exempting",
        rules={"maxCompressedSize": "200Mi"},
        exemptions=[
            {"images": [FAT], "reason": "moving to distroless", "expires": soon.isoformat()},
            {"images": ["legacy/*"], "reason": "gone soon", "expires": past.isoformat()},
            {"images": ["forever/*"], "reason": "vendor image"},
        ],
    )
    waived = verdict(exempting, workload(FAT, namespace="shop", name="api-fat"), _facts_by_image())
    families = metrics.fleet_metrics(metrics.FleetSnapshot(verdicts=[waived], policies=[exempting], now=NOW))
    assert _samples(families, "slimguard_exemptions") == {("exempting",): 2}
    assert _samples(families, "slimguard_exemption_expiry_timestamp_seconds") == {("exempting", "0"): soon.timestamp()}
    assert _samples(families, "slimguard_exempted_violations") == {("exempting", "shop"): 1}
    assert _samples(families, "slimguard_workloads") == {("exempting", "shop", "Deployment", "compliant"): 1}


def test_error_verdicts_are_counted_as_error_and_are_no_violation() -> None:
    from slimguard.core.errors import InspectionError

    limited = policy("slim", rules={"maxCompressedSize": "200Mi"})
    down = InspectionError("registry is unreachable", reason="RegistryUnreachable")
    errored = verdict(limited, workload(FAT, namespace="shop", name="api-fat"), {FAT: down})
    families = metrics.fleet_metrics(metrics.FleetSnapshot(verdicts=[errored], policies=[limited], now=NOW))
    assert _samples(families, "slimguard_workloads") == {("slim", "shop", "Deployment", "error"): 1}
    assert _samples(families, "slimguard_violations") == {}
    assert _samples(families, "slimguard_image_compressed_bytes") == {}


def test_images_decided_by_default_are_counted_by_policy_registry_and_reason_against_the_images_checked() -> None:
    from slimguard.core.errors import InspectionError

    limited = policy("slim", rules={"maxCompressedSize": "200Mi"})
    digests = policy("digests", rules={"requireDigest": True})  # reads nothing: checks no image's facts
    private = "10.0.0.5:5000/shop/api:1.0"
    untrusted = InspectionError("registry 10.0.0.5:5000 presents a certificate ...", reason="RegistryUntrusted")
    answers = {**_facts_by_image(), private: untrusted}
    verdicts = [
        verdict([limited, digests], workload(private, FAT, namespace="shop", name="api"), answers),
        verdict([limited, digests], workload(private, namespace="web", name="api"), answers),  # the same image
    ]
    families = metrics.fleet_metrics(metrics.FleetSnapshot(verdicts=verdicts, policies=[limited, digests], now=NOW))
    assert _samples(families, "slimguard_images_checked") == {
        ("slim", "10.0.0.5:5000"): 1,
        ("slim", "registry.example.com"): 1,
    }
    assert _samples(families, "slimguard_images_decided_by_default") == {
        ("slim", "10.0.0.5:5000", "RegistryUntrusted"): 1
    }


def test_per_image_series_are_off_by_default_and_capped_to_the_largest() -> None:
    assert not [family for family in _fleet() if family.name == "slimguard_image_bytes"]
    limited = policy("slim", rules={"maxCompressedSize": "200Mi"})
    snapshot = metrics.FleetSnapshot(
        verdicts=[
            verdict(limited, workload(FAT, namespace="shop", name="api-fat"), _facts_by_image()),
            verdict(limited, workload(SLIM, namespace="shop", name="api-slim"), _facts_by_image()),
        ],
        policies=[limited],
        now=NOW,
    )
    families = metrics.fleet_metrics(snapshot, per_image_limit=1)
    assert _samples(families, "slimguard_image_bytes") == {("shop", FAT): FAT_SIZE}


def test_the_collector_exposes_valid_text_from_its_source_at_each_scrape() -> None:
    verdicts = [verdict(policy("slim"), workload(namespace="shop", name="api"))]
    registry = CollectorRegistry()
    registry.register(metrics.FleetCollector(lambda: metrics.FleetSnapshot(verdicts, [], NOW)))
    parsed = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert parsed["slimguard_workloads"].samples[0].labels == {
        "policy": "slim", "namespace": "shop", "kind": "Deployment", "status": "compliant",
    }  # fmt: skip
    verdicts.clear()  # the workload went away: the next scrape no longer shows it
    parsed = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert parsed["slimguard_workloads"].samples == []


def test_no_label_carries_a_digest_or_a_workload_name() -> None:
    workload_names = {"api-fat", "api-fat-copy", "api-slim"}
    for family in _fleet():
        for sample in family.samples:
            for value in sample.labels.values():
                assert not value.startswith("sha256:"), (family.name, sample.labels)
                assert value not in workload_names, (family.name, sample.labels)


def test_registry_hosts_are_bounded_and_status_classes_keep_429_apart() -> None:
    bounded = metrics.BoundedValues(2)
    assert [bounded(host) for host in ("a.io", "b.io", "c.io", "a.io")] == ["a.io", "b.io", metrics.OTHER, "a.io"]
    before = {
        status: metrics.REGISTRY_REQUESTS.labels(registry="unit.example", status=status)._value.get()
        for status in ("2xx", "4xx", "429", "5xx", "error", "refused")
    }
    for status in (200, 206, 401, 404, 429, 503, None):
        metrics.registry_response("unit.example", status)
    metrics.registry_response("unit.example", None, refused=True)
    after = {
        status: metrics.REGISTRY_REQUESTS.labels(registry="unit.example", status=status)._value.get()
        for status in before
    }
    assert {status: after[status] - before[status] for status in before} == {
        "2xx": 2, "4xx": 2, "429": 1, "5xx": 1, "error": 1, "refused": 1,
    }  # fmt: skip


def test_kinds_outside_the_workload_kinds_share_one_label() -> None:
    assert metrics.kind_label("Deployment") == "Deployment"
    assert metrics.kind_label("Secret") == metrics.OTHER
    assert metrics.kind_label("") == metrics.OTHER


def test_admission_buckets_include_every_apiserver_webhook_bucket() -> None:
    # apiserver_admission_webhook_admission_duration_seconds (k8s.io/apiserver/pkg/admission/metrics)
    assert {0.005, 0.025, 0.1, 0.5, 1, 2.5, 10, 25} <= set(metrics.ADMISSION_BUCKETS)
    assert 3 in metrics.ADMISSION_BUCKETS  # the default timeoutSeconds: "p99 near the timeout" resolves there


def test_every_metric_is_documented_in_the_readme(repo_root: Path) -> None:
    documented = set(re.findall(r"^\| `(slimguard_\w+)` \|", (repo_root / "README.md").read_text(), re.M))
    declared = {
        value._name for value in vars(metrics).values() if isinstance(value, Counter | Gauge | Histogram)
    }  # prometheus_client keeps a counter's name without _total
    declared = {f"{name}_total" if f"{name}_total" in documented else name for name in declared}
    snapshot = metrics.FleetSnapshot(verdicts=[], policies=[], now=NOW)
    declared |= {family.name for family in metrics.fleet_metrics(snapshot, per_image_limit=1)}
    assert declared == documented


def test_bytes_a_slimmer_base_would_save_are_summed_per_namespace_and_policy_each_image_once() -> None:
    from core.builders import annotated

    from slimguard.core.facts.bases import BaseOptions, MeasuredImage

    base = "registry.example.com/base/node:20-bookworm"
    alpine = "registry.example.com/base/node:20-alpine"
    hinted = policy("hints", rules={"maxCompressedSize": "200Mi"}, slimmerBases={})
    on_base = {FAT: facts(platform_image(*layers("fat", 3, FAT_SIZE // 3), base=annotated(base), seed="fat"))}
    options = {
        base: BaseOptions(
            MeasuredImage(base, {AMD64: 250 * MiB}), (alpine,), {alpine: MeasuredImage(alpine, {AMD64: 50 * MiB})}
        )
    }
    verdicts = [
        verdict(hinted, workload(FAT, namespace="shop", name=name), on_base, base_options=options)
        for name in ("a", "b")
    ]
    families = metrics.fleet_metrics(metrics.FleetSnapshot(verdicts=verdicts, policies=[hinted], now=NOW))
    assert _samples(families, "slimguard_slimmer_base_savings_bytes") == {("shop", "hints"): 200 * MiB}


# --- layer content ------------------------------------------------------------------------------------------


def _content(count: int | None, wasted: int, *categories: str) -> ContentFacts:
    return ContentFacts(
        packages=PackageCount(count, (PackageManager.DPKG,), unknown_reason=None if count is not None else "garbled"),
        tools=tuple(FoundTool(category, f"usr/bin/{category}-tool", False, 0) for category in categories),
        executables=(),
        efficiency=0.9,
        wasted_bytes=wasted,
        file_count=100,
    )


def _read(seed: str, content: ContentFacts, *, platform: Platform = AMD64) -> PlatformImage:
    """One platform's image whose layers a content rule had read."""
    return replace(platform_image(seed=seed, platform=platform), content=content)


def test_layer_content_is_summed_per_namespace_each_image_once_with_tools_by_category() -> None:
    inside = policy("inside", rules={"maxPackages": 100, "forbiddenTools": ["compilers"]})
    read = {
        FAT: facts(_read("fat", _content(173, 20 * MiB, "compilers", "shells", "packageManagers"))),
        SLIM: facts(_read("slim", _content(0, 0))),
        APP: facts(_read("app", _content(None, 1 * MiB, "shells"))),
    }
    verdicts = [
        verdict(inside, workload(FAT, namespace="shop", name="api-fat"), read),
        verdict(inside, workload(FAT, namespace="shop", name="api-fat-copy"), read),  # one image to slim down
        verdict(inside, workload(SLIM, namespace="shop", name="api-slim"), read),
        verdict(inside, workload(APP, namespace="web", name="app"), read),
    ]
    families = metrics.fleet_metrics(metrics.FleetSnapshot(verdicts=verdicts, policies=[inside], now=NOW))
    assert _samples(families, "slimguard_images_content_known") == {("shop",): 2, ("web",): 1}
    # app's package database could not be counted: it adds nothing, never a zero it does not have
    assert _samples(families, "slimguard_image_os_packages") == {("shop",): 173}
    assert _samples(families, "slimguard_image_wasted_bytes") == {("shop",): 20 * MiB, ("web",): 1 * MiB}
    assert _samples(families, "slimguard_images_with_tools") == {
        ("shop", "compilers"): 1, ("shop", "packageManagers"): 1, ("shop", "shells"): 1,
        ("shop", "vcs"): 0, ("shop", "downloaders"): 0,
        ("web", "compilers"): 0, ("web", "packageManagers"): 0, ("web", "shells"): 1,
        ("web", "vcs"): 0, ("web", "downloaders"): 0,
    }  # fmt: skip


def test_images_whose_layers_were_not_read_add_no_content_series() -> None:
    # maxCompressedSize needs no layer read: sizes are known, content is not, and no zero pretends otherwise
    families = _fleet()
    for name in (
        "slimguard_images_content_known",
        "slimguard_image_os_packages",
        "slimguard_image_wasted_bytes",
        "slimguard_images_with_tools",
    ):
        assert _samples(families, name) == {}, name


def test_content_of_several_platforms_takes_the_fullest_reading() -> None:
    inside = policy("inside", rules={"maxPackages": 500, "platforms": ["linux/amd64", "linux/arm64"]})
    both = facts(
        _read("fat", _content(120, 5 * MiB, "shells")),
        _read("fat", _content(130, 2 * MiB, "compilers"), platform=ARM64),
    )
    result = verdict(inside, workload(FAT, namespace="shop"), {FAT: both})
    families = metrics.fleet_metrics(metrics.FleetSnapshot(verdicts=[result], policies=[inside], now=NOW))
    assert _samples(families, "slimguard_images_content_known") == {("shop",): 1}
    assert _samples(families, "slimguard_image_os_packages") == {("shop",): 130}
    assert _samples(families, "slimguard_image_wasted_bytes") == {("shop",): 5 * MiB}
    found = _samples(families, "slimguard_images_with_tools")
    assert {category for (_, category), count in found.items() if count} == {"compilers", "shells"}


def test_a_workload_whose_policy_reads_no_layers_does_not_hide_the_content_another_read() -> None:
    sized = policy("sized", rules={"maxCompressedSize": "1Gi"})
    inside = policy("inside", rules={"forbiddenTools": ["compilers"]})
    read = {FAT: facts(_read("fat", _content(173, 0, "compilers")))}
    unread = {FAT: facts(platform_image(seed="fat"))}
    verdicts = [
        verdict(sized, workload(FAT, namespace="shop", name="a"), unread),
        verdict(inside, workload(FAT, namespace="shop", name="b"), read),
    ]
    families = metrics.fleet_metrics(metrics.FleetSnapshot(verdicts=verdicts, policies=[sized, inside], now=NOW))
    assert _samples(families, "slimguard_images_content_known") == {("shop",): 1}
    assert _samples(families, "slimguard_images_with_tools")[("shop", "compilers")] == 1
