"""slimguard keeps container images slim: a Kubernetes operator, an admission webhook and a CLI."""

import sys

__version__ = "0.1.0"
"""The one place the version is written: the package metadata (pyproject.toml reads it), ``slimguard
--version``, the reports' ``tool.version`` and ``slimguard_build_info`` all take it from here."""

# httpx imports its own command line (``httpx._main``: click, rich, pygments; ~80 modules, 4 MB of every
# component's memory) whenever those happen to be installed, and slimguard never runs it. A None in sys.modules
# makes that optional import fail the way httpx expects when they are not (``except ImportError``).
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
