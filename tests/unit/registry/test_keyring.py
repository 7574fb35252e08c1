"""Which credentials an image gets from a keyring keyed by location patterns, and in which order: the kubelet's
rules (k8s.io/kubernetes v1.36 pkg/credentialprovider/keyring.go), for matchImages and for a provider's answer."""

from __future__ import annotations

import pytest

from slimguard.registry.keyring import AuthEntry, keyring_key, keyring_lookup, provider_matches, urls_match

# The kubelet's own table (keyring_test.go TestURLsMatch), then slimguard's additions.
KUBELET_CASES = [
    ("*.kubernetes.io", "prefix.kubernetes.io", True),
    ("prefix.*.io", "prefix.kubernetes.io", True),
    ("prefix.kubernetes.*", "prefix.kubernetes.io", True),
    ("*-good.kubernetes.io", "prefix-good.kubernetes.io", True),
    ("*.kubernetes.io/blah", "prefix.kubernetes.io/blah", True),
    ("prefix.*.io/foo", "prefix.kubernetes.io/foo/bar", True),
    ("*.kubernetes.io:1111/blah", "prefix.kubernetes.io:1111/blah", True),
    ("prefix.*.io:1111/foo", "prefix.kubernetes.io:1111/foo/bar", True),
    ("*.kubernetes.io", "kubernetes.io", False),
    ("*.*.kubernetes.io", "prefix.kubernetes.io", False),
    ("*.*.kubernetes.io", "kubernetes.io", False),
    ("*kubernetes.io", "a.kubernetes.io", False),
    ("*kubernetes.io", "kubernetes.io", True),
    ("*.*.*.kubernetes.io", "a.b.c.kubernetes.io", True),
    ("kubernetes.io", "kubernetes.com", False),
    ("k*.io", "quay.io", False),
    ("*.kubernetes.io:1234/blah", "prefix.kubernetes.io:1111/blah", False),
    ("prefix.*.io/foo", "prefix.kubernetes.io:1111/foo/bar", False),
]
MORE_CASES = [
    # ECR's pattern, and a registry on a port, as images name them.
    ("*.dkr.ecr.*.amazonaws.com", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app", True),
    ("*.dkr.ecr.*.amazonaws.com", "123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.io/app", False),
    ("127.0.0.1:5000", "127.0.0.1:5000/private/app", True),
    ("127.0.0.1:5000", "127.0.0.1:5001/private/app", False),
    ("127.0.0.1", "127.0.0.1:5000/private/app", False),  # a pattern without a port matches no image with one
    ("127.0.0.1:5000/private", "127.0.0.1:5000/public/app", False),
    # The path is a plain string prefix, as the kubelet compares it.
    ("127.0.0.1:5000/team", "127.0.0.1:5000/teamwork/app", True),
    # Go's filepath.Match, not fnmatch: [!...] is no negation there; a malformed class matches nothing.
    ("reg[!b].example.com", "regb.example.com", True),  # a class of ! and b, not "anything but b"
    ("reg[!b].example.com", "regc.example.com", False),
    ("reg[^a].example.com", "regb.example.com", False),  # ^ is no host character for Go's URL parser
    ("reg[a-c].example.com", "regb.example.com", True),
    ("reg[.example.com", "reg[.example.com", False),
    ("reg*.example.com", "reg1.example.com", True),
    ("reg?.example.com", "reg1.example.com", False),  # ? starts a URL query for the kubelet's parser: no glob
    ("[::1]:5000", "[::1]:5000/app", True),
]


@pytest.mark.parametrize(("pattern", "image", "expected"), KUBELET_CASES + MORE_CASES)
def test_an_image_matches_a_pattern_by_labels_port_and_path_prefix(pattern: str, image: str, expected: bool) -> None:
    assert urls_match(pattern, image) is expected


def test_a_provider_is_asked_when_one_of_its_match_images_matches() -> None:
    patterns = ("*.azurecr.io", "registry.io:8080/path")
    assert provider_matches(patterns, "team.azurecr.io/app")
    assert provider_matches(patterns, "registry.io:8080/path/app")
    assert not provider_matches(patterns, "registry.io/path/app")
    assert not provider_matches(patterns, "ghcr.io/team/app")


@pytest.mark.parametrize(
    ("location", "key"),
    [
        ("https://index.docker.io/v1/", "index.docker.io"),
        ("http://reg.example.com:5000/v2/team", "reg.example.com:5000/team"),
        ("reg.example.com/team/", "reg.example.com/team/"),
        ("reg.example.com", "reg.example.com"),
        ("reg.example.com:notaport", None),
    ],
)
def test_an_answer_key_is_filed_as_the_kubelet_files_it(location: str, key: str | None) -> None:
    assert keyring_key(location) == key


def test_credentials_come_most_specific_first_then_in_the_providers_order_and_only_for_matching_keys() -> None:
    image = "reg.example.com/team/app"
    found = keyring_lookup(
        [
            ("first", [AuthEntry("reg.example.com", "host", "1"), AuthEntry("*.example.com", "glob", "2")]),
            ("second", [AuthEntry("reg.example.com/team", "path", "3"), AuthEntry("reg.example.com", "host2", "4")]),
            ("third", [AuthEntry("other.example.org", "elsewhere", "5")]),
        ],
        image,
    )
    assert [(c.username, c.location, c.source) for c in found] == [
        ("path", "reg.example.com/team", "credential provider second"),
        ("host", "reg.example.com", "credential provider first"),
        ("host2", "reg.example.com", "credential provider second"),
        ("glob", "*.example.com", "credential provider first"),
    ]


def test_a_key_for_another_host_gives_that_image_nothing() -> None:
    assert keyring_lookup([("p", [AuthEntry("127.0.0.2:5000", "u", "p")])], "127.0.0.1:5000/private/app") == []


def test_docker_hub_images_get_the_index_docker_io_credentials_when_nothing_else_matches() -> None:
    hub = [("p", [AuthEntry("https://index.docker.io/v1/", "hub", "x")])]
    assert [c.username for c in keyring_lookup(hub, "docker.io/library/nginx")] == ["hub"]
    assert keyring_lookup(hub, "ghcr.io/team/app") == []


def test_a_credential_never_prints_its_password() -> None:
    (credential,) = keyring_lookup([("p", [AuthEntry("reg.io", "user", "hunter2")])], "reg.io/app")
    assert "hunter2" not in repr(credential)
    assert "hunter2" not in repr(AuthEntry("reg.io", "user", "hunter2"))
