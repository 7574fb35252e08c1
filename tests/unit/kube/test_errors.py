"""The kube adapter's own error tree: every refusal of the apiserver reaches callers as one of ``kube.errors``,
chaining the client's exception, so controller/ and cli/ never catch (nor import) the client's own."""

from __future__ import annotations

import json

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
    Unavailable,
    translated,
)
from slimguard.kube.gateway import KubeGateway, load_api_client
from slimguard.kube.policy_reports import ReportApiMissing, ReportWriteFailed
from slimguard.kube.webhook_certificates import CertificateStoreError, WriteConflict


def _refusal(status: int, reason: str, message: str | None = None) -> ApiException:
    error = ApiException(status=status, reason=reason)
    error.body = json.dumps({"kind": "Status", "message": message}) if message else None
    return error


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, Invalid), (401, Forbidden), (403, Forbidden), (404, NotFound), (409, Conflict), (422, Invalid),
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
