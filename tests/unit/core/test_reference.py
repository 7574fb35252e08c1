"""Image references are read the way the container runtime reads them, Docker Hub defaults included."""

from __future__ import annotations

import pytest

from slimguard.core.errors import InvalidReference
from slimguard.core.model.reference import ImageReference

SHA = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag"),
    [
        ("node:20", "docker.io", "library/node", "20"),
        ("node", "docker.io", "library/node", "latest"),
        ("bitnami/redis:7.2", "docker.io", "bitnami/redis", "7.2"),
        ("docker.io/node:20", "docker.io", "library/node", "20"),
        ("index.docker.io/library/node:20", "docker.io", "library/node", "20"),
        ("registry-1.docker.io/node", "docker.io", "library/node", "latest"),
        ("ghcr.io/org/team/app:v1.2.3", "ghcr.io", "org/team/app", "v1.2.3"),
    ],
)
def test_docker_hub_short_names_are_filled_in_and_other_registries_are_kept(
    text: str, registry: str, repository: str, tag: str
) -> None:
    reference = ImageReference.parse(text)
    assert (reference.registry, reference.repository, reference.tag, reference.digest) == (
        registry,
        repository,
        tag,
        None,
    )


def test_node_20_is_docker_io_library_node_20() -> None:
    assert str(ImageReference.parse("node:20")) == "docker.io/library/node:20"


def test_a_registry_with_a_port_is_a_registry_and_the_colon_after_the_path_is_the_tag() -> None:
    reference = ImageReference.parse("registry.example.com:5000/team/app:1.0")
    assert (reference.registry, reference.repository, reference.tag) == ("registry.example.com:5000", "team/app", "1.0")
    assert reference.host == "registry.example.com"


def test_a_port_without_a_tag_is_not_mistaken_for_a_tag() -> None:
    reference = ImageReference.parse("127.0.0.1:5000/app")
    assert (reference.registry, reference.repository, reference.tag) == ("127.0.0.1:5000", "app", "latest")


@pytest.mark.parametrize("text", ["localhost/app:1", "localhost:5000/app:1"])
def test_localhost_is_a_registry_even_without_a_dot(text: str) -> None:
    reference = ImageReference.parse(text)
    assert reference.host == "localhost"
    assert reference.repository == "app"


def test_a_first_segment_without_dot_colon_or_localhost_is_a_docker_hub_namespace() -> None:
    assert ImageReference.parse("myteam/app").name == "docker.io/myteam/app"


def test_an_ipv6_registry_keeps_its_brackets_and_its_host_drops_them() -> None:
    reference = ImageReference.parse("[::1]:5000/team/app:2")
    assert (reference.registry, reference.repository, reference.tag) == ("[::1]:5000", "team/app", "2")
    assert reference.host == "::1"


def test_registry_hosts_are_case_insensitive_and_lowered() -> None:
    assert ImageReference.parse("Registry.Example.COM/team/app").registry == "registry.example.com"


def test_a_digest_pins_the_image_and_is_what_the_registry_is_asked_for() -> None:
    reference = ImageReference.parse(f"node@{SHA}")
    assert (reference.tag, reference.digest) == (None, SHA)
    assert reference.identifier == SHA
    assert str(reference) == f"docker.io/library/node@{SHA}"


def test_a_tag_and_a_digest_are_both_kept_and_the_digest_wins() -> None:
    reference = ImageReference.parse(f"registry.example.com:5000/app:1.0@{SHA}")
    assert (reference.registry, reference.tag, reference.digest) == ("registry.example.com:5000", "1.0", SHA)
    assert reference.identifier == SHA
    assert str(reference) == f"registry.example.com:5000/app:1.0@{SHA}"


def test_with_digest_keeps_the_tag_for_people_to_read() -> None:
    assert str(ImageReference.parse("node:20").with_digest(SHA)) == f"docker.io/library/node:20@{SHA}"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("Node:20", "invalid repository"),
        ("team/App", "invalid repository"),
        ("registry.example.com/Team/app", "invalid repository"),
        ("node@sha256:abc", "invalid digest"),
        ("node@sha256:" + "A" * 64, "64 lowercase hex"),
        ("node@sha256:" + "a" * 63, "64 lowercase hex"),
        ("node@" + "a" * 64, "invalid digest"),
        ("node:", "invalid tag"),
        ("node:-x", "invalid tag"),
        ("node:" + "a" * 129, "invalid tag"),
        ("node:café", "invalid tag"),
        ("bad_host.example.com:port/app", "invalid"),
        ("team//app", "invalid repository"),
        ("", "empty"),
        (" node:20", "surrounding spaces"),
    ],
)
def test_malformed_references_are_rejected_naming_the_part_at_fault(text: str, named: str) -> None:
    with pytest.raises(InvalidReference, match=named):
        ImageReference.parse(text)


def test_an_uppercase_repository_is_rejected_with_a_message_quoting_the_reference() -> None:
    with pytest.raises(InvalidReference) as caught:
        ImageReference.parse("registry.example.com/Team/App:1")
    assert "'registry.example.com/Team/App:1'" in str(caught.value)
    assert "lowercase" in str(caught.value)


def test_a_name_of_255_characters_is_accepted_and_one_of_256_is_rejected() -> None:
    registry = "registry.example.com/"
    fits = registry + "a" * (255 - len(registry))
    assert ImageReference.parse(fits).name == fits
    with pytest.raises(InvalidReference, match="longer than 255"):
        ImageReference.parse(fits + "b")


def test_the_length_limit_counts_the_docker_hub_prefix_the_runtime_adds() -> None:
    short = "a" * (255 - len("docker.io/library/") + 1)
    with pytest.raises(InvalidReference, match="longer than 255"):
        ImageReference.parse(short)


def test_spellings_of_an_official_docker_hub_image_cover_every_way_people_write_it() -> None:
    spellings = ImageReference.parse("node:20-alpine").spellings()
    for written in (
        "docker.io/library/node:20-alpine",
        "docker.io/node:20-alpine",
        "library/node:20-alpine",
        "node:20-alpine",
        "docker.io/library/node",
        "node",
    ):
        assert written in spellings


def test_spellings_of_another_registry_are_only_its_full_name() -> None:
    assert ImageReference.parse("registry.example.com/team/app:1.0").spellings() == (
        "registry.example.com/team/app",
        "registry.example.com/team/app:1.0",
    )


def test_spellings_of_a_pinned_image_include_the_digest_with_and_without_the_tag() -> None:
    spellings = ImageReference.parse(f"registry.example.com/app:1@{SHA}").spellings()
    assert f"registry.example.com/app@{SHA}" in spellings
    assert f"registry.example.com/app:1@{SHA}" in spellings
    assert "registry.example.com/app:1" in spellings


@pytest.mark.parametrize("port", ["0", "65536", "99999"])
def test_a_registry_port_outside_1_to_65535_is_refused_by_the_parser(port: str) -> None:
    # Refused here, so the resolver and the connection layer never see a port no socket can have.
    with pytest.raises(InvalidReference, match=rf"registry port {port} is not between 1 and 65535"):
        ImageReference.parse(f"registry.example.com:{port}/team/app:1.0")


@pytest.mark.parametrize("text", ["registry.example.com:1/app", "registry.example.com:65535/app", "[::1]:65535/app"])
def test_a_registry_port_from_1_to_65535_is_accepted(text: str) -> None:
    assert ImageReference.parse(text).repository == "app"
