"""The one patch every workload kind is written with: addressed by URL, a merge patch, fenced like every write."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k8s

from slimguard.kube.gateway import MERGE_PATCH, KubeGateway, NotLeader


class _Answer:
    def __init__(self, status: int) -> None:
        self.status = status
        self.reason = "Not Found" if status == 404 else "OK"
        self.data = b'{"kind": "Status"}'
        self.headers: dict[str, str] = {}
        self.response = self
        self.drained = False

    def read(self) -> bytes:
        return self.data

    def drain_conn(self) -> None:
        self.drained = True

    def getheaders(self) -> dict[str, str]:
        return self.headers


class RecordingClient(k8s.ApiClient):
    """A real ApiClient (so the URL, headers and body are built as in production) whose requests are recorded."""

    def __init__(self, status: int = 200) -> None:
        super().__init__(k8s.Configuration(host="https://apiserver.test:6443"))
        self.status = status
        self.sent: list[tuple[str, str, dict[str, str], Any]] = []
        self.answers: list[_Answer] = []

    def call_api(self, method: str, url: str, header_params: Any = None, body: Any = None, *_: Any, **__: Any) -> Any:
        self.sent.append((method, url, dict(header_params or {}), body))
        self.answers.append(_Answer(self.status))
        return self.answers[-1]


@pytest.mark.parametrize(
    ("kind", "url"),
    [
        ("Deployment", "https://apiserver.test:6443/apis/apps/v1/namespaces/shop/deployments/api"),
        ("CronJob", "https://apiserver.test:6443/apis/batch/v1/namespaces/shop/cronjobs/api"),
        ("Pod", "https://apiserver.test:6443/api/v1/namespaces/shop/pods/api"),
    ],
)
async def test_every_kind_is_patched_by_url_with_a_merge_patch(kind: str, url: str) -> None:
    api = RecordingClient()
    found = await KubeGateway(api).patch_metadata(
        kind, "shop", "api", labels={"slimguard.dev/status": "compliant"}, annotations={"slimguard.dev/old": None}
    )
    assert found
    ((method, sent_to, headers, body),) = api.sent
    assert (method, sent_to, headers["Content-Type"]) == ("PATCH", url, MERGE_PATCH)
    assert body == {
        "metadata": {"labels": {"slimguard.dev/status": "compliant"}, "annotations": {"slimguard.dev/old": None}}
    }
    assert api.answers[0].drained, "the answer is not read, and its connection goes back to the pool"


async def test_a_custom_kind_is_patched_by_the_same_method() -> None:
    api = RecordingClient()
    await KubeGateway(api).patch_obj(
        resource=("argoproj.io", "v1alpha1", "rollouts"), namespace="shop", name="api", patch={"metadata": {}}
    )
    assert api.sent[0][1] == "https://apiserver.test:6443/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/api"


async def test_a_workload_gone_is_said_and_nothing_is_sent_by_a_replica_that_does_not_lead() -> None:
    gone = RecordingClient(status=404)
    assert not await KubeGateway(gone).patch_metadata("Deployment", "shop", "api", labels={"a": "b"})

    standby = RecordingClient()
    with pytest.raises(NotLeader):
        await KubeGateway(standby, may_write=lambda: False).patch_metadata(
            "Deployment", "shop", "api", labels={"a": "b"}
        )
    assert standby.sent == []

    dry = RecordingClient()
    assert await KubeGateway(dry, dry_run=True).patch_metadata("Deployment", "shop", "api", labels={"a": "b"})
    assert dry.sent == []
