# The two commands of the README: `make demo` and `make test`. Both set up a fresh machine first.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint unit e2e bench generate verify-generated release release-tools

setup:
	bash scripts/bootstrap.sh

# actionlint checks .github/workflows/ (shellcheck over their run: scripts), and through slimguard-action.yml the
# inputs given to action.yml; built once per version into the cache outside the repo, as bootstrap builds it.
export ACTIONLINT_VERSION := v1.7.12

lint: setup
	$(BIN)/ruff check operator tests bench scripts
	$(BIN)/ruff format --check operator tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports
	"$$(bash scripts/build-go-tool.sh actionlint github.com/rhysd/actionlint/cmd/actionlint $(ACTIONLINT_VERSION))" -no-color

demo: setup
	$(BIN)/python -m slimguard_testbed.demo

test: lint
	$(BIN)/pytest -p no:cacheprovider

unit: setup
	$(BIN)/pytest tests/unit -q

e2e: setup
	$(BIN)/pytest tests/e2e

# What is written from a source kept elsewhere: the chart's and the kustomize base's CRDs (from crds/, the one
# place a CRD is edited), the chart README's values table (from values.yaml and values.schema.json), and the
# dashboard and PrometheusRule (scripts/monitoring.py). verify-generated writes nothing and fails when one is
# stale; the suite checks the same (tests/unit/test_crd_copies.py, tests/e2e/test_chart.py, test_monitoring_artifacts.py).
generate:
	$(BIN)/python scripts/crd_copies.py
	$(BIN)/python scripts/chart_readme.py
	$(BIN)/python scripts/monitoring.py

verify-generated:
	$(BIN)/python scripts/crd_copies.py --check
	$(BIN)/python scripts/chart_readme.py --check
	$(BIN)/python scripts/monitoring.py --check

bench: setup
	$(BIN)/python -m bench.audit_scale

# A release: the wheel and sdist, the image (OCI labels, SBOM) and the chart, the image and the chart pushed to
# REGISTRY (host/namespace: REGISTRY/slimguard:VERSION and oci://REGISTRY/charts/slimguard). VERSION, if given,
# must be slimguard.__version__. RELEASE_FLAGS: more of scripts/release.py's options (--tagged, --no-push,
# --plain-http, --ca-file FILE, ...). Log in to the registry first (docker login; helm push reads its credentials).
#   make release REGISTRY=127.0.0.1:5000/slimguard RELEASE_FLAGS=--plain-http
release: release-tools
	@test -n "$(REGISTRY)" || { echo "make release needs REGISTRY=host/namespace, e.g. REGISTRY=127.0.0.1:5000/slimguard" >&2; exit 2; }
	$(BIN)/python scripts/release.py --registry "$(REGISTRY)" $(if $(VERSION),--version "$(VERSION)") $(RELEASE_FLAGS)

# Only what a release runs: the venv, helm and syft (no Kubernetes build, no Debian packages).
release-tools:
	bash scripts/bootstrap.sh release
