"""Slow fixtures are built once per machine, cached as OCI layouts keyed by a hash of their recipe."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimguard_testbed import oci
from slimguard_testbed.cache import cache_dir, file_lock
from slimguard_testbed.images.common import RECIPE_VERSION
from slimguard_testbed.oci import Artifact

if TYPE_CHECKING:
    pass


# -- the cache -----------------------------------------------------------------------------------------


def images_cache() -> Path:
    return cache_dir("images")


def _recipe_hash(recipe: Mapping[str, Any]) -> str:
    text = json.dumps({"recipe_version": RECIPE_VERSION, **recipe}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached(name: str, recipe: Mapping[str, Any], build: Callable[[Path], Artifact]) -> Artifact:
    """The artifact for `recipe` from the cache, or `build(workdir)` it and cache it.

    A lock per name lets concurrent sessions wait for one build instead of racing; the layout is written
    to a temporary directory and renamed, so a half-written entry is never seen.
    """
    root = images_cache()
    entry = root / f"{name}-{_recipe_hash(recipe)}"
    if (entry / "index.json").exists():
        return oci.load_layout(entry)
    with file_lock(root / f".{name}.lock"):
        if (entry / "index.json").exists():
            return oci.load_layout(entry)
        work = Path(tempfile.mkdtemp(prefix=f".build-{name}-", dir=root))
        try:
            artifact = build(work)
            staging = work / "layout"
            oci.save_layout(staging, artifact, ref_name=name)
            (staging / "recipe.json").write_text(json.dumps(recipe, indent=1, sort_keys=True))
            staging.rename(entry)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        # Older recipes of this image only take space (hard links keep shared blobs alive elsewhere).
        for stale in root.glob(f"{name}-*"):
            if stale != entry and stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        return oci.load_layout(entry)


def _file_key(path: Path) -> dict[str, Any]:
    """Identifies a big input file cheaply (hashing the 99 MB node binary on every run costs time)."""
    st = path.stat()
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _tree_hash(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(directory)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _pseudo_random(seed: str, size: int) -> bytes:
    """Incompressible but reproducible bytes: layer sizes survive gzip, digests stay stable."""
    return hashlib.shake_256(seed.encode()).digest(size)
