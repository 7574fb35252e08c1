"""By hand, not in the suite: Policy Reporter lists the PolicyReports slimguard's controller writes.

    python scripts/policy_reporter_check.py PATH/TO/policy-reporter PATH/TO/policy-reporter-source/templates

Starts the test bed's control plane with Kyverno's PolicyReport CRDs, runs the controller (under the install's
ClusterRole) on a Deployment whose image is on an unreachable registry under an Enforce policy (requireDigest
fails, maxLayers is an error), starts Policy Reporter out of cluster against it (REST API and metrics on), and
prints what each says. It fails unless Policy Reporter's REST API lists slimguard's results.

Not in the suite because Policy Reporter cannot be installed here: the Go module proxy refuses
github.com/kyverno/policy-reporter at every version (403), and its v3 tags would not resolve anyway (the module
path has no /v3). Built from a checkout of tag v3.9.0 (`go build -o policy-reporter .`, its dependencies from
the module proxy), it worked: see the PolicyReports section of the README.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
BINARY, TEMPLATES = sys.argv[1], sys.argv[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from cluster import apply, deployment, image_policy, namespace, wait_for, wait_for_status  # noqa: E402

from slimguard.controller.settings import ControllerSettings  # noqa: E402
from slimguard.registry.guard import AddressPolicy  # noqa: E402
from slimguard.registry.settings import RegistrySettings  # noqa: E402
from slimguard_testbed import CertificateAuthority, ControlPlane, free_port  # noqa: E402
from slimguard_testbed.install import install_controller_rbac  # noqa: E402
from slimguard_testbed.operator_runner import InProcessOperator  # noqa: E402

work = Path(tempfile.mkdtemp(prefix="polr-check-"))
with ControlPlane(workdir=work / "cp", ca=CertificateAuthority("check CA")) as plane:
    plane.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    for name in ("wgpolicyk8s.io_policyreports.yaml", "wgpolicyk8s.io_clusterpolicyreports.yaml"):
        plane.kubectl("apply", "--server-side", "-f", str(REPO / "tests/e2e/crds" / name))
    plane.wait_established()
    kubeconfig = install_controller_rbac(plane, REPO / "deploy/kustomize/base")
    settings = ControllerSettings(
        kubeconfig=str(kubeconfig), registry=RegistrySettings(address_policy=AddressPolicy(allow_loopback=True))
    )
    with InProcessOperator(settings):
        ns = "shop"
        apply(
            plane,
            namespace(ns),
            deployment("api", ns, "127.0.0.1:1/shop/api:1.0"),
            image_policy("pinned", {"requireDigest": True, "maxLayers": 30}, namespaces=[ns], mode="Enforce"),
        )
        wait_for_status(plane, "deployment", "api", ns, "noncompliant")
        report = wait_for(
            "the report",
            lambda: json.loads(plane.kubectl("get", "polr", "-n", ns, "-o", "json").stdout)["items"],
        )[0]
        print("slimguard wrote:", json.dumps({k: report[k] for k in ("scope", "summary", "results")}, indent=1))
        port = free_port()
        log = (work / "policy-reporter.log").open("w")
        reporter = subprocess.Popen(
            [
                BINARY, "run", f"--kubeconfig={plane.admin_kubeconfig}", f"--port={port}",
                "--rest-enabled", "--metrics-enabled", f"--dbfile={work / 'db.sqlite'}",
                f"--template-dir={TEMPLATES}",
            ],
            stdout=log, stderr=subprocess.STDOUT, cwd=work,
        )  # fmt: skip
        try:

            def listed() -> list[dict[str, object]] | None:
                try:
                    answer = httpx.get(
                        f"http://127.0.0.1:{port}/v1/namespaced-resources/results",
                        params={"sources": "slimguard", "namespaces": ns},
                        timeout=5,
                    )
                except httpx.HTTPError:
                    return None
                body = answer.json() if answer.status_code == 200 else None
                items = (body or {}).get("items") if isinstance(body, dict) else body
                return items or None

            results = wait_for("Policy Reporter to list slimguard's results", listed, timeout=120)
            assert {(r["policy"], r["rule"], r["status"]) for r in results} == {
                ("pinned", "requireDigest", "fail"),
                ("pinned", "maxLayers", "error"),
            }, results
            print("Policy Reporter REST /v1/namespaced-resources/results:", json.dumps(results, indent=1))
            sources = httpx.get(f"http://127.0.0.1:{port}/v1/namespaced-resources/sources", timeout=5).json()
            print("sources:", sources)
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            print("metrics:\n" + "\n".join(line for line in metrics.splitlines() if "slimguard" in line))
        finally:
            reporter.terminate()
            reporter.wait(10)
            print("log tail:\n" + (work / "policy-reporter.log").read_text()[-3000:])
