"""Pull-secret credentials go only to the registry location they were written for."""

from __future__ import annotations

import base64
import json

from slimguard.core.model.reference import ImageReference
from slimguard.registry.credentials import credentials_for, decode_secret_data, parse_docker_config


def dockerconfig(**entries: tuple[str, str]) -> bytes:
    auths = {
        location: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
        for location, (user, password) in entries.items()
    }
    return json.dumps({"auths": auths}).encode()


def users_for(image: str, payload: bytes) -> list[str]:
    return [c.username for c in credentials_for(ImageReference.parse(image), parse_docker_config(payload))]


def test_a_credential_matches_its_host_and_port_only() -> None:
    payload = dockerconfig(**{"registry.local:5000": ("alice", "pw")})
    assert users_for("registry.local:5000/team/api:1", payload) == ["alice"]
    assert users_for("registry.local/team/api:1", payload) == []
    assert users_for("registry.local:5001/team/api:1", payload) == []
    assert users_for("other.local:5000/team/api:1", payload) == []


def test_docker_hub_keys_in_every_spelling_match_hub_images() -> None:
    payload = dockerconfig(**{"https://index.docker.io/v1/": ("hubuser", "pw")})
    assert users_for("node:20", payload) == ["hubuser"]
    assert users_for("docker.io/library/node:20", payload) == ["hubuser"]
    assert users_for("ghcr.io/x/y:1", payload) == []


def test_wildcard_hosts_match_one_label_and_the_longest_path_wins() -> None:
    payload = dockerconfig(**{"*.example.com": ("any", "pw"), "reg.example.com/team": ("team", "pw")})
    assert users_for("reg.example.com/team/api:1", payload) == ["team", "any"]
    assert users_for("reg.example.com/other/api:1", payload) == ["any"]
    assert users_for("a.b.example.com/team/api:1", payload) == []


def test_a_path_scoped_credential_does_not_leak_to_a_sibling_repository() -> None:
    payload = dockerconfig(**{"reg.io/team": ("team", "pw")})
    assert users_for("reg.io/team/api:1", payload) == ["team"]
    assert users_for("reg.io/teamster/api:1", payload) == []


def test_malformed_secrets_yield_no_credentials_instead_of_failing() -> None:
    assert parse_docker_config(b"not json") == []
    assert parse_docker_config(b"[]") == []
    assert decode_secret_data({".dockerconfigjson": "!!!not base64"}) == []
    assert decode_secret_data({"token": "abc"}) == []


def test_a_credential_never_prints_its_password() -> None:
    (credential,) = parse_docker_config(dockerconfig(**{"reg.io": ("alice", "s3cret")}))
    assert "s3cret" not in repr(credential)
    assert credential.password == "s3cret"


def test_username_and_password_fields_count_without_auth_as_the_kubelet_reads_them() -> None:
    payload = json.dumps({"auths": {"registry.local": {"username": "bob", "password": "pw"}}}).encode()
    assert users_for("registry.local/team/api:1", payload) == ["bob"]


def test_one_malformed_entry_is_skipped_and_the_others_still_count() -> None:
    good = base64.b64encode(b"alice:pw").decode()
    payload = json.dumps(
        {
            "auths": {
                "bad.local": {"auth": 5},
                "text.local": "not an object",
                "nocolon.local": {"auth": "bm9jb2xvbg=="},
                "registry.local": {"auth": good},
            }
        }
    ).encode()
    secret = {".dockerconfigjson": base64.b64encode(payload).decode()}
    assert [c.username for c in decode_secret_data(secret)] == ["alice"]
