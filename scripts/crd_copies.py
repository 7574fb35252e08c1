"""The Helm chart's and the kustomize base's CRDs, written from `crds/`: the one place a CRD is edited.

    python scripts/crd_copies.py           # make generate: write the chart's and the kustomize base's crds/
    python scripts/crd_copies.py --check   # make verify-generated: exit 1, naming each copy that is not current

`kubectl apply -f crds/` (the README's install and the test bed) reads `crds/` itself; Helm reads only files inside
its chart, and kustomize only files below its base, so each keeps a copy: the source's bytes under a line that
names the source. tests/unit/test_crd_copies.py runs the check, so a CRD edited in one place alone fails the suite.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "crds"
CHART_CRDS = REPO / "deploy" / "helm" / "slimguard" / "crds"
KUSTOMIZE_BASE = REPO / "deploy" / "kustomize" / "base"
COPIES = (CHART_CRDS, KUSTOMIZE_BASE / "crds")


def banner(source: Path) -> str:
    return (
        f"# Generated from {source.relative_to(REPO)} by `make generate` (scripts/crd_copies.py): edit that file,"
        " not this copy.\n"
    )


def expected() -> dict[Path, str]:
    """Every copy, by path, as `make generate` writes it."""
    sources = sorted(SOURCE.glob("*.yaml"))
    if not sources:
        raise SystemExit(f"no CRDs in {SOURCE}")
    return {folder / source.name: banner(source) + source.read_text() for source in sources for folder in COPIES}


def stale() -> list[str]:
    """What differs from what `make generate` writes: copies that are missing, changed or left over, and CRDs the
    kustomize base does not list among its resources. Empty when all is current."""
    want = expected()
    found = [f"{_shown(path)} differs from its source" for path, text in want.items() if _read(path) != text]
    found += [
        f"{_shown(path)} has no source in crds/"
        for folder in COPIES
        for path in sorted(folder.glob("*.yaml"))
        if path not in want
    ]
    resources = set(yaml.safe_load((KUSTOMIZE_BASE / "kustomization.yaml").read_text()).get("resources") or ())
    found += [
        f"{KUSTOMIZE_BASE.relative_to(REPO)}/kustomization.yaml does not list crds/{path.name} in resources"
        for path in want
        if path.parent == KUSTOMIZE_BASE / "crds" and f"crds/{path.name}" not in resources
    ]
    return found


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


def write() -> list[Path]:
    """Write every copy that differs and remove copies whose source is gone; returns the paths touched."""
    want = expected()
    touched = []
    for path, text in want.items():
        if _read(path) != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            touched.append(path)
    for folder in COPIES:
        for path in folder.glob("*.yaml"):
            if path not in want:
                path.unlink()
                touched.append(path)
    return touched


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a copy is not current")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale()
        for problem in problems:
            print(f"{problem}: edit crds/, then run make generate", file=sys.stderr)
        return 1 if problems else 0
    for path in write():
        print(f"wrote {_shown(path)}")
    problems = stale()  # what writing cannot fix: a kustomization.yaml entry is for a person to add
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
