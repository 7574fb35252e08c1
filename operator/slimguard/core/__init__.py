"""The pure core of slimguard: the model, facts about images, their evaluation, and reports.

Nothing here imports Kubernetes, HTTP or Docker libraries (an import-linter contract keeps it so): it is
plain data in, plain data out, so every rule is unit-tested in milliseconds. Its sub-packages are layered, each
importing only those below it (a second contract keeps that):

    reports/            the CLI's JSON documents, PolicyReport results
    lint/ | evaluation/ Dockerfile lint (a product of its own) | plan, rules, verdict, outcome, enforcement
    facts/              ImageFacts, bases, layer contents; the OCI, Docker, ImageReport and Trivy codecs
    model/              policy, workload, image references, platforms, quantities, globs, tool categories
    errors, text        what every layer shares: errors meant for the user, cutting text to a size
"""
