"""A local Docker engine's answers (inspect, history, the save stream's config) turned into facts."""

from __future__ import annotations

import json

from slimguard.core.facts.local_image import local_image_facts, with_compressed_sizes, with_config
from slimguard.core.model.platform import Platform

MiB = 1024**2
BASE, APP = "sha256:" + "1" * 64, "sha256:" + "2" * 64
ATTRS = {
    "Id": "sha256:" + "9" * 64,
    "Os": "linux",
    "Architecture": "arm64",
    "Variant": "v8",
    "Size": 12 * MiB,
    "Config": {"User": "10001", "Labels": {"org.opencontainers.image.base.name": "docker.io/library/alpine:3.20"}},
    "RootFS": {"Type": "layers", "Layers": [BASE, APP]},
}
# Newest first, as the engine answers: the classic builder's metadata steps have size 0 and made no layer.
HISTORY = [
    {"CreatedBy": '/bin/sh -c #(nop)  CMD ["node"]', "Size": 0},
    {"CreatedBy": "/bin/sh -c #(nop) COPY dir:abc in /app ", "Size": 2 * MiB},
    {"CreatedBy": "/bin/sh -c #(nop) WORKDIR /app", "Size": 0},
    {"CreatedBy": "/bin/sh -c #(nop) ADD file:def in / ", "Size": 10 * MiB},
]


def test_layers_sizes_user_labels_and_platform_from_inspect_and_history() -> None:
    facts = local_image_facts(ATTRS, HISTORY)
    (image,) = facts.platforms
    assert image.platform == Platform("linux", "arm64", "v8")
    assert [layer.digest for layer in image.layers] == [BASE, APP]
    assert image.diff_ids == (BASE, APP)  # what bases are compared by
    assert [layer.uncompressed_size for layer in image.layers] == [10 * MiB, 2 * MiB]
    assert image.layers[1].created_by == "/bin/sh -c #(nop) COPY dir:abc in /app "
    assert image.user == "10001"
    assert image.annotated_base is not None
    assert image.annotated_base.reference == "docker.io/library/alpine:3.20"
    assert not image.compressed_measured
    assert image.uncompressed_size == 12 * MiB


def test_an_empty_run_layer_of_size_0_still_counts_as_a_layer() -> None:
    attrs = {**ATTRS, "RootFS": {"Layers": [BASE, APP, "sha256:" + "3" * 64]}}
    history = [{"CreatedBy": "RUN /bin/sh -c true # buildkit", "Size": 0}, *HISTORY]
    (image,) = local_image_facts(attrs, history).platforms
    assert [layer.created_by for layer in image.layers][2] == "RUN /bin/sh -c true # buildkit"


def test_history_that_does_not_line_up_keeps_the_total_and_says_no_step() -> None:
    (image,) = local_image_facts(ATTRS, [{"CreatedBy": "squashed", "Size": 0}]).platforms
    assert len(image.layers) == 2
    assert image.uncompressed_size == 12 * MiB
    assert {layer.created_by for layer in image.layers} == {None}


def test_the_saved_config_gives_exact_steps_and_measured_sizes_give_the_compressed_size() -> None:
    config = json.dumps(
        {
            "history": [
                {"created_by": "ADD base.tar /"},
                {"created_by": "WORKDIR /app", "empty_layer": True},
                {"created_by": "COPY . /app"},
            ]
        }
    ).encode()
    facts = with_config(local_image_facts(ATTRS, []), config)
    assert [layer.created_by for layer in facts.platforms[0].layers] == ["ADD base.tar /", "COPY . /app"]
    measured = with_compressed_sizes(facts, {BASE: 4 * MiB, APP: MiB})
    (image,) = measured.platforms
    assert image.compressed_measured
    assert image.compressed_size == len(config) + 5 * MiB
    assert with_compressed_sizes(facts, {BASE: 1}) is facts  # one layer unmeasured: nothing is claimed
