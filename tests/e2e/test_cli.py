"""The CLI in a pipeline, end to end: `slimguard lint`, `check --docker` against the real Docker engine, `check`
against the real registry, and the same verdict as the controller's for the same images.

The two Dockerfiles are the seed's: the single-stage one on the fat node base (fixtures/fat-app) and the
multi-stage one with a busybox final stage (fixtures/slim-app), both built here by dockerd with local
stand-ins for their bases. Every command runs as a user runs it: `python -m slimguard.cli.main` in a
subprocess, its output piped (so plain, not rich), its exit status read.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from cluster import apply, deployment, image_policy, namespace, violations, wait_for_status

from slimguard_testbed import CertificateAuthority, ControlPlane, DockerEngine, Registry
from slimguard_testbed.images.common import ENGINE_BASE_TAG, SLIM_APP_DIR
from slimguard_testbed.images.engine_built import (
    CLI_FAT_ARTIFACT,
    FAT_APP_DIR,
    build_fat_cli_app,
    engine_image_artifact,
)
from slimguard_testbed.images.engine_warm import import_busybox_base
from slimguard_testbed.oci import push
from slimguard_testbed.operator_runner import InProcessOperator

REPO = Path(__file__).resolve().parents[2]
SARIF_SCHEMA = json.loads((REPO / "tests" / "schemas" / "sarif-schema-2.1.0.json").read_text())
POLICY = "ci-slim"


@dataclass(frozen=True)
class Built:
    fat: str
    slim: str
    node_base: str
    pushed_fat: str
    pushed_slim: str


def slimguard(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, output piped."""
    return subprocess.run(
        [sys.executable, "-m", "slimguard.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO / "operator"), **(env or {})},
        check=False,
    )


def write_policy(path: Path, name: str, rules: dict[str, Any], *, mode: str = "Enforce", **spec: Any) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "slimguard.dev/v1alpha1",
                "kind": "ImagePolicy",
                "metadata": {"name": name},
                "spec": {"mode": mode, "rules": rules, **spec},
            }
        )
    )
    return path


def ci_rules(node_base: str) -> dict[str, Any]:
    return {
        "maxUncompressedSize": "300Mi",
        "deniedBaseImages": [node_base, "*/base/debian:*"],
        "requireNonRootUser": True,
    }


@pytest.fixture(scope="module")
def built(
    docker_engine: DockerEngine,
    fixture_images: Any,
    registry: Registry,
    basic_registry: Registry,
    tmp_path_factory: pytest.TempPathFactory,
) -> Built:
    """Both Dockerfiles built by dockerd, then pushed to the session's registry.

    The collection-time warm-up has pulled the fat base into the engine and built and saved the fat image once
    (slimguard_testbed/images/engine_warm.py): the pull and the fat build below are cache hits, and the push
    uploads only the app's layers, mounting the base's from base/node, where the session already pushed them.
    """
    client = docker_engine.client()
    node_base = fixture_images.node_base.ref
    client.images.pull(node_base)  # the fat base's stand-in, from the test registry (anonymous under base/)
    import_busybox_base(client, fixture_images.busybox.artifact)
    fat, slim = "slimguard-e2e/cli-api:fat", "slimguard-e2e/cli-api:slim"
    fat_id = build_fat_cli_app(client, base=node_base, work=tmp_path_factory.mktemp("cli-builds"), tag=fat)
    slim_image, _logs = client.images.build(
        path=str(SLIM_APP_DIR),
        tag=slim,
        buildargs={
            "BASE": ENGINE_BASE_TAG,
            "BASE_NAME": fixture_images.busybox.ref,
            "BASE_DIGEST": fixture_images.busybox.digest,
        },
        network_mode="none",
        pull=False,
        rm=True,
        forcerm=True,
    )
    node_layers = fixture_images.node_base.artifact.layers
    fat_artifact = engine_image_artifact(client, fat_id, name=CLI_FAT_ARTIFACT, known_layers=node_layers)
    slim_artifact = engine_image_artifact(client, str(slim_image.id), name="cli-api-slim")
    client.close()
    pushed = {}
    for flavour, artifact in (("fat", fat_artifact), ("slim", slim_artifact)):
        push(
            basic_registry.endpoint, "shop/cli-api", flavour, artifact, mount_from=[fixture_images.node_base.repository]
        )
        pushed[flavour] = f"{registry.host}/shop/cli-api:{flavour}"  # the same storage, read through the token registry
    return Built(fat, slim, node_base, pushed["fat"], pushed["slim"])


def registry_flags(registry: Registry) -> list[str]:
    return ["--allow-loopback-registries", "--ca-file", str(registry.ca_file)]


def docker_env(engine: DockerEngine, config_dir: Path) -> dict[str, str]:
    return {"DOCKER_HOST": engine.base_url, "DOCKER_CONFIG": str(config_dir)}


@pytest.fixture
def no_docker_config(tmp_path: Path) -> Path:
    directory = tmp_path / "docker-config"
    directory.mkdir()
    (directory / "config.json").write_text("{}")
    return directory


# --- lint ---------------------------------------------------------------------------------------------------


def test_lint_flags_the_single_stage_dockerfile_and_passes_the_multi_stage_one() -> None:
    fat = slimguard("lint", str(FAT_APP_DIR / "Dockerfile"), "--format", "json")
    assert fat.returncode == 1, fat.stderr
    found = {f["rule"] for f in json.loads(fat.stdout)["files"][0]["findings"]}
    assert {"SG101", "SG105"} <= found  # single stage on node:20-bookworm, and no USER

    slim = slimguard("lint", str(SLIM_APP_DIR / "Dockerfile"), "--format", "json")
    assert slim.returncode == 0, slim.stdout
    levels = {f["level"] for f in json.loads(slim.stdout)["files"][0]["findings"]}
    assert "error" not in levels

    plain = slimguard("lint", str(FAT_APP_DIR / "Dockerfile"))
    assert f"{FAT_APP_DIR / 'Dockerfile'}:6 SG101 error: single-stage build on node:20-bookworm" in plain.stdout
    assert "\x1b[" not in plain.stdout  # piped: plain text


def test_lint_sarif_is_valid_sarif_2_1_0_with_the_dockerfile_line() -> None:
    result = slimguard("lint", str(FAT_APP_DIR / "Dockerfile"), "--format", "sarif")
    assert result.returncode == 1
    log = json.loads(result.stdout)
    jsonschema.validate(log, SARIF_SCHEMA)
    results = log["runs"][0]["results"]
    sg101 = next(r for r in results if r["ruleId"] == "SG101")
    location = sg101["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == str(FAT_APP_DIR / "Dockerfile")
    assert location["region"]["startLine"] == 6
    assert sg101["level"] == "error"


def test_lint_of_something_that_is_no_dockerfile_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bogus = tmp_path / "Dockerfile"
    bogus.write_text("this is not\na Dockerfile\n")
    result = slimguard("lint", str(bogus))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "is not a Dockerfile instruction" in result.stderr


# --- check --docker -----------------------------------------------------------------------------------------


def test_check_docker_fails_the_fat_build_and_passes_the_slim_one(
    built: Built, docker_engine: DockerEngine, registry: Registry, tmp_path: Path, no_docker_config: Path
) -> None:
    policy = write_policy(tmp_path / "policy.yaml", POLICY, ci_rules(built.node_base))
    env = docker_env(docker_engine, no_docker_config)
    fat = slimguard(
        "check", "--docker", built.fat, "--policy", str(policy), "--format", "json", *registry_flags(registry), env=env
    )
    assert fat.returncode == 1, fat.stdout + fat.stderr
    (image,) = json.loads(fat.stdout)["images"]
    rules = {finding["rule"] for finding in image["findings"]}
    assert rules == {"maxUncompressedSize", "deniedBaseImages", "requireNonRootUser"}
    denied = next(f for f in image["findings"] if f["rule"] == "deniedBaseImages")
    assert f"is built on {built.node_base} (found by " in denied["message"]

    slim = slimguard("check", "--docker", built.slim, "--policy", str(policy), *registry_flags(registry), env=env)
    assert slim.returncode == 0, slim.stdout + slim.stderr
    assert f"{built.slim}: compliant" in slim.stdout


@pytest.mark.timeout(900)  # gzips the fat image's ~800 MB save stream: minutes on a shared 2-core machine
def test_check_docker_measures_compressed_size_and_reads_contents_from_one_save_stream(
    built: Built, docker_engine: DockerEngine, registry: Registry, tmp_path: Path, no_docker_config: Path
) -> None:
    """--measure-compressed gzips each saved layer; a content rule walks the same stream (never on disk)."""
    rules = {"maxCompressedSize": "200Mi", "maxPackages": 50}
    policy = write_policy(tmp_path / "policy.yaml", "measured", rules)
    env = docker_env(docker_engine, no_docker_config)
    flags = ["--docker", "--measure-compressed", "--policy", str(policy), "--format", "json", *registry_flags(registry)]
    fat = slimguard("check", built.fat, *flags, env=env)
    assert fat.returncode == 1, fat.stdout + fat.stderr
    (image,) = json.loads(fat.stdout)["images"]
    found = {finding["rule"]: finding for finding in image["findings"]}
    assert set(found) == {"maxCompressedSize", "maxPackages"}, image["findings"]
    assert "compressed (linux/amd64)" in found["maxCompressedSize"]["message"]

    pushed = slimguard("inspect", built.pushed_fat, "--format", "json", *registry_flags(registry), env=env)
    local = slimguard("inspect", built.fat, "--docker", "--measure-compressed", "--format", "json", env=env)
    registry_size = json.loads(pushed.stdout)["platforms"][0]["compressedSize"]
    measured = json.loads(local.stdout)["platforms"][0]["compressedSize"]
    assert abs(measured - registry_size) / registry_size < 0.1  # another gzip of the same bytes

    slim = slimguard("check", built.slim, *flags, env=env)
    assert slim.returncode == 0, slim.stdout + slim.stderr


def test_check_docker_of_an_image_the_engine_lacks_is_exit_2(
    built: Built, docker_engine: DockerEngine, registry: Registry, tmp_path: Path, no_docker_config: Path
) -> None:
    policy = write_policy(tmp_path / "policy.yaml", POLICY, ci_rules(built.node_base))
    env = docker_env(docker_engine, no_docker_config)
    result = slimguard("check", "--docker", "slimguard-e2e/never-built:1", "--policy", str(policy), env=env)
    assert result.returncode == 2
    assert "the local Docker engine has no image slimguard-e2e/never-built:1" in result.stdout


# --- check against the registry, and the controller's verdict -------------------------------------------------


def test_after_pushing_check_gives_the_verdict_the_controller_writes_finding_by_finding(
    built: Built,
    control_plane: ControlPlane,
    operator: InProcessOperator,
    registry: Registry,
    tmp_path: Path,
    no_docker_config: Path,
) -> None:
    ns = "cli-compare"
    rules = ci_rules(built.node_base)
    apply(
        control_plane, namespace(ns), deployment("fat", ns, built.pushed_fat), deployment("slim", ns, built.pushed_slim)
    )
    apply(control_plane, image_policy(POLICY, rules, namespaces=[ns], mode="Enforce"))
    controller_fat = violations(wait_for_status(control_plane, "deployment", "fat", ns, "noncompliant", timeout=120))
    wait_for_status(control_plane, "deployment", "slim", ns, "compliant", timeout=120)

    policy = write_policy(tmp_path / "policy.yaml", POLICY, rules)
    env = {"DOCKER_CONFIG": str(no_docker_config)}
    fat = slimguard(
        "check", built.pushed_fat, "--policy", str(policy), "--format", "json", *registry_flags(registry), env=env
    )
    assert fat.returncode == 1, fat.stdout + fat.stderr
    (image,) = json.loads(fat.stdout)["images"]
    from_cli = sorted((f["policy"], f["rule"], f["message"]) for f in image["findings"])
    from_controller = sorted(
        (v["policy"], v["rule"], str(v["message"]).removeprefix('container "api": ')) for v in controller_fat
    )
    assert from_cli == from_controller
    assert len(from_cli) == 3

    slim = slimguard("check", built.pushed_slim, "--policy", str(policy), *registry_flags(registry), env=env)
    assert slim.returncode == 0, slim.stdout + slim.stderr

    # The cluster's own policies, read with a kubeconfig: the same findings of this policy.
    kubeconfig = ["--cluster", "--kubeconfig", str(control_plane.admin_kubeconfig)]
    clustered = slimguard("check", built.pushed_fat, *kubeconfig, "-f", "json", *registry_flags(registry), env=env)
    assert clustered.returncode == 1, clustered.stdout + clustered.stderr
    (image,) = json.loads(clustered.stdout)["images"]
    assert sorted((f["policy"], f["rule"], f["message"]) for f in image["findings"] if f["policy"] == POLICY) == (
        from_cli
    )


def test_check_sarif_is_valid_and_locates_image_findings_at_the_repository(
    built: Built, registry: Registry, tmp_path: Path, no_docker_config: Path
) -> None:
    policy = write_policy(tmp_path / "policy.yaml", POLICY, ci_rules(built.node_base))
    result = slimguard(
        "check", built.pushed_fat, "-p", str(policy), "--format", "sarif", *registry_flags(registry),
        env={"DOCKER_CONFIG": str(no_docker_config)},
    )  # fmt: skip
    assert result.returncode == 1
    log = json.loads(result.stdout)
    jsonschema.validate(log, SARIF_SCHEMA)
    run = log["runs"][0]
    assert {rule["id"] for rule in run["tool"]["driver"]["rules"]} == {
        "maxUncompressedSize",
        "deniedBaseImages",
        "requireNonRootUser",
    }
    for found in run["results"]:
        assert found["level"] == "error"
        assert found["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "shop/cli-api"
        assert found["locations"][0]["physicalLocation"]["region"]["startLine"] == 1


# --- exit codes ---------------------------------------------------------------------------------------------


def test_warn_findings_exit_0_unless_strict_and_audit_findings_exit_0(
    fixture_images: Any, registry: Registry, tmp_path: Path, no_docker_config: Path
) -> None:
    env = {"DOCKER_CONFIG": str(no_docker_config)}
    fat = fixture_images.fat_app.ref
    warn = write_policy(tmp_path / "warn.yaml", "warn-size", {"maxCompressedSize": "200Mi"}, mode="Warn")
    audit = write_policy(tmp_path / "audit.yaml", "audit-size", {"maxCompressedSize": "200Mi"}, mode="Audit")
    assert slimguard("check", fat, "-p", str(warn), *registry_flags(registry), env=env).returncode == 0
    strict = slimguard("check", fat, "-p", str(warn), "--strict", *registry_flags(registry), env=env)
    assert strict.returncode == 1
    assert "WARNED [maxCompressedSize]" in strict.stdout
    assert slimguard("check", fat, "-p", str(audit), "--strict", *registry_flags(registry), env=env).returncode == 0


def test_an_unknown_image_a_bad_policy_and_bad_usage_exit_2_with_one_line(
    fixture_images: Any, registry: Registry, tmp_path: Path, no_docker_config: Path
) -> None:
    env = {"DOCKER_CONFIG": str(no_docker_config)}
    policy = write_policy(tmp_path / "policy.yaml", "size", {"maxCompressedSize": "200Mi"})
    unknown = slimguard(
        "check", f"{registry.host}/shop/no-such-image:1", "-p", str(policy), *registry_flags(registry), env=env
    )
    assert unknown.returncode == 2
    assert "[inspection: ImageNotFound]" in unknown.stdout, unknown.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: slimguard.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: bad}\n"
        "spec:\n  rules:\n    maxLayers: 0\n"
    )
    malformed = slimguard("check", fixture_images.slim_app.ref, "-p", str(bad), *registry_flags(registry), env=env)
    assert malformed.returncode == 2
    (line,) = malformed.stderr.strip().splitlines()
    assert line.startswith(f'slimguard: error: {bad}: ImagePolicy "bad" is invalid: spec.rules.maxLayers: ')
    no_policy = slimguard("check", fixture_images.slim_app.ref)
    assert no_policy.returncode == 2
    assert "Traceback" not in no_policy.stderr


def test_a_stopped_registry_is_exit_2_never_a_pass(
    fixture_images: Any,
    registry_storage: Path,
    testbed_ca: CertificateAuthority,
    registry_credentials: Any,
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    no_docker_config: Path,
) -> None:
    own = Registry(
        storage_dir=registry_storage,
        ca=testbed_ca,
        auth="htpasswd",
        workdir=tmp_path_factory.mktemp("registry-to-stop"),
        username=registry_credentials.username,
        password=registry_credentials.password,
    )
    policy = write_policy(tmp_path / "policy.yaml", "size", {"maxCompressedSize": "200Mi"})
    config = no_docker_config / "config.json"
    with own:
        image = f"{own.host}/shop/api:1.0-slim"
        # As `docker login` writes it: base64 of user:password in "auth".
        auth = base64.b64encode(f"{own.username}:{own.password}".encode()).decode()
        config.write_text(json.dumps({"auths": {own.host: {"auth": auth}}}))
        up = slimguard(
            "check", image, "-p", str(policy), *registry_flags(own), env={"DOCKER_CONFIG": str(no_docker_config)}
        )
        assert up.returncode == 0, up.stdout + up.stderr  # its credentials came from the Docker config
    down = slimguard(
        "check", image, "-p", str(policy), *registry_flags(own), env={"DOCKER_CONFIG": str(no_docker_config)}
    )
    assert down.returncode == 2, down.stdout
    assert "[inspection: RegistryUnreachable]" in down.stdout, down.stdout
