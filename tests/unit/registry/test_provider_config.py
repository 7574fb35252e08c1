"""The kubelet's credential provider configuration, read once at start-up: what the kubelet accepts is accepted, and
what it refuses fails at once with a message naming the file and every bad item."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from slimguard.registry.provider_config import InvalidProviderConfig, load_credential_providers, parse_go_duration

ECR = {
    "name": "ecr-credential-provider",
    "matchImages": ["*.dkr.ecr.*.amazonaws.com", "*.dkr.ecr.*.amazonaws.com.cn"],
    "defaultCacheDuration": "12h",
    "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
    "args": ["get-credentials"],
    "env": [{"name": "AWS_PROFILE", "value": "node"}],
}
EKS_YAML = """\
apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: ecr-credential-provider
    matchImages:
      - "*.dkr.ecr.*.amazonaws.com"
    defaultCacheDuration: "12h"
    apiVersion: credentialprovider.kubelet.k8s.io/v1
"""


def config(*providers: dict[str, Any], **header: Any) -> str:
    return json.dumps(
        {"apiVersion": "kubelet.config.k8s.io/v1", "kind": "CredentialProviderConfig", "providers": list(providers)}
        | header
    )


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "bin"
    directory.mkdir()
    return directory


def refusal(tmp_path: Path, bin_dir: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(InvalidProviderConfig) as refused:
        load_credential_providers(str(path), str(bin_dir))
    message = str(refused.value)
    assert message.startswith(f"{path}: "), message
    return message


def test_the_eks_node_configuration_is_read(tmp_path: Path, bin_dir: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(EKS_YAML)
    settings = load_credential_providers(str(path), str(bin_dir))
    (provider,) = settings.providers
    assert provider.name == "ecr-credential-provider"
    assert provider.match_images == ("*.dkr.ecr.*.amazonaws.com",)
    assert provider.default_cache_seconds == 12 * 3600
    assert settings.binary(provider) == bin_dir / "ecr-credential-provider"


def test_args_and_env_are_kept_in_order(tmp_path: Path, bin_dir: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(config(ECR))
    (provider,) = load_credential_providers(str(path), str(bin_dir)).providers
    assert provider.args == ("get-credentials",)
    assert provider.env == (("AWS_PROFILE", "node"),)


def test_a_directory_of_files_is_merged_in_name_order(tmp_path: Path, bin_dir: Path) -> None:
    directory = tmp_path / "config.d"
    directory.mkdir()
    (directory / "20-gcr.yaml").write_text(config({**ECR, "name": "gcr", "matchImages": ["gcr.io"]}))
    (directory / "10-ecr.json").write_text(config(ECR))
    (directory / "README.md").write_text("not read")
    settings = load_credential_providers(str(directory), str(bin_dir))
    assert [provider.name for provider in settings.providers] == ["ecr-credential-provider", "gcr"]


def test_a_provider_in_two_files_is_refused_naming_both(tmp_path: Path, bin_dir: Path) -> None:
    directory = tmp_path / "config.d"
    directory.mkdir()
    (directory / "a.json").write_text(config(ECR))
    (directory / "b.json").write_text(config(ECR))
    with pytest.raises(InvalidProviderConfig, match=r"b\.json: provider 'ecr-credential-provider' is configured twice"):
        load_credential_providers(str(directory), str(bin_dir))


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (config(ECR, apiVersion="kubelet.config.k8s.io/v2"), "apiVersion 'kubelet.config.k8s.io/v2' is not one of"),
        (config(ECR, kind="KubeletConfiguration"), "kind 'KubeletConfiguration' is not CredentialProviderConfig"),
        (config(), "providers: at least one provider is required"),
        (config({**ECR, "matchImagez": ["x"]}), "providers[0] (ecr-credential-provider).matchImagez: unknown field"),
        (config(ECR, extra=1), "extra: unknown field"),
        (config({**ECR, "name": "bin/ecr"}), "providers[0] (bin/ecr).name 'bin/ecr': cannot contain '/'"),
        (config({**ECR, "name": ".."}), "providers[0] (..).name '..': cannot be '..'"),
        (config(ECR, ECR), "providers: the name 'ecr-credential-provider' is used twice"),
        (config({**ECR, "apiVersion": "credentialprovider.kubelet.k8s.io/v2"}), ".apiVersion 'credentialprovider"),
        (config({**ECR, "matchImages": []}), ".matchImages: at least one image pattern is required"),
        (config({**ECR, "matchImages": ["registry.io:*"]}), "the port '*' is not a number"),
        (config({k: v for k, v in ECR.items() if k != "defaultCacheDuration"}), ".defaultCacheDuration: required"),
        (config({**ECR, "defaultCacheDuration": "12 hours"}), "invalid duration '12 hours'"),
        (config({**ECR, "defaultCacheDuration": 600}), "defaultCacheDuration: input should be a valid string"),
        (config({**ECR, "defaultCacheDuration": "-1m"}), "'-1m': must not be negative"),
        (config({**ECR, "tokenAttributes": {"cacheType": "Pod"}}), ".serviceAccountTokenAudience: required"),
        (EKS_YAML + "    apiVersion: credentialprovider.kubelet.k8s.io/v1\n", "'apiVersion' appears twice"),
        ("providers: [", "not YAML or JSON"),
        ("- a list", "not a CredentialProviderConfig"),
    ],
)
def test_a_bad_item_is_refused_at_once_naming_it(tmp_path: Path, bin_dir: Path, text: str, said: str) -> None:
    assert said in refusal(tmp_path, bin_dir, text)


def test_every_bad_item_is_named_in_one_message(tmp_path: Path, bin_dir: Path) -> None:
    message = refusal(tmp_path, bin_dir, config({**ECR, "name": "a b", "matchImages": [], "apiVersion": ""}))
    assert "providers[0] (a b).name 'a b': cannot contain spaces" in message
    assert "providers[0] (a b).apiVersion: required" in message
    assert "providers[0] (a b).matchImages: at least one image pattern is required" in message


def test_a_missing_config_or_bin_dir_is_refused(tmp_path: Path, bin_dir: Path) -> None:
    with pytest.raises(InvalidProviderConfig, match="no such file or directory"):
        load_credential_providers(str(tmp_path / "absent.yaml"), str(bin_dir))
    (tmp_path / "config.yaml").write_text(EKS_YAML)
    with pytest.raises(InvalidProviderConfig, match=r"--image-credential-provider-bin-dir .*: no such directory"):
        load_credential_providers(str(tmp_path / "config.yaml"), str(tmp_path / "absent"))
    empty = tmp_path / "empty.d"
    empty.mkdir()
    with pytest.raises(InvalidProviderConfig, match=r"holds no \*\.json, \*\.yaml or \*\.yml file"):
        load_credential_providers(str(empty), str(bin_dir))


def test_a_missing_binary_is_no_start_up_error(tmp_path: Path, bin_dir: Path) -> None:
    """It is said on every image the provider matches instead (an unanswered webhook would admit everything)."""
    path = tmp_path / "config.yaml"
    path.write_text(EKS_YAML)
    assert not (bin_dir / "ecr-credential-provider").exists()
    assert load_credential_providers(str(path), str(bin_dir)).providers


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("0s", 0), ("12h", 43200), ("1m30s", 90), ("1.5h", 5400), ("500ms", 0.5), ("-2s", -2), ("+3m", 180)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "12", "12 h", "h", ".s", "1d", "1h-2m"])
def test_what_go_refuses_as_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_go_duration(text)
