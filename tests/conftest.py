"""Shared by every tier of tests. Deliberately tiny: nothing here starts a process.

The real parts (control plane, registries, Docker) are session fixtures in tests/e2e/conftest.py,
started only when an end-to-end test asks for them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository checkout (CRDs, deploy manifests and scripts are read from it, as the install does)."""
    return REPO_ROOT
