"""A credential provider's answer and the kubelet's configuration are outside input: whatever a provider prints is
an answer or a failure naming it, whatever a configuration file holds is read or refused with a message, and no
pattern or image makes the kubelet's matching raise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from slimguard.registry.credential_providers import _Failed, _Provider, _Response
from slimguard.registry.keyring import AuthEntry, keyring_key, keyring_lookup, urls_match
from slimguard.registry.provider_config import (
    InvalidProviderConfig,
    ProviderSpec,
    load_credential_providers,
    parse_go_duration,
)
from slimguard.tasks import BackgroundTasks

from .strategies import json_values, references, scalars

API = "credentialprovider.kubelet.k8s.io/v1"
SPEC = ProviderSpec(name="fuzzed", match_images=("reg.io",), default_cache_seconds=60, api_version=API)
_RESPONSE_KEYS = st.one_of(
    st.sampled_from(["apiVersion", "kind", "cacheKeyType", "cacheDuration", "auth", "username", "password", "reg.io"]),
    st.text(max_size=6),
)
_RESPONSE_LEAVES = st.one_of(
    scalars, st.sampled_from([API, "CredentialProviderResponse", "Image", "Registry", "Global", "12h", "-1s"])
)
responses = json_values(keys=_RESPONSE_KEYS, leaves=_RESPONSE_LEAVES)
near_valid_responses = st.fixed_dictionaries(
    {"apiVersion": st.just(API), "kind": st.just("CredentialProviderResponse")},
    optional={
        "cacheKeyType": _RESPONSE_LEAVES,
        "cacheDuration": _RESPONSE_LEAVES,
        "auth": st.one_of(st.none(), st.dictionaries(st.text(max_size=12), json_values(keys=_RESPONSE_KEYS))),
    },
)


def _provider() -> _Provider:
    return _Provider(
        SPEC, "/nonexistent", clock=lambda: 0.0, timeout=1, failure_ttl=1, tasks=BackgroundTasks("fuzz"), environ={}
    )


@given(st.one_of(st.binary(max_size=200), responses.map(lambda v: json.dumps(v).encode()), near_valid_responses.map(
    lambda v: json.dumps(v).encode()
)))  # fmt: skip
@example(b'{"apiVersion": "credentialprovider.kubelet.k8s.io/v1", "kind": "CredentialProviderResponse", '
         b'"cacheKeyType": "Image", "cacheDuration": "1.5.5h"}')  # fmt: skip
@example(b"\xff\xfe")
def test_whatever_a_provider_prints_is_an_answer_or_a_failure(stdout: bytes) -> None:
    try:
        response: _Response | None = _provider()._parsed(stdout, "reg.io/app")
        said = ""
    except _Failed as failure:
        response, said = None, str(failure)
    if response is None:
        assert said.startswith(("printed", "answered")), said  # "credential provider NAME " + this
        return
    assert isinstance(response, _Response)
    assert response.cache_key_type in ("Image", "Registry", "Global")
    if response.cache_duration is not None:
        parse_go_duration(response.cache_duration)


_CONFIG_KEYS = st.one_of(
    st.sampled_from(
        ["apiVersion", "kind", "providers", "name", "matchImages", "defaultCacheDuration", "args", "env", "value",
         "tokenAttributes", "cacheType", "requireServiceAccount", "serviceAccountTokenAudience"]
    ),
    st.text(max_size=6),
)  # fmt: skip
_CONFIG_LEAVES = st.one_of(
    scalars,
    st.sampled_from(
        ["kubelet.config.k8s.io/v1", "CredentialProviderConfig", API, "12h", "0", "*.dkr.ecr.*.amazonaws.com",
         "reg.io:*", "[::1]:5000", "a/b", ".."]
    ),
)  # fmt: skip
near_valid_configs = st.fixed_dictionaries(
    {"apiVersion": st.just("kubelet.config.k8s.io/v1"), "kind": st.just("CredentialProviderConfig")},
    optional={"providers": st.lists(json_values(keys=_CONFIG_KEYS, leaves=_CONFIG_LEAVES), max_size=3)},
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.text(max_size=200),
        json_values(keys=_CONFIG_KEYS, leaves=_CONFIG_LEAVES).map(json.dumps),
        near_valid_configs.map(yaml.safe_dump),
    )
)
@example("providers: [{name: a, name: b}]")
@example("!!python/object/apply:os.system ['true']")
def test_whatever_a_configuration_file_holds_is_read_or_refused_with_a_message(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    try:
        read = load_credential_providers(str(path), str(tmp_path))
        said = ""
    except InvalidProviderConfig as refused:
        read, said = None, str(refused)
    if read is None:
        assert said.startswith(f"{path}: "), said
        return
    assert read.providers


patterns = st.one_of(
    references(), st.text(max_size=30), st.sampled_from(["*.io", "reg.io:5000/x", "[::1]:1", "a[b", "a\\", "[^a]"])
)


@given(patterns, patterns)
def test_no_pattern_or_image_makes_the_kubelets_matching_raise(pattern: str, image: str) -> None:
    assert isinstance(urls_match(pattern, image), bool)
    keyring_key(pattern)
    found: Any = keyring_lookup([("p", [AuthEntry(pattern, "u", "p")])], image)
    assert all(credential.username == "u" for credential in found)
