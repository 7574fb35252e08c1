"""The kube adapter's own error tree: every refusal of the apiserver reaches callers as one of ``kube.errors``,
chaining the client's exception, so controller/ and cli/ never catch (nor import) the client's own."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from kube.test_gateway import RecordingClient
from slimguard.kube.errors import (
    Conflict,
    Forbidden,
    Invalid,
    KubeError,
    NotConfigured,
    NotFound,
    Unauthorized,
    Unavailable,
    translated,
)
from slimguard.kube.gateway import KubeGateway, load_api_client
from slimguard.kube.lease import LeaseClient, LeaseRecord
from slimguard.kube.policy_reports import ReportApiMissing, ReportWriteFailed
from slimguard.kube.webhook_certificates import CertificateStoreError, WriteConflict


def _refusal(status: int, reason: str, message: str | None = None) -> ApiException:
    error = ApiException(status=status, reason=reason)
    error.body = json.dumps({"kind": "Status", "message": message}) if message else None
    return error


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, Invalid), (401, Unauthorized), (403, Forbidden), (404, NotFound), (409, Conflict), (422, Invalid),
     (429, Unavailable), (500, Unavailable), (503, Unavailable), (418, KubeError)],
)  # fmt: skip
def test_each_answer_is_its_kind_with_the_status_reason_and_the_apiservers_words(status: int, kind: type) -> None:
    error = translated(_refusal(status, "Why", "what RBAC said"), "listing imagepolicies")
    assert type(error) is kind
    assert (error.status, error.reason) == (status, "Why")
    assert str(error) == f"listing imagepolicies: {status} Why: what RBAC said"
    assert str(translated(_refusal(status, "Why"))) == f"{status} Why"


def test_the_adapters_own_errors_are_in_the_tree() -> None:
    assert issubclass(ReportApiMissing, NotFound)
    assert issubclass(ReportWriteFailed, KubeError)
    assert issubclass(CertificateStoreError, KubeError)
    assert issubclass(WriteConflict, Conflict)
    assert issubclass(WriteConflict, CertificateStoreError)


async def test_a_refused_patch_is_raised_as_the_trees_error_chaining_the_clients() -> None:
    with pytest.raises(Forbidden) as raised:
        await KubeGateway(RecordingClient(status=403)).patch_metadata("Deployment", "shop", "api", labels={"a": "b"})
    assert raised.value.status == 403
    assert isinstance(raised.value.__cause__, ApiException)


def test_no_cluster_configured_is_not_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``slimguard check --cluster`` says as "no cluster to read ImagePolicies from: ..."."""
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(NotConfigured, match="kube-config"):
        load_api_client(None)
    with pytest.raises(NotConfigured):
        load_api_client("/nonexistent/kubeconfig")


class _LeaseAnswers(RecordingClient):
    """Answers every lease request with ``status`` and a Lease body."""

    def call_api(self, method: str, url: str, header_params: Any = None, body: Any = None, *_: Any, **__: Any) -> Any:
        answer = super().call_api(method, url, header_params, body)
        answer.data = json.dumps({"metadata": {"resourceVersion": "7"}, "spec": {"holderIdentity": "a"}}).encode()
        return answer


@pytest.mark.parametrize(("status", "found"), [(200, "a"), (404, None)])
async def test_the_lease_client_reads_a_lease_or_none(status: int, found: str | None) -> None:
    lease = LeaseClient(_LeaseAnswers(status), namespace="slimguard", name="slimguard-controller", timeout=1)
    try:
        record = await lease.get()
        assert (record.holder if record else None) == found
    finally:
        lease.close()


@pytest.mark.parametrize("status", [404, 409])
async def test_a_lease_written_meanwhile_is_none_and_a_refusal_is_forbidden(status: int) -> None:
    record = LeaseRecord(holder="b", duration_seconds=15, resource_version="6")
    lease = LeaseClient(_LeaseAnswers(status), namespace="slimguard", name="slimguard-controller", timeout=1)
    forbidden = LeaseClient(_LeaseAnswers(403), namespace="slimguard", name="slimguard-controller", timeout=1)
    try:
        assert await lease.replace(record) is None
        assert status != 409 or await lease.create(record) is None
        with pytest.raises(Forbidden):
            await forbidden.replace(record)
    finally:
        lease.close()
        forbidden.close()
