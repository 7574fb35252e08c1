"""slimguard keeps container images slim: a Kubernetes operator, an admission webhook and a CLI."""

__version__ = "0.1.0"
"""The one place the version is written: the package metadata (pyproject.toml reads it), ``slimguard
--version``, the reports' ``tool.version`` and ``slimguard_build_info`` all take it from here."""
