"""The pure core of slimguard: references, facts, policies, workloads and their evaluation.

Nothing here imports Kubernetes, HTTP or Docker libraries (an import-linter contract keeps it so): it is
plain data in, plain data out, so every rule is unit-tested in milliseconds.
"""
