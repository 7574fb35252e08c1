"""slimguard's benchmarks, each run from the repository root as `python -m bench.NAME` (bench/README.md).

A package, so the scripts share `bench.common` the way the tests import their helpers: by module, with no
`sys.path` edits. What only one benchmark uses stays beside it (`audit_report.py` beside `audit_scale.py`).
"""
