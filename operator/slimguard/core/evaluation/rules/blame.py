"""Layer blame: which layers made an image what it is, named by the instruction that made each.

``created_by`` comes from the image config's history, aligned to the layers by ``core.facts.oci`` (entries marked
``empty_layer`` made no layer). Messages stay bounded: the three largest layers, commands cut to a line.
"""

from __future__ import annotations

import re

from slimguard.core.facts.image_facts import PlatformImage
from slimguard.core.model.quantity import format_bytes

BLAMED_LAYERS = 3
COMMAND_LIMIT = 80
_SHELL_NOP = re.compile(r"^/bin/sh -c #\(nop\)\s*")
_SHELL_RUN = re.compile(r"^(?:RUN\s+)?(?:\|\d+(?:\s+\S+=\S*)*\s+)?/bin/(?:ba)?sh -c\s+")
_BUILDKIT_SUFFIX = re.compile(r"\s*# buildkit$")


def short_command(created_by: str | None, limit: int = COMMAND_LIMIT) -> str:
    """The Dockerfile instruction as a developer wrote it, on one line of at most ``limit`` characters.

    Classic builders write ``/bin/sh -c #(nop) COPY ...`` and ``/bin/sh -c apt-get ...``; BuildKit writes
    ``RUN /bin/sh -c apt-get ... # buildkit`` (with ``|N ARG=value`` after RUN when build args are set).
    """
    if not created_by or not created_by.strip():
        return "(no build history)"
    command = _BUILDKIT_SUFFIX.sub("", created_by.strip())
    if _SHELL_NOP.match(command):
        command = _SHELL_NOP.sub("", command)
    elif _SHELL_RUN.match(command):
        command = "RUN " + _SHELL_RUN.sub("", command)
    command = " ".join(command.split())
    return command if len(command) <= limit else command[: limit - 1].rstrip() + "…"


def layer_name(image: PlatformImage, index: int) -> str:
    """``layer 4/7``: 1-based, as a developer counts the steps of a build."""
    return f"layer {index + 1}/{len(image.layers)}"


def layer_step(image: PlatformImage, index: int) -> str:
    """``layer 4/7 (RUN apt-get install -y gcc)``."""
    command = image.layers[index].created_by if 0 <= index < len(image.layers) else None
    return f"{layer_name(image, index)} ({short_command(command)})"


def largest_layers(image: PlatformImage, *, uncompressed: bool = False, count: int = BLAMED_LAYERS) -> str:
    """``Largest layers: layer 4/7 adds 212 MiB: RUN apt-get install ...; layer 1/7 adds ...``, or "" if none."""
    sized = [
        (layer.uncompressed_size if uncompressed and layer.uncompressed_size is not None else layer.size, index)
        for index, layer in enumerate(image.layers)
    ]
    top = sorted(sized, key=lambda pair: (-pair[0], pair[1]))[:count]
    if not top:
        return ""
    parts = [
        f"{layer_name(image, index)} adds {format_bytes(size)}: {short_command(image.layers[index].created_by)}"
        for size, index in top
    ]
    label = "Largest layer" if len(parts) == 1 else "Largest layers"
    return f"{label}: {'; '.join(parts)}."
