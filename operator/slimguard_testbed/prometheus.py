"""Debian's Prometheus (2.42), scraping what a test points it at, queried through its HTTP API."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import Any

import httpx
import yaml

from slimguard_testbed.anchors import go_tool
from slimguard_testbed.lifecycle import Service
from slimguard_testbed.ports import free_port
from slimguard_testbed.process import ManagedProcess, TestbedError, wait_until

# Prometheus 3's Go module (its releases are tagged v0.MINOR.PATCH there).
PROMETHEUS_MODULE_VERSION = "v0.316.0"


@functools.cache
def prometheus_with_kubernetes_sd() -> Path:
    """Prometheus built from its Go module (once per machine, ~17 min cold: it compiles every cloud's service
    discovery): Debian's build leaves Kubernetes service discovery out, and the real node's scrape needs it."""
    return go_tool("prometheus", "github.com/prometheus/prometheus/cmd/prometheus", PROMETHEUS_MODULE_VERSION)


class Prometheus(Service):
    """Scrapes every second. ``scrape_configs`` as in prometheus.yml; ``static_targets`` is the short form
    ``{job: ["host:port", ...]}``. ``binary``: default Debian's prometheus 2.42."""

    def __init__(
        self,
        workdir: Path,
        *,
        static_targets: dict[str, list[str]] | None = None,
        scrape_configs: list[dict[str, Any]] | None = None,
        binary: Path | None = None,
    ) -> None:
        self.workdir = workdir
        self.binary = binary
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.scrape_configs = [
            *(
                {"job_name": job, "static_configs": [{"targets": targets}]}
                for job, targets in (static_targets or {}).items()
            ),
            *(scrape_configs or ()),
        ]
        self.process: ManagedProcess | None = None

    def _start(self) -> None:
        binary = str(self.binary) if self.binary is not None else shutil.which("prometheus")
        if binary is None:
            raise TestbedError("prometheus is missing: scripts/bootstrap.sh installs Debian's prometheus package")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": self.scrape_configs,
        }
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.process = ManagedProcess(
            "prometheus",
            [
                binary,
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            log_file=self.workdir / "prometheus.log",
        )
        self.process.start()
        wait_until(self._ready, timeout=30, what="Prometheus to be ready", watch=[self.process], interval=0.2)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def failure(self) -> str | None:
        return self.process.failure() if self.process is not None else None

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result; raises unless Prometheus answers success."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise AssertionError(f"Prometheus refused {expr!r}: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def targets_up(self) -> bool:
        up = self.query("up")
        return bool(up) and all(sample["value"][1] == "1" for sample in up)


def kubernetes_pods_job(*, api_server: str, ca_file: Path, cert_file: Path, key_file: Path) -> dict[str, Any]:
    """The `kubernetes-pods` job of Prometheus' example configuration: Pods that say ``prometheus.io/scrape:
    "true"`` are scraped at their ``prometheus.io/port`` and ``/path``, labelled with namespace and pod."""
    return {
        "job_name": "kubernetes-pods",
        "kubernetes_sd_configs": [
            {
                "role": "pod",
                "api_server": api_server,
                "tls_config": {"ca_file": str(ca_file), "cert_file": str(cert_file), "key_file": str(key_file)},
            }
        ],
        "relabel_configs": [
            {
                "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
                "action": "keep",
                "regex": "true",
            },
            {
                "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"],
                "action": "replace",
                "target_label": "__metrics_path__",
                "regex": "(.+)",
            },
            {
                "source_labels": ["__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port"],
                "action": "replace",
                "regex": r"([^:]+)(?::\d+)?;(\d+)",
                "replacement": "$1:$2",
                "target_label": "__address__",
            },
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ],
    }


__all__ = ["Prometheus", "kubernetes_pods_job", "prometheus_with_kubernetes_sd"]
