"""VulnerabilityReports exactly as Trivy Operator v0.32.0 writes them, for tests, benchmarks and the demo.

Trivy cannot scan here (its vulnerability database is out of reach), so reports are written by hand, and
must then look like the real thing: the real CRD (tests/e2e/crds/) rejects anything else, and slimguard
must find them the way it finds Trivy's. Each part below follows trivy-operator's code at v0.32.0:
names and labels from ``pkg/vulnerabilityreport/builder.go`` (``ReportBuilder``) and ``pkg/kube/object.go``
(``ObjectToObjectMeta``), the hash from ``pkg/kube/resources.go`` (``ComputeHash``), the report data from
``pkg/plugins/trivy/plugin.go`` (``ParseImageRef``) and ``pkg/apis/aquasecurity/v1alpha1/vulnerability_types.go``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

API_VERSION = "aquasecurity.github.io/v1alpha1"
SCANNER = {"name": "Trivy", "vendor": "Aqua Security", "version": "0.72.0"}  # the Trivy version v0.32.0's chart runs
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")

# k8s.io/apimachinery/pkg/util/validation.IsValidLabelValue
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
# k8s.io/apimachinery/pkg/util/rand.SafeEncodeString's alphabet: no vowels, so no words
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def is_label_value(value: str) -> bool:
    return len(value) <= 63 and _LABEL_VALUE.fullmatch(value) is not None


def compute_hash(name: str) -> str:
    """trivy-operator's ``kube.ComputeHash`` of a string.

    It hashes spew's ``%#v`` rendering of the value, which for a string is ``(string)<value>``, with FNV-32a,
    prints the sum in decimal and maps each digit through SafeEncodeString. Checked against the values in
    trivy-operator's own tests (``"system:controller:node-controller"`` → ``6f69bb5b79``).
    """
    value = 0x811C9DC5
    for byte in f"(string){name}".encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[ord(digit) % len(_SAFE_ALPHABET)] for digit in str(value))


def report_name(kind: str, name: str, container: str) -> str:
    """``ReportBuilder.reportName``: ``<kind>-<name>-<container>``, or a hash when that is no label value."""
    plain = f"{kind.lower()}-{name}-{container}"
    return plain if is_label_value(plain) else f"{kind.lower()}-{compute_hash(f'{name}-{container}')}"


def vulnerability(
    cve: str,
    severity: str,
    *,
    fixed: str = "",
    resource: str = "openssl",
    installed: str = "3.0.1",
    title: str = "a flaw",
    target: str = "",
) -> dict[str, Any]:
    """One entry of ``report.vulnerabilities``, with every field the CRD requires and Trivy always writes."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} is not one of {SEVERITIES}")
    return {
        "vulnerabilityID": cve,
        "resource": resource,
        "installedVersion": installed,
        "fixedVersion": fixed,
        "publishedDate": "2026-01-15T10:15:00Z",
        "lastModifiedDate": "2026-02-01T08:00:00Z",
        "severity": severity,
        "title": title,
        "primaryLink": f"https://avd.aquasec.com/nvd/{cve.lower()}",
        "links": [],
        "score": 9.8 if severity == "CRITICAL" else 7.5,
        "target": target,
    }


# Packages of a Debian bookworm base with findings in Trivy's database, and the share of each severity Trivy
# reports for such an image (most findings LOW or MEDIUM, few CRITICAL; about a third with a fixed version).
_DEBIAN_PACKAGES = (
    ("libc6", "2.36-9+deb12u4"), ("libssl3", "3.0.11-1~deb12u2"), ("openssl", "3.0.11-1~deb12u2"),
    ("libsystemd0", "252.19-1~deb12u1"), ("libudev1", "252.19-1~deb12u1"), ("perl-base", "5.36.0-7+deb12u1"),
    ("libgnutls30", "3.7.9-2+deb12u1"), ("libkrb5-3", "1.20.1-2+deb12u1"), ("libgssapi-krb5-2", "1.20.1-2+deb12u1"),
    ("libsqlite3-0", "3.40.1-2"), ("libtiff6", "4.5.0-6+deb12u1"), ("libxml2", "2.9.14+dfsg-1.3~deb12u1"),
    ("curl", "7.88.1-10+deb12u5"), ("libcurl4", "7.88.1-10+deb12u5"), ("git", "1:2.39.2-1.1"),
    ("python3.11", "3.11.2-6"), ("libpython3.11-stdlib", "3.11.2-6"), ("gcc-12", "12.2.0-14"),
    ("binutils", "2.40-2"), ("libexpat1", "2.5.0-1"), ("zlib1g", "1:1.2.13.dfsg-1"), ("tar", "1.34+dfsg-1.2"),
    ("coreutils", "9.1-1"), ("util-linux", "2.38.1-5+b1"), ("libpam0g", "1.5.2-6+deb12u1"), ("ncurses-base", "6.4-4"),
    ("libncursesw6", "6.4-4"), ("login", "1:4.13+dfsg1-1"), ("passwd", "1:4.13+dfsg1-1"), ("apt", "2.6.1"),
)  # fmt: skip
_SEVERITY_SHARES = (("CRITICAL", 0.04), ("HIGH", 0.14), ("MEDIUM", 0.32), ("LOW", 0.42), ("UNKNOWN", 0.08))
_FLAWS = (
    "buffer overflow in the parser of crafted input",
    "use-after-free when a connection is closed early",
    "denial of service through unbounded memory allocation",
    "integer overflow leading to an out-of-bounds write",
    "information disclosure through a timing side channel",
    "NULL pointer dereference on a malformed certificate",
)


def realistic_vulnerabilities(count: int, *, seed: str, fixed_share: float = 0.35) -> list[dict[str, Any]]:
    """``count`` findings shaped and sized as Trivy Operator v0.32 writes them for a Debian image with its default
    fields (no ``trivy.additionalVulnerabilityReportFields``): ~350 bytes each, so 100 make a ~40 KB report.
    The same ``seed`` gives the same list."""
    chooser = random.Random(seed)
    severities = [severity for severity, _ in _SEVERITY_SHARES]
    weights = [share for _, share in _SEVERITY_SHARES]
    found = []
    for n in range(count):
        package, installed = chooser.choice(_DEBIAN_PACKAGES)
        year = chooser.randint(2016, 2026)
        cve = f"CVE-{year}-{chooser.randint(1000, 52999)}"
        fixed = f"{installed}+deb12u{chooser.randint(2, 9)}" if chooser.random() < fixed_share else ""
        entry = vulnerability(
            cve,
            chooser.choices(severities, weights)[0],
            fixed=fixed,
            resource=package,
            installed=installed,
            title=f"{package.split('-')[0]}: {chooser.choice(_FLAWS)} ({n})",
        )
        entry["publishedDate"] = f"{year}-{chooser.randint(1, 12):02d}-{chooser.randint(1, 28):02d}T15:15:00Z"
        found.append(entry)
    return found


def vulnerability_report(
    *,
    namespace: str,
    kind: str,
    name: str,
    container: str,
    image: str,
    digest: str | None,
    updated: datetime,
    vulnerabilities: Sequence[Mapping[str, Any]] = (),
    owner_uid: str | None = None,
    owner_api_version: str = "apps/v1",
    os_family: str = "alpine",
    os_name: str = "3.20.3",
) -> dict[str, Any]:
    """The VulnerabilityReport Trivy Operator files for one container of one workload (``kind``/``name``).

    ``image`` is the container's reference (``host/repository:tag``), split as ``ParseImageRef`` splits it;
    ``digest`` is the image's repo digest. The summary counts ``vulnerabilities``, as Trivy's does. With the
    owner's ``owner_uid`` the report carries Trivy's controller reference, so it goes when the owner goes.
    """
    server, repository, tag = _split(image)
    counts = {severity: 0 for severity in SEVERITIES}
    for entry in vulnerabilities:
        counts[str(entry["severity"])] += 1
    artifact: dict[str, Any] = {"repository": repository}
    if digest:
        artifact["digest"] = digest
    if tag:
        artifact["tag"] = tag
    metadata: dict[str, Any] = {
        "name": report_name(kind, name, container),
        "namespace": namespace,
        "labels": {
            "trivy-operator.container.name": container,
            "app.kubernetes.io/managed-by": "trivy-operator",
            # the hash of the pod spec scanned; any stable value of the same shape serves here
            "resource-spec-hash": compute_hash(f"{namespace}/{kind}/{name}"),
            "trivy-operator.resource.kind": kind,
            "trivy-operator.resource.namespace": namespace,
        },
    }
    if is_label_value(name):
        metadata["labels"]["trivy-operator.resource.name"] = name
    else:  # ObjectToObjectMeta: a name that is no label value goes to an annotation, its hash to a label
        metadata["labels"]["trivy-operator.resource.name-hash"] = compute_hash(name)
        metadata["annotations"] = {"trivy-operator.resource.name": name}
    if owner_uid is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": owner_api_version,
                "kind": kind,
                "name": name,
                "uid": owner_uid,
                "controller": True,
                "blockOwnerDeletion": False,
            }
        ]
    return {
        "apiVersion": API_VERSION,
        "kind": "VulnerabilityReport",
        "metadata": metadata,
        "report": {
            "updateTimestamp": updated.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "scanner": dict(SCANNER),
            "registry": {"server": server},
            "artifact": artifact,
            "os": {"family": os_family, "name": os_name},
            "summary": {
                "criticalCount": counts["CRITICAL"],
                "highCount": counts["HIGH"],
                "mediumCount": counts["MEDIUM"],
                "lowCount": counts["LOW"],
                "unknownCount": counts["UNKNOWN"],
                "noneCount": 0,
            },
            "vulnerabilities": [dict(entry) for entry in vulnerabilities],
        },
    }


def _split(image: str) -> tuple[str, str, str]:
    """(registry server, repository, tag) of ``host/repository[:tag][@digest]``, as go-containerregistry does."""
    reference = image.split("@", 1)[0]
    first, _, rest = reference.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        server, path = first, rest
    else:
        server, path = "index.docker.io", reference
    repository, _, tag = path.rpartition(":") if ":" in path else (path, "", "")
    if server == "index.docker.io" and "/" not in repository:
        repository = f"library/{repository}"
    if not tag and "@" not in image:
        tag = "latest"  # go-containerregistry's default tag
    return server, repository, tag
