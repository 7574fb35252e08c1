"""Slimmer bases and stale bases against the real registry: sizes measured from what was pushed, tag lists
paginated and refused, base versions compared per platform manifest, and no request for a seen image.

The evaluator here is the one the controller and the webhook run (client → inspector → base lookups), over a
registry of its own, so these tests can push and re-push bases without touching the session's fixtures.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster import (
    annotations,
    apply,
    apply_crd_while_kopf_runs,
    deployment,
    get,
    image_policy,
    namespace,
    violations,
    wait_for,
    wait_for_status,
)

from slimguard.core.evaluation.outcome import outcome_of
from slimguard.core.evaluation.plan import plan
from slimguard.core.evaluation.verdict import FindingKind, Status, Verdict
from slimguard.core.facts.image_report import report_name
from slimguard.core.model.policy import ImagePolicy
from slimguard.core.model.quantity import format_bytes
from slimguard.core.model.workload import Container, ContainerType, Workload
from slimguard.engine.alternatives import SlimmerBaseFinder
from slimguard.engine.bases import BaseLookups
from slimguard.engine.evaluator import Evaluator
from slimguard.engine.facts import NO_CLUSTER
from slimguard.registry.client import RegistryClient
from slimguard.registry.credentials import Credential
from slimguard.registry.guard import AddressPolicy
from slimguard.registry.inspector import ImageInspector
from slimguard.registry.settings import RegistrySettings
from slimguard_testbed import CertificateAuthority, ControlPlane, Registry
from slimguard_testbed.images.base_variants import (
    ALPINE_BYTES,
    BaseVariants,
    add_tags,
    annotated,
    multiarch_base,
    pull_bytes,
    push,
    push_base_variants,
    stand_in,
)
from slimguard_testbed.images.published import FixtureImage
from slimguard_testbed.operator_runner import InProcessOperator
from slimguard_testbed.trivy import vulnerability, vulnerability_report
from slimguard_testbed.webhook import WebhookReplicas

# Anonymous pulls everywhere but locked/, whose tag list (and everything else) needs credentials.
ANONYMOUS = ("base/", "shop/", "other/")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hint_registry(tmp_path_factory: pytest.TempPathFactory, testbed_ca: CertificateAuthority) -> Iterator[Registry]:
    with Registry(
        storage_dir=tmp_path_factory.mktemp("hints-storage"),
        ca=testbed_ca,
        auth="token",
        workdir=tmp_path_factory.mktemp("hints-registry"),
        anonymous_prefixes=ANONYMOUS,
    ) as started:
        yield started


@pytest.fixture(scope="module")
def paging_registry(tmp_path_factory: pytest.TempPathFactory, testbed_ca: CertificateAuthority) -> Iterator[Registry]:
    """distribution v3 (built from its Go module by scripts/build-registry-v3.sh, which bootstrap runs): unlike
    Debian's 2.8 it pages tag lists with n/last and a Link header, as Docker Hub, GHCR and Harbor do."""
    built = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-registry-v3.sh")], capture_output=True, text=True, check=False
    )
    binary = built.stdout.strip()
    assert binary, f"distribution v3 could not be built:\n{built.stderr[-2000:]}"
    with Registry(
        storage_dir=tmp_path_factory.mktemp("paging-storage"),
        ca=testbed_ca,
        auth="token",
        workdir=tmp_path_factory.mktemp("paging-registry"),
        anonymous_prefixes=ANONYMOUS,
        binary=Path(binary),
    ) as started:
        yield started


@pytest.fixture(scope="module")
def variants(hint_registry: Registry) -> BaseVariants:
    return push_base_variants(hint_registry.endpoint)


async def _no_credentials(_: Workload) -> list[Credential]:
    return []


class Engine:
    def __init__(self, registry: Registry, *, tag_ttl: float = 120.0, hint_ttl: float = 3600.0) -> None:
        settings = RegistrySettings(
            address_policy=AddressPolicy(allow_loopback=True),
            ca_files=(str(registry.ca_file),),
            tag_ttl_seconds=tag_ttl,
            # A tag past its TTL is otherwise still answered while re-resolved: "asks where the tag points now"
            # needs both at 0 since tags became stale-while-revalidate (issue 16).
            tag_max_stale_seconds=0.0 if tag_ttl == 0 else RegistrySettings.tag_max_stale_seconds,
        )
        self.client = RegistryClient(settings)
        inspector = ImageInspector(self.client)
        self.finder = SlimmerBaseFinder(self.client, ttl=hint_ttl)
        self.evaluator = Evaluator(
            inspector=inspector,
            view=NO_CLUSTER,
            credentials=_no_credentials,
            bases=BaseLookups(inspector, self.finder),
        )

    async def verdict(self, image: str, policy: ImagePolicy, *, deadline: float | None = None) -> Verdict:
        workload = Workload(
            kind="Deployment",
            namespace="shop",
            name="api",
            labels={},
            containers=(Container(type=ContainerType.REGULAR, index=0, name="api", image=image),),
        )
        return await self.evaluator.verdict(plan([policy], workload, {}), now=datetime.now(UTC), deadline=deadline)


@pytest.fixture
async def engine(hint_registry: Registry) -> AsyncIterator[Engine]:
    made = Engine(hint_registry)
    yield made
    await made.client.aclose()


def _policy(name: str = "slim", *, rules: dict[str, Any] | None = None, **spec: Any) -> ImagePolicy:
    return ImagePolicy.from_resource(name, {"mode": "Enforce", "rules": rules or {"maxCompressedSize": "2Mi"}, **spec})


def _hinted(variants: BaseVariants, **slimmer: Any) -> ImagePolicy:
    return _policy(knownBaseImages=[variants.bookworm.ref], slimmerBases=slimmer)


async def test_the_denial_names_the_alpine_variant_and_the_bytes_it_saves_as_measured(
    engine: Engine, variants: BaseVariants
) -> None:
    result = await engine.verdict(variants.app.ref, _hinted(variants))
    (hint,) = result.hints
    bookworm, alpine = variants.sizes[variants.bookworm.ref], variants.sizes[variants.alpine.ref]
    assert (hint.base, hint.alternative) == (variants.bookworm.ref, variants.alpine.ref)
    assert (hint.base_size, hint.alternative_size, hint.saving) == (bookworm, alpine, bookworm - alpine)
    assert alpine > ALPINE_BYTES  # the layer as gzip stores it, and the config: what a node pulls
    denial = outcome_of(result, on_unknown={}).denial_message("Deployment shop/api")
    assert (
        f"Slimmer base: base {variants.bookworm.ref} ({format_bytes(bookworm)}) → node:20-alpine "
        f"({format_bytes(alpine)}) would save ~{format_bytes(bookworm - alpine)} per pull (linux/amd64)."
    ) in denial
    assert [f.rule for f in result.findings] == ["maxCompressedSize"]


async def test_a_policy_named_alternative_in_another_repository_is_chosen_when_smaller(
    engine: Engine, hint_registry: Registry, variants: BaseVariants
) -> None:
    tiny = push(hint_registry.endpoint, "other/distroless-node", "20", stand_in("distroless-node", 64 * 1024))
    policy = _hinted(variants, alternatives=[{"base": "*/base/node:20-bookworm", "candidates": [tiny.ref]}])
    (hint,) = (await engine.verdict(variants.app.ref, policy)).hints
    assert hint.alternative == tiny.ref
    assert hint.alternative_size == pull_bytes(tiny.artifact)  # type: ignore[arg-type]
    bigger = push(hint_registry.endpoint, "other/big-node", "20", stand_in("big-node", 2 * 1024 * 1024))
    policy = _hinted(variants, alternatives=[{"base": "*/base/node:20-bookworm", "candidates": [bigger.ref]}])
    (hint,) = (await engine.verdict(variants.app.ref, policy)).hints
    assert hint.alternative == variants.alpine.ref  # the named one is larger than the variant: not chosen


async def test_a_base_with_300_tags_is_listed_page_by_page_and_its_late_variant_found(
    paging_registry: Registry,
) -> None:
    engine = Engine(paging_registry)
    try:
        many = push_base_variants(paging_registry.endpoint, "base/many", app="shop/on-many")
        add_tags(paging_registry.endpoint, "base/many", many.slim, [f"1.{n:03d}" for n in range(296)])
        mark = paging_registry.mark()
        result = await engine.verdict(many.app.ref, _policy(knownBaseImages=[many.bookworm.ref], slimmerBases={}))
        (hint,) = result.hints
        assert hint.alternative == many.alpine.ref  # "20-alpine" sorts after the 296 "1.nnn" tags: not on page 1
        listed = [r for r in paging_registry.requests(since=mark) if r.kind == "tags"]
        pages = [r for r in listed if r.status == 200]
        assert len(pages) in (3, 4), listed  # 300 tags, 100 a page (and an empty last page, if the registry says so)
        assert all("n=100" in page.query for page in pages)
        assert ["last=" in page.query for page in pages][:3] == [False, True, True]
        again = await engine.verdict(many.app.ref, _policy(knownBaseImages=[many.bookworm.ref], slimmerBases={}))
        assert again.hints == result.hints
        assert [r for r in paging_registry.requests(since=mark) if r.kind == "tags"] == listed  # once per TTL
    finally:
        await engine.client.aclose()


async def test_a_base_whose_tag_list_is_refused_gives_no_hint_and_no_error(
    engine: Engine, hint_registry: Registry
) -> None:
    locked = push(hint_registry.endpoint, "locked/node", "20-bookworm", stand_in("locked-node", 3 * 1024 * 1024))
    push(hint_registry.endpoint, "locked/node", "20-alpine", stand_in("locked-alpine", 64 * 1024))
    app = push(
        hint_registry.endpoint,
        "shop/on-locked",
        "1.0",
        annotated(stand_in("on-locked", 200 * 1024, base=locked.artifact), locked),  # type: ignore[arg-type]
        mount_from=("locked/node",),
    )
    mark = hint_registry.mark()
    result = await engine.verdict(app.ref, _policy(slimmerBases={}))
    assert result.hints == ()
    assert [(f.rule, f.kind) for f in result.findings] == [("maxCompressedSize", FindingKind.VIOLATION)]
    refused = [r for r in hint_registry.requests(since=mark) if r.repository == "locked/node" and r.kind == "tags"]
    assert refused, "the tag list was not asked for"
    assert {r.status for r in refused} == {401}, refused  # anonymously, and again with the token that grants nothing
    again = await engine.verdict(app.ref, _policy(slimmerBases={}))
    assert again.hints == ()
    assert [r for r in hint_registry.requests(since=mark) if r.kind == "tags"] == refused  # once per TTL


async def test_a_base_with_no_slimmer_variant_says_so_once_however_often_it_is_asked(
    hint_registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    engine = Engine(hint_registry, hint_ttl=0.0)  # every evaluation measures again: the log still says it once
    try:
        lonely = push(hint_registry.endpoint, "base/lonely", "1-bookworm", stand_in("lonely", 3 * 1024 * 1024))
        push(hint_registry.endpoint, "base/lonely", "1-slim", stand_in("lonely-slim", 4 * 1024 * 1024))  # larger
        app = push(
            hint_registry.endpoint,
            "shop/on-lonely",
            "1.0",
            stand_in("on-lonely", 64 * 1024, base=lonely.artifact),  # type: ignore[arg-type]
            mount_from=("base/lonely",),
        )
        policy = _policy(knownBaseImages=[lonely.ref], slimmerBases={})
        with caplog.at_level("INFO", logger="slimguard.engine.alternatives"):
            for _ in range(3):
                result = await engine.verdict(app.ref, policy)
                assert result.hints == ()
                assert [f.rule for f in result.findings] == ["maxCompressedSize"]
        said = [r.getMessage() for r in caplog.records if "no slimmer variant" in r.getMessage()]
        assert said == [f"no slimmer variant of base {lonely.ref} found (1 candidates measured)"]
        assert engine.finder.tag_lists_fetched == 3  # the TTL of 0 let it ask again; it told nobody again
    finally:
        await engine.client.aclose()


async def test_admission_of_a_seen_image_with_hints_sends_no_registry_request(
    engine: Engine, hint_registry: Registry, variants: BaseVariants
) -> None:
    policy = _hinted(variants)
    first = await engine.verdict(variants.app.ref, policy, deadline=3.0)
    assert first.hints
    mark = hint_registry.mark()
    for _ in range(5):
        again = await engine.verdict(variants.app.ref, policy, deadline=3.0)
        assert again.hints == first.hints
    assert hint_registry.requests(since=mark) == []


# --- requireCurrentBase --------------------------------------------------------------------------------------

CURRENT = {"requireCurrentBase": True}


def _app_on(registry: Registry, base: FixtureImage, repository: str, seed: str) -> FixtureImage:
    image = annotated(stand_in(seed, 64 * 1024, base=base.artifact), base)  # type: ignore[arg-type]
    return push(registry.endpoint, repository, "1.0", image, mount_from=(base.repository,))


async def test_an_app_on_a_base_pushed_again_is_stale_until_rebuilt(hint_registry: Registry) -> None:
    engine = Engine(hint_registry, tag_ttl=0.0)  # every evaluation asks where the tag points now
    try:
        v1 = stand_in("stale-v1", 128 * 1024)
        base = push(hint_registry.endpoint, "base/stale", "v1", v1)
        app = _app_on(hint_registry, base, "shop/on-stale", "on-stale")
        policy = _policy(rules=CURRENT)
        assert (await engine.verdict(app.ref, policy)).status is Status.COMPLIANT
        moved = push(hint_registry.endpoint, "base/stale", "v1", stand_in("stale-v1-fix", 16 * 1024, base=v1))
        (finding,) = (await engine.verdict(app.ref, policy)).violations
        assert finding.rule == "requireCurrentBase"
        assert (finding.actual, finding.limit) == (base.digest, moved.digest)
        assert "stale:v1 has moved since: rebuild to pick up its fixes." in finding.message
        assert "days ago" in finding.message or "today" in finding.message
        rebuilt = _app_on(hint_registry, moved, "shop/on-stale", "on-stale")
        assert (await engine.verdict(rebuilt.ref, policy)).status is Status.COMPLIANT
    finally:
        await engine.client.aclose()


async def test_an_app_without_annotations_is_stale_by_the_layers_of_the_version_seen_before(
    hint_registry: Registry,
) -> None:
    engine = Engine(hint_registry, tag_ttl=0.0)
    try:
        v1 = stand_in("layers-v1", 128 * 1024)
        base = push(hint_registry.endpoint, "base/layered", "v1", v1)
        app_image = stand_in("on-layered", 64 * 1024, base=v1)
        app = push(hint_registry.endpoint, "shop/on-layered", "1.0", app_image, mount_from=("base/layered",))
        policy = _policy(rules=CURRENT, knownBaseImages=[base.ref])
        assert (await engine.verdict(app.ref, policy)).status is Status.COMPLIANT
        push(hint_registry.endpoint, "base/layered", "v1", stand_in("layers-v1-fix", 16 * 1024, base=v1))
        (finding,) = (await engine.verdict(app.ref, policy)).violations
        assert finding.actual == base.digest
        assert "found by 1 shared layers with a version slimguard read before" in finding.message
    finally:
        await engine.client.aclose()


async def test_a_multi_arch_base_whose_amd64_manifest_did_not_change_is_current_for_amd64(
    hint_registry: Registry,
) -> None:
    engine = Engine(hint_registry, tag_ttl=0.0)
    try:
        then = multiarch_base("multi-base", arm64_seed="multi-base-arm64-1")
        base = push(hint_registry.endpoint, "base/multi", "1", then)
        amd64 = then.image_for("linux/amd64")
        on_amd64 = annotated(stand_in("on-multi", 64 * 1024, base=amd64), base)
        app = push(hint_registry.endpoint, "shop/on-multi", "1.0", on_amd64, mount_from=("base/multi",))
        now = multiarch_base("multi-base", arm64_seed="multi-base-arm64-2")
        moved = push(hint_registry.endpoint, "base/multi", "1", now)
        assert moved.digest != base.digest
        assert now.image_for("linux/amd64").digest == amd64.digest
        result = await engine.verdict(app.ref, _policy(rules={**CURRENT, "platforms": ["linux/amd64"]}))
        assert result.status is Status.COMPLIANT, result.findings
    finally:
        await engine.client.aclose()


# --- in the cluster: the real webhook's denial, its registry requests, the controller's annotation and Event ---


def _kubectl_apply(plane: ControlPlane, document: dict[str, Any], *extra: str) -> subprocess.CompletedProcess[str]:
    return plane.kubectl("apply", *extra, "-f", "-", input=yaml.safe_dump(document), check=False)


@pytest.mark.timeout(240)  # a guard against hangs: 20 server dry runs on a shared 2-core machine
def test_kubectl_is_denied_naming_the_slimmer_base_and_a_seen_image_costs_no_registry_request(
    control_plane: ControlPlane, webhook: WebhookReplicas, hint_registry: Registry, variants: BaseVariants
) -> None:
    ns = "hints-enforce"
    policy = image_policy(
        "hints-enforce",
        {"maxCompressedSize": "2Mi"},
        namespaces=[ns],
        mode="Enforce",
        knownBaseImages=[variants.bookworm.ref],
        slimmerBases={},
    )
    apply(control_plane, namespace(ns), policy)
    fat = deployment("fat", ns, variants.app.ref)

    def denied_with_hint() -> subprocess.CompletedProcess[str] | None:
        result = _kubectl_apply(control_plane, fat, "--dry-run=server")
        return result if "Slimmer base:" in result.stderr else None

    result = wait_for("the webhook to deny with the hint", denied_with_hint, timeout=30)
    bookworm, alpine = variants.sizes[variants.bookworm.ref], variants.sizes[variants.alpine.ref]
    assert 'admission webhook "images.slimguard.dev" denied the request' in result.stderr
    assert (
        f"Slimmer base: base {variants.bookworm.ref} ({format_bytes(bookworm)}) → node:20-alpine "
        f"({format_bytes(alpine)}) would save ~{format_bytes(bookworm - alpine)} per pull (linux/amd64)."
    ) in " ".join(result.stderr.split())
    for _ in range(6):  # both replicas have seen it (the apiserver may spread reviews over them)
        _kubectl_apply(control_plane, fat, "--dry-run=server")
    mark = hint_registry.mark()
    for _ in range(6):
        again = _kubectl_apply(control_plane, fat, "--dry-run=server")
        assert "Slimmer base:" in again.stderr
    assert hint_registry.requests(since=mark) == []
    control_plane.kubectl("delete", "imagepolicy", "hints-enforce")


@pytest.mark.timeout(180)  # a guard against hangs: the controller's first audit on a shared machine
def test_the_controller_annotates_the_workload_with_the_hint_and_says_it_in_the_event(
    control_plane: ControlPlane, operator: InProcessOperator, variants: BaseVariants
) -> None:
    ns = "hints-audit"
    apply(
        control_plane,
        namespace(ns),
        image_policy(
            "hints-audit",
            {"maxCompressedSize": "2Mi"},
            namespaces=[ns],
            knownBaseImages=[variants.bookworm.ref],
            slimmerBases={},
        ),
    )
    time.sleep(1)  # the controller watches the new policy
    apply(control_plane, deployment("fat", ns, variants.app.ref))
    found = wait_for(
        "the slimmer-base annotation",
        lambda: annotations(control_plane, "deployment", "fat", ns).get("slimguard.dev/slimmer-base"),
    )
    (hint,) = json.loads(found)
    bookworm, alpine = variants.sizes[variants.bookworm.ref], variants.sizes[variants.alpine.ref]
    assert hint["alternative"] == variants.alpine.ref
    assert (hint["baseBytes"], hint["alternativeBytes"], hint["savedBytes"]) == (bookworm, alpine, bookworm - alpine)
    events = wait_for("the Event", lambda: _events(control_plane, ns, "fat"))
    assert "Slimmer base: base" in events[0]["message"]
    assert "node:20-alpine" in events[0]["message"]
    control_plane.kubectl("delete", "imagepolicy", "hints-audit")


@pytest.mark.timeout(180)  # a guard against hangs: the controller's first audit on a shared machine
def test_the_image_report_of_the_audited_image_carries_the_hint_until_its_policy_goes(
    control_plane: ControlPlane, operator: InProcessOperator, variants: BaseVariants
) -> None:
    ns = "hints-report"
    apply(
        control_plane,
        namespace(ns),
        image_policy(
            "hints-report",
            {"maxCompressedSize": "2Mi"},
            namespaces=[ns],
            knownBaseImages=[variants.bookworm.ref],
            slimmerBases={},
        ),
    )
    time.sleep(1)  # the controller watches the new policy
    apply(control_plane, deployment("fat", ns, variants.app.ref))
    name = report_name(variants.app.digest)

    def hints() -> list[dict[str, Any]]:
        body = get(control_plane, "imagereport", name) or {"report": {}}
        return [hint for hint in body["report"].get("slimmerBases", []) if hint["policy"] == "hints-report"]

    (hint,) = wait_for("the hint in the ImageReport", hints)
    bookworm, alpine = variants.sizes[variants.bookworm.ref], variants.sizes[variants.alpine.ref]
    assert hint == {
        "policy": "hints-report",
        "image": variants.app.ref,
        "base": variants.bookworm.ref,
        "baseBytes": bookworm,
        "alternative": variants.alpine.ref,
        "alternativeBytes": alpine,
        "savedBytes": bookworm - alpine,
        "platform": "linux/amd64",
    }
    row = control_plane.kubectl("get", "imagereport", name).stdout
    assert format_bytes(bookworm - alpine) in row  # the Saves column
    control_plane.kubectl("delete", "imagepolicy", "hints-report")
    wait_for("the hint to leave the report with its policy", lambda: not hints(), timeout=60)


def _events(plane: ControlPlane, ns: str, name: str) -> list[dict[str, Any]]:
    found = plane.kubectl(
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        f"reason=ImagePolicyViolation,involvedObject.name={name}",
        "-o",
        "json",
    ).stdout
    return list(json.loads(found)["items"])


TRIVY_CRD = Path(__file__).parent / "crds" / "aquasecurity.github.io_vulnerabilityreports.yaml"


@pytest.mark.timeout(240)  # a guard against hangs: three Deployments and the controller on a shared machine
def test_a_stale_base_is_flagged_with_what_trivy_operator_reports_for_both_versions(
    control_plane: ControlPlane, operator: InProcessOperator, registry: Registry
) -> None:
    apply_crd_while_kopf_runs(control_plane, TRIVY_CRD, "vulnerabilityreports.aquasecurity.github.io")
    ns = "hints-stale"
    v1 = stand_in("trivy-base-v1", 64 * 1024)
    then = push(registry.endpoint, "base/trivy-node", "20", v1)
    app = _app_on(registry, then, "shop/on-trivy-node", "on-trivy-node")
    now = push(registry.endpoint, "base/trivy-node", "20", stand_in("trivy-base-fix", 16 * 1024, base=v1))
    apply(
        control_plane,
        namespace(ns),
        deployment("old-base", ns, then.pinned),
        deployment("new-base", ns, now.pinned),
    )
    # Trivy Operator scanned the workloads running each version of the base.
    for name, version, found in (("old-base", then, ["CRITICAL", "CRITICAL", "HIGH"]), ("new-base", now, ["HIGH"])):
        replicaset, uid = _replicaset(control_plane, name, ns)
        apply(
            control_plane,
            vulnerability_report(
                namespace=ns,
                kind="ReplicaSet",
                name=replicaset,
                container="api",
                image=version.ref,
                digest=version.digest,
                updated=datetime.now(UTC),
                vulnerabilities=[vulnerability(f"CVE-2026-{1000 + n}", severity) for n, severity in enumerate(found)],
                owner_uid=uid,
            ),
        )
    # The reports are read once a policy reads them (requireCurrentBase does): they must be in the controller's
    # view before the workload is judged (nothing re-judges "app" when a report about its *base* arrives).
    apply(control_plane, image_policy("hints-stale", {"requireCurrentBase": True}, namespaces=[ns]))
    wait_for(
        "the controller to see both reports",
        lambda: all(operator.controller.view.digest_reports(ns, v.digest) for v in (then, now)),
        timeout=120,
    )
    apply(control_plane, deployment("app", ns, app.ref))
    found = wait_for_status(control_plane, "deployment", "app", ns, "noncompliant", timeout=120)
    (finding,) = violations(found)
    assert finding["rule"] == "requireCurrentBase"
    assert f"is built on {then.ref}@{then.digest}" in finding["message"]
    assert f"now points to {now.digest}" in finding["message"]
    assert finding["message"].endswith(
        "Trivy Operator counts 2 critical and 1 high vulnerabilities in the base it was built on, 0 and 1 in "
        "the current one (-2 critical, +0 high on a rebuild)."
    )
    control_plane.kubectl("delete", "imagepolicy", "hints-stale")


def _replicaset(plane: ControlPlane, name: str, ns: str) -> tuple[str, str]:
    found = wait_for(
        f"the ReplicaSet of {name}",
        lambda: plane.kubectl(
            "get",
            "rs",
            "-n",
            ns,
            "-l",
            f"app={name}",
            "-o",
            "jsonpath={.items[0].metadata.name} {.items[0].metadata.uid}",
            check=False,
        ).stdout.strip(),
    )
    replicaset, uid = found.split()
    return replicaset, uid
