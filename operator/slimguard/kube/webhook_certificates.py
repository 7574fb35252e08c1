"""The webhook's certificate Secret and the caBundle of its ValidatingWebhookConfiguration, as the API holds them.

Every replica runs the same certificate manager and none is elected: each write names the resourceVersion it was
computed from, so when two replicas act at once exactly one write lands and the other is told (``WriteConflict``)
and reads the winner's. Errors are this module's own, carrying a message that names the object and what the
apiserver said, so the manager logs one line and the ``kubernetes`` client stays behind this edge.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from slimguard.kube.errors import Conflict, KubeError

FIELD_MANAGER = "slimguard-webhook"
OWNER_API_VERSION = "admissionregistration.k8s.io/v1"
OWNER_KIND = "ValidatingWebhookConfiguration"
MANAGED_BY = {
    "app.kubernetes.io/name": "slimguard",
    "app.kubernetes.io/component": "webhook",
    "app.kubernetes.io/managed-by": FIELD_MANAGER,
}


class CertificateStoreError(KubeError):
    """The apiserver refused a read or a write (RBAC, a missing namespace, ...); the message says which and why."""


class WriteConflict(CertificateStoreError, Conflict):
    """Another writer changed the object since it was read (or created it first): read it again."""


@dataclass(frozen=True)
class StoredSecret:
    body: dict[str, Any]

    @property
    def data(self) -> dict[str, str]:
        return dict(self.body.get("data") or {})

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.body["metadata"].get("annotations") or {})

    @property
    def resource_version(self) -> str:
        return str(self.body["metadata"]["resourceVersion"])

    @property
    def owner_uids(self) -> frozenset[str]:
        return frozenset(str(ref.get("uid")) for ref in self.body["metadata"].get("ownerReferences") or ())


@dataclass(frozen=True)
class WebhookConfiguration:
    name: str
    uid: str
    resource_version: str
    ca_bundles: tuple[tuple[str, bytes], ...]
    """Each webhook's name and its clientConfig.caBundle (decoded; empty when it has none), in order."""


def _refusal(error: ApiException, what: str) -> CertificateStoreError:
    try:
        message = json.loads(error.body or "{}").get("message") or error.reason
    except ValueError:
        message = error.reason
    kind = WriteConflict if error.status == 409 else CertificateStoreError
    return kind(
        f"{what}: {error.status} {error.reason}: {message}", status=error.status or 0, reason=error.reason or ""
    )


class WebhookCertificateStore:
    def __init__(self, api: k8s.ApiClient, *, namespace: str, secret_name: str, configuration_name: str) -> None:
        self.namespace, self.secret_name, self.configuration_name = namespace, secret_name, configuration_name
        self.core = k8s.CoreV1Api(api)
        self.admission = k8s.AdmissionregistrationV1Api(api)

    @property
    def secret_ref(self) -> str:
        return f"Secret {self.namespace}/{self.secret_name}"

    async def _json(self, what: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """The API's answer as plain JSON (not the client's models); None for 404."""

        def call() -> Any:
            response = function(*args, _preload_content=False, **kwargs)
            return json.loads(response.data)

        try:
            return await asyncio.to_thread(call)
        except ApiException as error:
            if error.status == 404:
                return None
            raise _refusal(error, what) from None
        except (HTTPError, OSError) as error:  # no answer at all: the apiserver away, the network down
            raise CertificateStoreError(f"{what}: {error}") from None

    async def read_secret(self) -> StoredSecret | None:
        body = await self._json(
            f"cannot read {self.secret_ref}", self.core.read_namespaced_secret, self.secret_name, self.namespace
        )
        return StoredSecret(body) if body else None

    def _owner(self, owner: WebhookConfiguration | None) -> list[dict[str, Any]]:
        # The webhook configuration owns the Secret: uninstalling slimguard (deleting it) lets Kubernetes' garbage
        # collector delete the CA with it. Not blockOwnerDeletion, which would need more RBAC for nothing.
        if owner is None:
            return []
        return [{"apiVersion": OWNER_API_VERSION, "kind": OWNER_KIND, "name": owner.name, "uid": owner.uid}]

    async def create_secret(
        self, *, data: Mapping[str, str], annotations: Mapping[str, str | None], owner: WebhookConfiguration | None
    ) -> StoredSecret:
        """Create the Secret; ``WriteConflict`` when it exists already (another replica made it first)."""
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {
                "name": self.secret_name,
                "namespace": self.namespace,
                "labels": dict(MANAGED_BY),
                "annotations": {key: value for key, value in annotations.items() if value is not None},
                "ownerReferences": self._owner(owner),
            },
            "data": dict(data),
        }
        created = await self._json(
            f"cannot create {self.secret_ref}",
            self.core.create_namespaced_secret,
            self.namespace,
            body,
            field_manager=FIELD_MANAGER,
        )
        return StoredSecret(created)

    async def replace_secret(
        self,
        read: StoredSecret,
        *,
        data: Mapping[str, str],
        annotations: Mapping[str, str | None],
        owner: WebhookConfiguration | None,
    ) -> StoredSecret:
        """Replace what ``read`` held (its labels and others' annotations kept); ``WriteConflict`` when it changed
        since: the resourceVersion read is a precondition of the write."""
        metadata = dict(read.body["metadata"])
        metadata.pop("managedFields", None)  # left out, the apiserver keeps them; sent back, it takes them as given
        kept = {key: value for key, value in (metadata.get("annotations") or {}).items() if key not in annotations}
        metadata["annotations"] = kept | {key: value for key, value in annotations.items() if value is not None}
        if owner is not None:
            others = [ref for ref in metadata.get("ownerReferences") or () if ref.get("kind") != OWNER_KIND]
            metadata["ownerReferences"] = others + self._owner(owner)
        body = {**read.body, "metadata": metadata, "data": dict(data)}
        replaced = await self._json(
            f"cannot update {self.secret_ref}",
            self.core.replace_namespaced_secret,
            self.secret_name,
            self.namespace,
            body,
            field_manager=FIELD_MANAGER,
        )
        if replaced is None:  # deleted since it was read
            raise WriteConflict(f"cannot update {self.secret_ref}: it was deleted meanwhile")
        return StoredSecret(replaced)

    async def read_configuration(self) -> WebhookConfiguration | None:
        body = await self._json(
            f"cannot read ValidatingWebhookConfiguration {self.configuration_name}",
            self.admission.read_validating_webhook_configuration,
            self.configuration_name,
        )
        if body is None:
            return None
        bundles = tuple(
            (str(hook.get("name")), base64.b64decode((hook.get("clientConfig") or {}).get("caBundle") or ""))
            for hook in body.get("webhooks") or ()
        )
        metadata = body["metadata"]
        return WebhookConfiguration(
            name=metadata["name"],
            uid=metadata["uid"],
            resource_version=metadata["resourceVersion"],
            ca_bundles=bundles,
        )

    async def patch_ca_bundle(self, configuration: WebhookConfiguration, bundle: bytes) -> None:
        """Set every webhook's caBundle to ``bundle``, as of the configuration read: a JSON patch that tests the
        resourceVersion and each webhook's name first, so it changes nothing if the object changed since."""
        encoded = base64.b64encode(bundle).decode()
        operations: list[dict[str, Any]] = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": configuration.resource_version}
        ]
        for index, (name, current) in enumerate(configuration.ca_bundles):
            if current != bundle:
                operations.append({"op": "test", "path": f"/webhooks/{index}/name", "value": name})
                operations.append({"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle", "value": encoded})
        what = f"cannot patch the caBundle of ValidatingWebhookConfiguration {configuration.name}"
        patch: Callable[..., Any] = self.admission.patch_validating_webhook_configuration

        def call() -> None:
            response = patch(
                configuration.name,
                operations,
                field_manager=FIELD_MANAGER,
                _content_type="application/json-patch+json",
                _preload_content=False,
            )
            response.drain_conn()

        try:
            await asyncio.to_thread(call)
        except ApiException as error:
            if error.status in (404, 409, 422):  # gone, or changed since it was read (a failed test is 422)
                raise WriteConflict(f"{what}: it changed since it was read ({error.status} {error.reason})") from None
            raise _refusal(error, what) from None
        except (HTTPError, OSError) as error:
            raise CertificateStoreError(f"{what}: {error}") from None
