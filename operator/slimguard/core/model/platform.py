"""An image platform (``linux/arm64/v8``): what a policy requires and what an image is built for."""

from __future__ import annotations

from dataclasses import dataclass

_DEFAULT_VARIANTS = {"arm64": "v8", "arm": "v7", "amd64": "v1"}
_NODE_VARIANTS = {"arm64": "v8"}
"""What a node's architecture means as an image platform. A Node reports no variant (``kubernetes.io/arch`` is
Go's GOARCH); containerd runs arm64 as ``v8``. A 32-bit arm node's variant depends on its CPU, which the Node does
not say, so its platform names none and any arm variant is judged."""


@dataclass(frozen=True, slots=True, order=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"platform {text!r} is not of the form os/architecture[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def satisfies(self, required: Platform) -> bool:
        """``linux/arm64/v8`` satisfies ``linux/arm64``; a required variant must match.

        A missing variant means the architecture's default, as containerd normalises it: ``linux/arm64`` is
        ``linux/arm64/v8``, ``linux/arm`` is ``linux/arm/v7`` and ``linux/amd64`` is ``linux/amd64/v1``.
        """
        if (self.os, self.architecture) != (required.os, required.architecture):
            return False
        return required.variant is None or self._variant == required._variant

    @property
    def _variant(self) -> str | None:
        return self.variant or _DEFAULT_VARIANTS.get(self.architecture)

    @classmethod
    def of_node(cls, operating_system: str, architecture: str) -> Platform | None:
        """The platform a node runs, from its ``status.nodeInfo`` (or its ``kubernetes.io/os`` and ``/arch``
        labels); None when either is missing or not a platform word."""
        os, arch = operating_system.strip().lower(), architecture.strip().lower()
        if not os or not arch or "/" in os or "/" in arch:
            return None
        return cls(os, arch, _NODE_VARIANTS.get(arch))

    def __str__(self) -> str:
        return "/".join(part for part in (self.os, self.architecture, self.variant) if part)


DEFAULT_PLATFORMS = (Platform("linux", "amd64"),)
"""What a policy without ``platforms`` judges when nothing tells which platforms the workloads run on: no Ready
node is known (outside a cluster, or before the node watch has told any) and the pod spec pins none."""
