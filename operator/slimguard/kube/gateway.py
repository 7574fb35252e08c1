"""Every write slimguard makes to the Kubernetes API, and the few reads it cannot get from watches.

What the apiserver refuses is raised as ``kube.errors`` (``NotFound``, ``Conflict``, ``Forbidden``, ...), chaining the
client's exception: callers outside this package never see the ``kubernetes`` client's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from slimguard.kube.errors import Conflict, Forbidden, KubeError, NotConfigured, NotFound, translated
from slimguard.kube.resources import IMAGE_REPORT_RESOURCE, POLICY_RESOURCE, WORKLOAD_RESOURCES, Resource, object_path

log = logging.getLogger(__name__)

GROUP, VERSION, POLICY_PLURAL = POLICY_RESOURCE
IMAGE_REPORT_PLURAL = IMAGE_REPORT_RESOURCE[2]
MERGE_PATCH = "application/merge-patch+json"
"""What ``patch_obj`` sends: a JSON merge patch (RFC 7386) means the same for every kind, custom ones included, which
refuse the strategic merge patch the client's typed methods send."""
CLUSTER_EVENTS_NAMESPACE = "default"
"""Where Events about cluster-scoped objects go, as client-go's recorder puts them."""

ApiClient = k8s.ApiClient
"""The client's connection, for the wiring that builds one (``load_api_client``) and hands it on."""


@contextlib.contextmanager
def _answers() -> Iterator[None]:
    """The apiserver's refusals as ``kube.errors``, each chaining the client's ``ApiException``."""
    try:
        yield
    except ApiException as error:
        raise translated(error) from error


def load_api_client(
    kubeconfig: str | None, *, user_agent: str | None = None, context: str | None = None
) -> k8s.ApiClient:
    """An API client from a kubeconfig file, ``$KUBECONFIG``, or the in-cluster ServiceAccount.

    ``user_agent`` names the process to the apiserver: its audit log then tells which replica wrote what.
    ``context``: a kubeconfig context other than the current one (kubectl's ``--context``); with it, the
    kubeconfig is read even in a Pod. ``NotConfigured`` when there is neither.
    """
    from kubernetes import config

    configuration = k8s.Configuration()
    try:
        if kubeconfig or context:
            config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
        else:
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException:
                config.load_kube_config(client_configuration=configuration)
    except config.ConfigException as error:
        raise NotConfigured(str(error)) from error
    configuration.connection_pool_maxsize = 32
    api = k8s.ApiClient(configuration)
    if user_agent:
        api.user_agent = user_agent
    return api


class NotLeader(RuntimeError):  # not a KubeError: nothing was asked of the apiserver
    """A write refused before it was sent: this replica does not hold the leader lease (any more)."""


def _always() -> bool:
    return True


class KubeGateway:
    """Thin async wrapper over the ``kubernetes`` client; ``dry_run`` logs writes instead of making them.

    ``may_write`` is asked on the request's own thread just before each write leaves (the leader election's
    fence, ``LeaderElector.holds``): a replica that is not the leader, or no longer sure it is, sends nothing and
    gets ``NotLeader`` instead, so no write goes out on a leadership that has lapsed, whatever task made it.
    """

    def __init__(
        self,
        api: k8s.ApiClient,
        *,
        dry_run: bool = False,
        component: str = "slimguard",
        may_write: Callable[[], bool] | None = None,
    ) -> None:
        self.api = api
        self.dry_run = dry_run
        self.component = component
        self.may_write = may_write or _always
        self.core = k8s.CoreV1Api(api)
        self.custom = k8s.CustomObjectsApi(api)

    async def _call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with _answers():
            return await asyncio.to_thread(function, *args, **kwargs)

    def _fence(self) -> None:
        if not self.may_write():
            raise NotLeader(f"{self.component} is not the leader: the write was not sent")

    async def _write(self, function: Callable[..., Any], *args: Any) -> None:
        """A write whose answer is not read: the client would otherwise turn the whole object the apiserver
        sends back into its models (a Deployment: a few ms of CPU, on the core the audit needs)."""

        def call() -> None:
            self._fence()
            response = function(*args, _preload_content=False)  # non-2xx still raises ApiException
            response.drain_conn()

        self._fence()
        with _answers():
            await asyncio.to_thread(call)

    async def _write_call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A write whose answer is read (the object as stored), fenced as ``_write``."""

        def call() -> Any:
            self._fence()
            return function(*args, **kwargs)

        self._fence()
        with _answers():
            return await asyncio.to_thread(call)

    async def patch_obj(
        self, *, resource: Resource, namespace: str | None, name: str, patch: Mapping[str, Any]
    ) -> None:
        """A merge patch of any object, addressed by its URL (kopf's ``patch_obj``): one method for every kind, so
        a kind the client has no typed method for (an Argo Rollout) is patched the same way. Fenced and
        dry-run as every write; the answer is not read (``_write`` says why)."""
        if self.dry_run:
            log.info("dry-run: would patch %s %s/%s with %s", resource[2], namespace or "", name, patch)
            return
        path = object_path(resource, namespace, name)

        def call() -> None:
            self._fence()
            method, url, headers, body, post = self.api.param_serialize(
                "PATCH",
                path,
                header_params={"Content-Type": MERGE_PATCH, "Accept": "application/json"},
                body=dict(patch),
                auth_settings=["BearerToken"],
            )
            response = self.api.call_api(method, url, headers, body, post)
            if not 200 <= response.status <= 299:
                body = response.read()
                raise ApiException.from_response(http_resp=response, body=body.decode(errors="replace"), data=None)
            response.response.drain_conn()

        self._fence()
        with _answers():
            await asyncio.to_thread(call)

    async def read_json(self, path: str, query: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET of any object or list by its URL path (``object_path``), as the apiserver's JSON: one method for
        every kind, the core group's included, which the custom-objects API cannot address."""

        def call() -> dict[str, Any]:
            method, url, headers, body, post = self.api.param_serialize(
                "GET",
                path,
                query_params=list((query or {}).items()),
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )
            response = self.api.call_api(method, url, headers, body, post)
            data = response.read()
            if not 200 <= response.status <= 299:
                raise ApiException.from_response(http_resp=response, body=data.decode(errors="replace"), data=None)
            found = json.loads(data)
            return found if isinstance(found, dict) else {}

        with _answers():
            return await asyncio.to_thread(call)

    async def patch_metadata(
        self,
        kind: str,
        namespace: str,
        name: str,
        *,
        labels: Mapping[str, str | None] | None = None,
        annotations: Mapping[str, str | None] | None = None,
    ) -> bool:
        """Labels and annotations in one merge patch (``None`` removes one). False when the object is gone."""
        metadata = {part: values for part, values in (("labels", labels), ("annotations", annotations)) if values}
        if self.dry_run:
            log.info("dry-run: would patch %s %s/%s with %s", kind, namespace, name, metadata)
            return True
        try:
            await self.patch_obj(
                resource=WORKLOAD_RESOURCES[kind], namespace=namespace, name=name, patch={"metadata": metadata}
            )
        except NotFound:
            return False
        return True

    async def emit_event(
        self,
        *,
        kind: str,
        namespace: str | None,
        name: str,
        uid: str | None,
        api_version: str,
        reason: str,
        message: str,
        event_name: str | None = None,
    ) -> None:
        """Post a Warning Event; with ``event_name``, posting the same one again is a no-op (409 is success).

        ``namespace`` None: a cluster-scoped object (an ImagePolicy), whose Events live in ``default`` as
        client-go's recorder puts them (``kubectl describe`` finds them there by the object's uid)."""
        if self.dry_run:
            log.info("dry-run: would emit %s on %s %s/%s: %s", reason, kind, namespace or "", name, message)
            return
        now = datetime.now(UTC)
        home = namespace or CLUSTER_EVENTS_NAMESPACE
        event = k8s.CoreV1Event(
            metadata=k8s.V1ObjectMeta(
                name=event_name, generate_name=None if event_name else f"{name}.", namespace=home
            ),
            involved_object=k8s.V1ObjectReference(
                kind=kind, namespace=namespace, name=name, uid=uid, api_version=api_version
            ),
            reason=reason,
            message=message[:1024],
            type="Warning",
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=k8s.V1EventSource(component=self.component),
            reporting_component=f"slimguard.dev/{self.component}",
            reporting_instance=self.component,
        )
        try:
            await self._write(self.core.create_namespaced_event, home, event)
        except KubeError as error:  # an Event is best effort: never fail a verdict over it
            if isinstance(error, Conflict) and event_name:
                log.debug("event %s on %s %s/%s was already posted", event_name, kind, home, name)
                return
            log.warning("could not emit event on %s %s/%s: %s", kind, home, name, error.reason)

    async def pull_secrets(self, namespace: str, secret_names: Sequence[str]) -> list[dict[str, str]]:
        """The ``data`` of the named pull Secrets; a missing Secret is skipped, as the kubelet does."""
        found: list[dict[str, str]] = []
        for name in secret_names:
            try:
                secret = await self._call(self.core.read_namespaced_secret, name, namespace)
            except (Forbidden, NotFound) as error:
                log.info("pull secret %s/%s unavailable: %s", namespace, name, error.reason)
                continue
            found.append(dict(secret.data or {}))
        return found

    async def service_account_pull_secrets(self, namespace: str, name: str) -> tuple[str, ...]:
        try:
            account = await self._call(self.core.read_namespaced_service_account, name, namespace)
        except (Forbidden, NotFound):
            return ()
        return tuple(ref.name for ref in account.image_pull_secrets or () if ref.name)

    async def list_policies(self) -> list[dict[str, Any]]:
        result = await self._call(self.custom.list_cluster_custom_object, GROUP, VERSION, POLICY_PLURAL)
        return list(result.get("items") or [])

    async def patch_policy_status(self, name: str, status: dict[str, Any]) -> None:
        if self.dry_run:
            log.info("dry-run: would set status of ImagePolicy %s to %s", name, status)
            return
        with contextlib.suppress(NotFound):  # the policy was deleted meanwhile
            await self._write(
                self.custom.patch_cluster_custom_object_status, GROUP, VERSION, POLICY_PLURAL, name, {"status": status}
            )

    # --- ImageReports (cluster-scoped; the controller writes them, both components watch them) ------------

    async def create_image_report(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create; None when one of that name exists already (the caller reads it and decides)."""
        if self.dry_run:
            log.info("dry-run: would create ImageReport %s", body["metadata"]["name"])
            return body
        try:
            created: dict[str, Any] = await self._write_call(
                self.custom.create_cluster_custom_object, GROUP, VERSION, IMAGE_REPORT_PLURAL, body
            )
        except Conflict:
            return None
        return created

    async def get_image_report(self, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await self._call(
                self.custom.get_cluster_custom_object, GROUP, VERSION, IMAGE_REPORT_PLURAL, name
            )
        except NotFound:
            return None
        return found

    async def replace_image_report(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Replace at ``metadata.resourceVersion``; None on a conflict or when it is gone (read it again)."""
        if self.dry_run:
            log.info("dry-run: would update ImageReport %s", body["metadata"]["name"])
            return body
        try:
            replaced: dict[str, Any] = await self._write_call(
                self.custom.replace_cluster_custom_object,
                GROUP,
                VERSION,
                IMAGE_REPORT_PLURAL,
                body["metadata"]["name"],
                body,
            )
        except (NotFound, Conflict):
            return None
        return replaced

    async def delete_image_report(self, name: str, *, resource_version: str | None = None) -> bool:
        """Delete (only that version, when given: a report rewritten meanwhile is kept); False if not deleted."""
        if self.dry_run:
            log.info("dry-run: would delete ImageReport %s", name)
            return True
        options = k8s.V1DeleteOptions(
            preconditions=k8s.V1Preconditions(resource_version=resource_version) if resource_version else None
        )
        try:
            await self._write_call(
                self.custom.delete_cluster_custom_object, GROUP, VERSION, IMAGE_REPORT_PLURAL, name, body=options
            )
        except (NotFound, Conflict):
            return False
        return True
