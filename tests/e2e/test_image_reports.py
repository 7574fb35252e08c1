"""ImageReports end to end: the controller writes one per digest, `kubectl get imagereports` shows them, a
restarted controller and a new webhook replica read nothing again from the registry for reported digests, and
the report of a digest no workload uses goes after the grace period."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster import apply, deployment, get, image_policy, namespace, wait_for, wait_for_status

from slimguard.core.facts.image_facts import FactsNeeds
from slimguard.core.facts.image_report import read_report, report_name
from slimguard.core.model.platform import Platform
from slimguard.core.model.quantity import format_bytes
from slimguard.registry.client import RegistryClient
from slimguard.registry.inspector import ImageInspector
from slimguard_testbed import CertificateAuthority, ControlPlane, Registry
from slimguard_testbed.images import FixtureImage, push_image
from slimguard_testbed.kubelet_events import present_message, pulled_event, pulled_message
from slimguard_testbed.operator_runner import InProcessOperator
from slimguard_testbed.webhook import WebhookReplicas, register, webhook_configuration

NS = "image-reports"
AMD64 = Platform("linux", "amd64")
WEBHOOK_TEMPLATE = (
    Path(__file__).resolve().parents[2] / "deploy" / "kustomize" / "base" / "validatingwebhookconfiguration.yaml"
)
DENIED = 'admission webhook "images.slimguard.dev" denied the request'


@dataclasses.dataclass(frozen=True)
class Images:
    tagged: FixtureImage  # run by tag
    pinned: FixtureImage  # run by digest
    short_lived: FixtureImage  # run, then no more


@pytest.fixture(scope="module")
def images(registry: Registry) -> Images:
    def two_layers(name: str) -> FixtureImage:
        files = [{f"/app/{name}/{n}.txt": f"{name} {n}".encode() * 2000} for n in range(2)]
        return push_image(registry.endpoint, f"shop/reports-{name}", "1.0", files, user="10001")

    return Images(two_layers("tagged"), two_layers("pinned"), two_layers("short-lived"))


@pytest.fixture(scope="module")
def audited(control_plane: ControlPlane, operator: InProcessOperator, images: Images) -> Iterator[None]:
    """Both images audited by the controller under a policy that reads their layer trailers."""
    rules = {"maxCompressedSize": "200Mi", "maxUncompressedSize": "1Gi", "maxLayers": 1}
    apply(control_plane, namespace(NS), image_policy("reports", rules, namespaces=[NS], mode="Enforce"))
    wait_for("the controller to see the policy", lambda: "reports" in operator.controller.view.policies)
    apply(
        control_plane,
        deployment("tagged", NS, images.tagged.ref),
        deployment("pinned", NS, images.pinned.pinned),
    )
    for name in ("tagged", "pinned"):
        wait_for_status(control_plane, "deployment", name, NS, "noncompliant")  # two layers, maxLayers 1
    for image in (images.tagged, images.pinned):
        wait_for(f"the report of {image.ref}", lambda image=image: _report(control_plane, image.digest))
    yield
    control_plane.kubectl("delete", "namespace", NS, "--wait=false")
    control_plane.kubectl("delete", "imagepolicy", "reports", "--ignore-not-found")


def _report(plane: ControlPlane, digest: str) -> dict[str, Any] | None:
    return get(plane, "imagereport", report_name(digest))


def _requests(registry: Registry, image: FixtureImage, since: int) -> list[tuple[str, str | None, int]]:
    return [(r.method, r.kind, r.status) for r in registry.requests(since=since) if r.repository == image.repository]


# A restarted controller re-audits every workload the session's earlier tests left in the cluster before it is
# idle: on a slow host that alone took most of a minute. Deadlines for waiting, not claims.
RESTART_SECONDS = 180
pytestmark = pytest.mark.timeout(RESTART_SECONDS + 120)


def _settled(operator: InProcessOperator, names: tuple[str, ...], ns: str = NS) -> bool:
    controller = operator.controller
    done = {key.name for key in controller.verdicts if key.namespace == ns}
    return set(names) <= done and controller.idle


@pytest.mark.usefixtures("audited")
def test_kubectl_get_imagereports_shows_each_audited_image(control_plane: ControlPlane, images: Images) -> None:
    table = control_plane.kubectl("get", "imagereports").stdout
    header, *rows = table.splitlines()
    columns = ["NAME", "IMAGE", "COMPRESSED", "PACKAGES", "TOOLS", "EFFICIENCY", "SAVES", "PULLS", "AGE"]
    assert header.split() == columns
    for image in (images.tagged, images.pinned):
        (row,) = [row for row in rows if row.startswith(report_name(image.digest))]
        assert (image.ref if image is images.tagged else image.pinned) in row
        size = (_report(control_plane, image.digest) or {})["report"]["summary"]["compressedBytes"]
        assert " ".join(row.split()[2:4]) == format_bytes(size)
    short = control_plane.kubectl("get", "imgrep", "-o", "name").stdout
    assert f"imagereport.slimguard.dev/{report_name(images.tagged.digest)}" in short


@pytest.mark.usefixtures("audited")
def test_a_report_read_back_from_the_apiserver_holds_the_facts_the_registry_gives(
    control_plane: ControlPlane, registry: Registry, operator: InProcessOperator, images: Images
) -> None:
    """Nothing pruned by the CRD's schema, nothing lost in JSON: the report is the facts."""
    body = _report(control_plane, images.tagged.digest)
    assert body is not None
    stored = read_report(body)

    async def from_registry() -> Any:
        client = RegistryClient(operator.settings.registry)
        try:
            return await ImageInspector(client).inspect(
                images.tagged.ref, FactsNeeds(frozenset([AMD64]), uncompressed=True)
            )
        finally:
            await client.aclose()

    assert stored.facts == asyncio.run(from_registry())
    assert stored.references == (images.tagged.ref,)
    assert stored.truncated == ()
    layers = body["report"]["platforms"][0]["layers"]
    assert [layer["createdBy"] for layer in layers] == ["COPY . / # buildkit"] * 2
    assert all(layer["uncompressedSize"] > 0 for layer in layers)


@pytest.mark.usefixtures("audited")
def test_a_restarted_controller_reads_nothing_again_for_reported_digests_but_the_tags_head(
    control_plane: ControlPlane, registry: Registry, operator: InProcessOperator, images: Images
) -> None:
    before = {image: _report(control_plane, image.digest) for image in (images.tagged, images.pinned)}
    mark = registry.mark()
    operator.restart()
    wait_for(
        "the restarted controller to audit both",
        lambda: _settled(operator, ("tagged", "pinned")),
        timeout=RESTART_SECONDS,
    )
    # The tag may have moved: one HEAD (a 401 first, when the token is fetched), then the report answers.
    assert [r for r in _requests(registry, images.tagged, mark) if r[2] < 400] == [("HEAD", "manifests", 200)]
    assert _requests(registry, images.pinned, mark) == []
    verdict = operator.controller.verdicts
    assert {f.rule for key, v in verdict.items() if key.name == "pinned" for f in v.violations} == {"maxLayers"}
    after = {image: _report(control_plane, image.digest) for image in (images.tagged, images.pinned)}
    assert all(
        after[image]["metadata"]["resourceVersion"] == before[image]["metadata"]["resourceVersion"]  # type: ignore[index]
        for image in after
    ), "nothing learned, so nothing rewritten"


@pytest.fixture
def new_webhook(
    control_plane: ControlPlane,
    webhook_kubeconfig: str,
    registry: Registry,
    testbed_ca: CertificateAuthority,
    tmp_path: Path,
) -> Iterator[WebhookReplicas]:
    """A webhook replica started after the reports exist, registered as the install registers it."""
    replicas = WebhookReplicas(
        kubeconfig=webhook_kubeconfig,
        ca=testbed_ca,
        registry_ca_file=str(registry.ca_file),
        workdir=tmp_path,
        replicas=1,
    )
    with replicas:
        register(
            control_plane,
            webhook_configuration(WEBHOOK_TEMPLATE, url=replicas.url, ca_pem=testbed_ca.cert_pem, name="reports-e2e"),
        )
        yield replicas
        control_plane.kubectl("delete", "validatingwebhookconfiguration", "reports-e2e", "--ignore-not-found")


def _dry_run_pod(plane: ControlPlane, name: str, image: str, ns: str = NS) -> Any:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [{"name": "api", "image": image}]},
    }
    return plane.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(pod), check=False)


@pytest.mark.usefixtures("audited")
def test_a_new_webhook_replica_answers_a_digest_reference_from_its_report_with_no_registry_request(
    control_plane: ControlPlane, registry: Registry, images: Images, new_webhook: WebhookReplicas
) -> None:
    mark = registry.mark()
    pinned = _dry_run_pod(control_plane, "pinned", images.pinned.pinned)
    assert pinned.returncode != 0
    assert DENIED in pinned.stderr
    assert "has 2 layers" in pinned.stderr, pinned.stderr
    assert _requests(registry, images.pinned, mark) == []
    tagged = _dry_run_pod(control_plane, "tagged", images.tagged.ref)
    assert DENIED in tagged.stderr
    assert [r for r in _requests(registry, images.tagged, mark) if r[2] < 400] == [("HEAD", "manifests", 200)]
    metrics = new_webhook.metrics(0)
    assert 'slimguard_cache_lookups_total{cache="reports",result="hit"}' in metrics


def test_the_report_of_a_digest_no_workload_uses_goes_after_the_grace_period(
    control_plane: ControlPlane, operator: InProcessOperator, images: Images, audited: None
) -> None:
    original = operator.settings
    operator.restart(dataclasses.replace(original, report_grace_seconds=2.0))
    try:
        apply(control_plane, deployment("short-lived", NS, images.short_lived.ref))
        wait_for("its report", lambda: _report(control_plane, images.short_lived.digest))
        control_plane.kubectl("delete", "deployment", "short-lived", "-n", NS)
        wait_for("its report to go", lambda: _report(control_plane, images.short_lived.digest) is None, timeout=60)
        # Still run: kept, however many sweeps went by.
        assert _report(control_plane, images.tagged.digest) is not None
        assert _report(control_plane, images.pinned.digest) is not None
        assert operator.controller.idle
    finally:
        operator.restart(original)


@pytest.mark.usefixtures("audited")
def test_a_garbled_report_is_ignored_and_written_again(
    control_plane: ControlPlane, registry: Registry, operator: InProcessOperator, images: Images
) -> None:
    """Someone wrote nonsense into the pinned image's report: a restarted controller reads the registry rather
    than trust it, and puts the true report back."""
    name = report_name(images.pinned.digest)
    patch = {"report": {"platforms": [{"platform": {"os": "linux", "architecture": "amd64"}, "layers": "x"}]}}
    control_plane.kubectl("patch", "imagereport", name, "--type=merge", "-p", json.dumps(patch), check=False)
    # The CRD's schema refuses the wrong type; a field it allows but slimguard does not (a foreign digest) gets in.
    forged = {"report": {"digest": images.tagged.digest}}
    control_plane.kubectl("patch", "imagereport", name, "--type=merge", "-p", json.dumps(forged))
    mark = registry.mark()
    operator.restart()
    wait_for("the restarted controller to audit", lambda: _settled(operator, ("pinned",)), timeout=RESTART_SECONDS)
    assert [r for r in _requests(registry, images.pinned, mark) if r[2] < 400]  # read again: not trusted
    verdict = {f.rule for key, v in operator.controller.verdicts.items() if key.name == "pinned" for f in v.violations}
    assert verdict == {"maxLayers"}

    def rewritten() -> bool:
        body = _report(control_plane, images.pinned.digest)
        return body is not None and body["report"]["digest"] == images.pinned.digest

    wait_for("the report written again", rewritten)
    assert read_report(_report(control_plane, images.pinned.digest) or {}).facts is not None


# --- the kubelets' pulls: folded into the report once, kept when their Events expire -------------------------


@pytest.mark.usefixtures("audited")
def test_the_kubelets_pulls_are_counted_once_across_a_restart_and_kept_when_their_events_expire(
    control_plane: ControlPlane, operator: InProcessOperator, images: Images
) -> None:
    """Pulled Events as a kubelet records them (this tier has none: made through the API in its format), naming the
    pinned image by digest: folded into its report; listed again by a restarted controller, counted no more; gone
    (as the apiserver's --event-ttl removes them), nothing counted is lost, and a new pull adds to the rest."""
    digest = images.pinned.digest
    by_digest = f"{images.pinned.ref.rsplit(':', 1)[0]}@{digest}"

    def pulled(pod: str, message: str) -> None:
        event = pulled_event(namespace=NS, pod=pod, container="api", node="pulls-node", message=message)
        apply(control_plane, event)

    def pulls() -> dict[str, Any]:
        body = _report(control_plane, digest) or {}
        return dict(body.get("report", {}).get("pulls") or {})

    def counted(cold: int, warm: int) -> bool:
        found = pulls()
        return (found.get("coldPulls"), found.get("warmPulls")) == (cold, warm)

    pulled("pinned-0", pulled_message(by_digest, 12.5, 12.5, 4096))
    pulled("pinned-1", pulled_message(by_digest, 7.5, 9.0, 4096))
    pulled("pinned-2", present_message(by_digest))
    wait_for("the pulls in the report", lambda: counted(2, 1))

    operator.restart()
    ledger = operator.memo["replica"].pulls
    wait_for("the restarted controller to fold the Events listed", lambda: ledger.events_seen >= 3 and ledger.idle)
    assert counted(2, 1), pulls()

    # The Events expire; the controller restarts without them, and one more pull comes.
    control_plane.kubectl("delete", "events", "-n", NS, "--field-selector", "reason=Pulled")
    operator.restart()
    pulled("pinned-3", pulled_message(by_digest, 10.0, 10.0, 4096))
    wait_for("the new pull added to those kept", lambda: counted(3, 1))
    found = pulls()
    assert found["pullSeconds"] == {"sum": 30, "max": 12.5, "p50": 10}
    assert found["bytesPulled"] == 3 * 4096
    assert found["nodes"] == 1


# --- the layers' contents: read by the controller once, then only from the report -----------------------------

CONTENT_NS = "image-reports-content"


@pytest.fixture(scope="module")
def tools_image(registry: Registry) -> FixtureImage:
    """A slim image with a compiler left in it (the layer that adds it is the one to blame)."""
    layers = [{"/usr/bin/gcc": (b"\x7fELF not really gcc", 0o755)}, {"/app/server.txt": b"serve\n" * 500}]
    return push_image(registry.endpoint, "shop/reports-tools", "1.0", layers, user="10001")


@pytest.fixture(scope="module")
def content_policy(control_plane: ControlPlane, operator: InProcessOperator) -> Iterator[str]:
    rules = {"forbiddenTools": ["compilers"]}
    apply(
        control_plane,
        namespace(CONTENT_NS),
        image_policy("reports-content", rules, namespaces=[CONTENT_NS], mode="Enforce"),
    )
    wait_for("the controller to see the policy", lambda: "reports-content" in operator.controller.view.policies)
    yield CONTENT_NS
    control_plane.kubectl("delete", "namespace", CONTENT_NS, "--wait=false")
    control_plane.kubectl("delete", "imagepolicy", "reports-content", "--ignore-not-found")


def test_content_rules_wait_for_the_report_at_admission_then_a_new_replica_answers_them_from_it(
    control_plane: ControlPlane,
    registry: Registry,
    operator: InProcessOperator,
    tools_image: FixtureImage,
    content_policy: str,
    new_webhook: WebhookReplicas,
) -> None:
    # No report yet: the webhook reads no layer, so the content rule is decided by onUnknown (Allow), with a
    # warning that says why; the controller reads the layers and writes the report.
    created = control_plane.kubectl(
        "apply", "-f", "-", input=yaml.safe_dump(deployment("tools", content_policy, tools_image.ref))
    )
    assert "ImageReport is on its way" in created.stderr, created.stderr
    wait_for_status(control_plane, "deployment", "tools", content_policy, "noncompliant")
    report = wait_for("the report with the contents", lambda: _report(control_plane, tools_image.digest))
    assert report["report"]["summary"]["tools"] == "compilers(1)"
    assert report["report"]["platforms"][0]["content"]["tools"][0] == {
        "category": "compilers", "what": "usr/bin/gcc", "byPackage": False, "layer": 0
    }  # fmt: skip
    row = control_plane.kubectl("get", "imagereport", report_name(tools_image.digest), "--no-headers").stdout
    assert tools_image.ref in row
    assert "compilers(1)" in row

    # A replica that started before the report existed answers from it once its watch has it: no registry request
    # for a digest reference, and the content rule decides.
    mark = registry.mark()
    denied = wait_for(
        "the replica to answer from the report",
        lambda: (r := _dry_run_pod(control_plane, "tools", tools_image.pinned, content_policy)).returncode != 0 and r,
    )
    assert DENIED in denied.stderr
    assert "usr/bin/gcc" in denied.stderr, denied.stderr
    assert _requests(registry, tools_image, mark) == []


def test_a_restarted_controller_reads_no_layer_again(
    control_plane: ControlPlane,
    registry: Registry,
    operator: InProcessOperator,
    tools_image: FixtureImage,
    content_policy: str,
) -> None:
    if _report(control_plane, tools_image.digest) is None:  # run alone: have the controller read it first
        apply(control_plane, deployment("tools", content_policy, tools_image.ref))
        wait_for("the report", lambda: _report(control_plane, tools_image.digest))
    mark = registry.mark()
    operator.restart()
    wait_for(
        "the restarted controller to audit",
        lambda: _settled(operator, ("tools",), content_policy),
        timeout=RESTART_SECONDS,
    )
    made = [r for r in _requests(registry, tools_image, mark) if r[2] < 400]
    assert made == [("HEAD", "manifests", 200)], "no manifest, no config, no layer read again"
    verdict = next(v for key, v in operator.controller.verdicts.items() if key.name == "tools")
    assert {f.rule for f in verdict.violations} == {"forbiddenTools"}
