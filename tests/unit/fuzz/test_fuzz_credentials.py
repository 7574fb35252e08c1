"""Pull secrets are written by anyone who can create a Secret: any data is some credentials or none, never a crash."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from slimguard.core.errors import InvalidReference
from slimguard.core.model.reference import ImageReference
from slimguard.registry.credentials import credentials_for, decode_secret_data, parse_docker_config

from .strategies import json_values, references, scalars

_KEYS = st.one_of(
    st.sampled_from(
        [
            "auths",
            "auth",
            "username",
            "password",
            "email",
            "identitytoken",
            "registry.local:5000",
            "https://index.docker.io/v1/",
            "*.example.com",
            "reg.example.com/team",
            "docker.io",
        ]
    ),
    st.text(max_size=8),
)
auth_values = st.one_of(
    st.binary(max_size=20).map(lambda raw: base64.b64encode(raw).decode()),
    st.builds(
        lambda user, password: base64.b64encode(f"{user}:{password}".encode()).decode(),
        st.text(max_size=5),
        st.text(max_size=5),
    ),
)
configs = json_values(keys=_KEYS, leaves=st.one_of(scalars, auth_values))
payloads = st.one_of(st.binary(max_size=100), configs.map(lambda value: json.dumps(value).encode()))


def _encoded(payload: bytes, garble: bool) -> str:
    text = base64.b64encode(payload).decode()
    return text[:-1] + "!" if garble and text else text


@given(
    st.dictionaries(st.sampled_from([".dockerconfigjson", ".dockercfg", "other"]), st.text(max_size=4), max_size=2),
    payloads,
    st.booleans(),
    references(),
)
@example({}, b'{"auths": {"r.io": "not-an-object"}}', False, "r.io/app")
@example({}, b'{"auths": {"r.io": {"auth": 5}}}', False, "r.io/app")
@example({}, b'{"auths": {"r.io": {"auth": "%%%"}}}', False, "r.io/app")
@example({}, b'{"auths": {"r.io": {"auth": "' + base64.b64encode(b"\xff\xfe:x") + b'"}}}', False, "r.io/app")
@example({}, b'{"auths": {"r.io": {"username": ["u"], "password": {}}}}', False, "r.io/app")
@example({}, b'{"auths": {"r.io:x:y/": {"username": "u", "password": "p"}}}', False, "r.io/app")
def test_any_secret_data_decodes_to_credentials_and_matching_never_fails(
    data: dict[str, str], payload: bytes, garble: bool, image: str
) -> None:
    data = {**data, ".dockerconfigjson": _encoded(payload, garble)}
    credentials = decode_secret_data(data)
    for credential in credentials:
        assert isinstance(credential.username, str)
        assert isinstance(credential.password, str)
    try:
        reference = ImageReference.parse(image)
    except InvalidReference:
        return
    assert set(credentials_for(reference, credentials)) <= set(credentials)


@given(configs)
@example({"auths": {"r.io": {"auth": "\x80"}}})  # once: ValueError from b64decode of non-ASCII text
def test_any_docker_config_document_parses(document: Any) -> None:
    assert isinstance(parse_docker_config(json.dumps(document)), list)
