"""The chart's and the kustomize base's CRDs are what `make generate` writes from `crds/`, the one source.

Helm reads only files inside its chart and kustomize only files below its base, so each keeps a copy; a CRD
edited in one place alone would install one schema with `kubectl apply -f crds/` and another with the chart.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from scripts import crd_copies  # what `make generate` runs (pytest's pythonpath has the repository root)

REPO = Path(__file__).resolve().parents[2]


def test_every_crd_copy_is_what_make_generate_writes_from_crds() -> None:
    assert crd_copies.stale() == [], "edit the CRD in crds/, then run make generate"


def test_each_copy_is_the_source_under_a_line_that_names_it() -> None:
    copies = crd_copies.expected()
    sources = sorted((REPO / "crds").glob("*.yaml"))
    assert {path.name for path in copies} == {path.name for path in sources} != set()
    assert {path.parent for path in copies} == {
        REPO / "deploy" / "helm" / "slimguard" / "crds",
        REPO / "deploy" / "kustomize" / "base" / "crds",
    }
    for path, text in copies.items():
        source = REPO / "crds" / path.name
        first, rest = text.split("\n", 1)
        assert first.startswith(f"# Generated from crds/{path.name} by `make generate`")
        assert rest == source.read_text()
        assert list(yaml.safe_load_all(text)) == list(yaml.safe_load_all(source.read_text()))


def test_drift_is_named_with_the_file_and_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "crds"
    copy.mkdir()
    source = sorted((REPO / "crds").glob("*.yaml"))[0]
    (copy / source.name).write_text(crd_copies.banner(source) + source.read_text().replace("v1alpha1", "v1beta1"))
    (copy / "leftover.yaml").write_text("---\n")
    monkeypatch.setattr(crd_copies, "COPIES", (copy,))
    found = crd_copies.stale()
    assert any(source.name in problem and "differs from its source" in problem for problem in found), found
    assert any("leftover.yaml has no source in crds/" in problem for problem in found), found
