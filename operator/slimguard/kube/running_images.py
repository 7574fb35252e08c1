"""What a workload runs, read from the apiserver: its body, then only as far as needed its Pods and the
ImageReports, handed to ``core.model.running_image`` which decides (``check --baseline-from-cluster``)."""

from __future__ import annotations

from typing import Any

from kubernetes import config

from slimguard.core.model.running_image import (
    NoRunningDigest,
    RunningImage,
    WorkloadName,
    label_selector,
    running_images,
    template_labels,
)
from slimguard.kube.errors import Forbidden, KubeError, NotConfigured, NotFound
from slimguard.kube.gateway import KubeGateway, load_api_client
from slimguard.kube.informer import REPORT_PAGE_SIZE
from slimguard.kube.resources import IMAGE_REPORT_RESOURCE, WORKLOAD_RESOURCES, object_path


def context_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The namespace of the kubeconfig context used (``--context``, else the current one), as kubectl takes it
    when ``-n`` is not given; ``default`` when it names none."""
    try:
        contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)
    except (config.ConfigException, OSError, TypeError, KeyError):
        return "default"
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


async def read_running_images(
    workload: WorkloadName, namespace: str, *, kubeconfig: str | None, context: str | None
) -> tuple[RunningImage, ...]:
    """Per container the digest ``workload`` runs. ``NoRunningDigest`` when it cannot be reached or found."""
    try:
        api = load_api_client(kubeconfig, context=context)
    except (NotConfigured, OSError) as error:
        raise NoRunningDigest(f"no cluster to read {workload} from: {error}") from None
    gateway = KubeGateway(api)
    try:
        return await _read(gateway, workload, namespace)
    except NotFound:
        raise NoRunningDigest(f"{workload} not found in namespace {namespace}") from None
    except KubeError as error:
        raise NoRunningDigest(
            f"{workload} in namespace {namespace} could not be read: {error.status} {error.reason}"
        ) from None
    except OSError as error:
        raise NoRunningDigest(f"{workload} in namespace {namespace} could not be read: {error}") from None
    finally:
        api.close()


async def _read(gateway: KubeGateway, workload: WorkloadName, namespace: str) -> tuple[RunningImage, ...]:
    kind = workload.kind
    body = await gateway.read_json(object_path(WORKLOAD_RESOURCES[kind.kind], namespace, workload.name))
    running = running_images(workload, body)
    if all(entry.digest is not None for entry in running):
        return running  # every image pinned by digest: nothing else to read
    unread: list[str] = []
    pods: list[dict[str, Any]] = [body] if kind.kind == "Pod" else []
    labels = template_labels(kind, body)
    if kind.kind != "Pod" and labels:
        try:
            found = await gateway.read_json(
                object_path(WORKLOAD_RESOURCES["Pod"], namespace, "").rstrip("/"),
                {"labelSelector": label_selector(labels)},
            )
            pods = list(found.get("items") or [])
        except Forbidden:
            unread.append("its Pods")
    running = running_images(workload, body, pods, unread=unread)
    if all(entry.digest is not None for entry in running):
        return running
    try:
        reports = await _reports_references(gateway)
    except Forbidden:
        unread.append("the ImageReports")
        reports = []
    except NotFound:  # slimguard's CRDs are not installed: there are none
        reports = []
    return running_images(workload, body, pods, reports, unread=unread)


async def _reports_references(gateway: KubeGateway) -> list[tuple[str, list[str]]]:
    """Every ImageReport's digest and references, read in pages (a report with its layers' contents is ~30 KB,
    and a cluster may hold thousands): only these two fields of each are kept."""
    found: list[tuple[str, list[str]]] = []
    query = {"limit": str(REPORT_PAGE_SIZE)}
    while True:
        page = await gateway.read_json(object_path(IMAGE_REPORT_RESOURCE, None, "").rstrip("/"), query)
        found.extend(_digest_and_references(item) for item in page.get("items") or ())
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return found
        query["continue"] = str(token)


def _digest_and_references(item: dict[str, Any]) -> tuple[str, list[str]]:
    report = item.get("report") or {}
    references = [str(text) for text in report.get("references") or () if isinstance(text, str)]
    return str(report.get("digest") or ""), references
