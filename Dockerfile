# syntax=docker/dockerfile:1
# slimguard's own image, held to policies/slimguard-self.yaml (< 120Mi compressed, non-root, no fat base).
#
#   docker build -t ghcr.io/slimguard/slimguard:0.1.0 .
#
# The final stage is distroless: Debian 12's Python 3.11 and nothing else (no shell, no pip, no apt).
# The venv is built on Debian 12 with that same /usr/bin/python3, because a venv only runs with the
# interpreter it was made with: one built on python:3.12-slim (/usr/local/bin/python3.12) would not start
# on the distroless image. Override both to build for another base pair:
#   docker build --build-arg BUILDER=... --build-arg RUNTIME=... .
ARG BUILDER=debian:12-slim
ARG RUNTIME=gcr.io/distroless/python3-debian12:nonroot

FROM ${BUILDER} AS build
# A package index to install from instead of PyPI (a mirror; the test suite's offline index), if set.
ARG PIP_INDEX_URL
ARG PIP_TRUSTED_HOST
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install --yes --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first: this layer is reused until pyproject.toml changes. The image runs the controller and
# the webhook, so it takes the operator extra beside the CLI's dependencies.
COPY pyproject.toml ./
RUN python3 -m venv /venv \
 && /venv/bin/python -m pip install --upgrade "pip>=24" "setuptools>=77" wheel \
 && /venv/bin/python -c 'import tomllib; project = tomllib.load(open("pyproject.toml", "rb"))["project"]; print("\n".join(project["dependencies"] + project["optional-dependencies"]["operator"]))' \
      > /tmp/requirements.txt \
 && /venv/bin/python -m pip install --only-binary=:all: -r /tmp/requirements.txt
COPY README.md LICENSE ./
COPY operator/ operator/
# The project as a wheel (.dockerignore keeps the test bed out of the context, so only slimguard), then
# into the venv; pip and setuptools leave, so the final image has no installer.
RUN /venv/bin/python -m pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
 && /venv/bin/python -m pip install --no-deps /wheels/slimguard-*.whl \
 && /venv/bin/python -m pip uninstall --yes pip setuptools wheel \
 && find /venv -depth -type d -name __pycache__ -exec rm -rf {} + \
 && /venv/bin/python -m compileall -q -j 0 /venv/lib \
 && /venv/bin/slimguard version

FROM ${RUNTIME}
COPY --from=build /venv /venv
ENV PATH=/venv/bin:/usr/bin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# distroless's nonroot user, numeric so that runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["slimguard"]
CMD ["--help"]
# The labels last: version, revision and created change with every commit, and only this metadata step follows
# them, so the layers above stay cached. `make release` (scripts/release.py) sets them from slimguard.__version__,
# the commit and its time (SOURCE_DATE_EPOCH), and the base's name and digest as it pulled it; a plain
# `docker build` leaves the first three empty and names the base as given.
ARG RUNTIME
ARG VERSION=""
ARG REVISION=""
ARG CREATED=""
ARG BASE_NAME=${RUNTIME}
ARG BASE_DIGEST=""
LABEL org.opencontainers.image.title="slimguard" \
      org.opencontainers.image.description="Keeps container images slim: a Kubernetes operator, admission webhook and CLI." \
      org.opencontainers.image.source="https://github.com/slimguard/slimguard" \
      org.opencontainers.image.url="https://github.com/slimguard/slimguard" \
      org.opencontainers.image.documentation="https://github.com/slimguard/slimguard#readme" \
      org.opencontainers.image.vendor="The slimguard authors" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${BASE_NAME}" \
      org.opencontainers.image.base.digest="${BASE_DIGEST}"
