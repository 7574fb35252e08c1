"""slimguard as `pip install` gives it: the sdist and the wheel `python -m build` makes, installed in fresh venvs.

- The distributions are built from the repository as a release builds them (the sdist, then the wheel from
  the sdist), with the setuptools of the test venv (``--no-isolation``: no download at each session).
- A venv gets the wheel as ``pip install slimguard`` (the CLI alone) or ``pip install 'slimguard[operator]'``
  would install it, and nothing else: no pip of its own, no system site-packages, so its site-packages is
  exactly what the install added. Its dependencies come from a wheelhouse downloaded from PyPI once per set of
  requirements (``~/.cache/slimguard/package``), so a warm install is offline and takes seconds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from pathlib import Path

from packaging.requirements import Requirement

from slimguard_testbed.cache import cache_dir, file_lock
from slimguard_testbed.process import TestbedError

PROJECT = "slimguard"


@dataclass(frozen=True)
class Distributions:
    sdist: Path
    wheel: Path


def build_distributions(repo_root: Path, outdir: Path) -> Distributions:
    """``python -m build``: the sdist, then the wheel built from that sdist (so the sdist is proven complete)."""
    result = _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(outdir), str(repo_root)])
    if result.returncode != 0:
        raise TestbedError(f"python -m build failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    (sdist,) = outdir.glob(f"{PROJECT}-*.tar.gz")
    (wheel,) = outdir.glob(f"{PROJECT}-*.whl")
    return Distributions(sdist=sdist, wheel=wheel)


def wheel_metadata(wheel: Path) -> Message:
    """The wheel's METADATA: what PyPI shows and what pip resolves from."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return HeaderParser().parsestr(archive.read(name).decode())


def requirements_of(wheel: Path, extras: Sequence[str] = ()) -> list[str]:
    """The wheel's Requires-Dist that apply with ``extras``, markers resolved, the project itself left out."""
    wanted = []
    for line in wheel_metadata(wheel).get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        if requirement.name == PROJECT:
            continue
        applies = requirement.marker is None or any(
            requirement.marker.evaluate({"extra": extra}) for extra in ("", *extras)
        )
        if applies:
            requirement.marker = None
            wanted.append(str(requirement))
    return sorted(wanted)


def wheelhouse(requirements: Sequence[str]) -> Path:
    """Every wheel ``requirements`` resolve to on this interpreter, downloaded from PyPI once."""
    key = hashlib.sha256("\n".join(sorted(requirements)).encode()).hexdigest()[:16]
    root = cache_dir("package") / f"wheels-{key}"
    with file_lock(cache_dir("package") / ".wheels.lock"):
        if root.is_dir():
            return root
        staging = root.with_name(root.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        command = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--dest", str(staging)]
        result = _run([*command, *requirements])
        if result.returncode != 0:
            raise TestbedError(f"pip download of {PROJECT}'s dependencies failed:\n{result.stderr[-3000:]}")
        staging.rename(root)
    return root


@dataclass(frozen=True)
class InstalledPackage:
    """A fresh venv holding the wheel (with ``extras``) and its dependencies, nothing else."""

    root: Path
    extras: tuple[str, ...]

    @property
    def site_packages(self) -> Path:
        (path,) = (self.root / "lib").glob("python3*/site-packages")
        return path

    def installed_bytes(self) -> int:
        """The size of everything the install added (``du --apparent-size`` of site-packages)."""
        return sum(path.lstat().st_size for path in self.site_packages.rglob("*") if not path.is_dir())

    def distributions(self) -> list[str]:
        return sorted(path.name.split("-")[0].lower() for path in self.site_packages.glob("*.dist-info"))

    def can_import(self, module: str) -> bool:
        probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
        return self.python("-c", probe).returncode == 0

    def slimguard(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """The installed ``slimguard`` command, as a CI job runs it (output piped)."""
        return _run([str(self.root / "bin" / "slimguard"), *args], env=self._env(env), timeout=timeout)

    def python(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """The venv's own Python."""
        return _run([str(self.root / "bin" / "python"), *args], env=self._env(None), timeout=timeout)

    def _env(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        # Nothing may lead the venv's Python to the repository's sources: it must run what the wheel installed.
        inherited = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        return {**inherited, "PYTHONNOUSERSITE": "1", **(extra or {})}


def install_wheel(wheel: Path, root: Path, *, extras: Sequence[str] = ()) -> InstalledPackage:
    """``pip install slimguard[extras]`` from the wheel into a new venv at ``root``, offline from the wheelhouse."""
    houses = wheelhouse(requirements_of(wheel, extras))
    created = _run([sys.executable, "-m", "venv", "--without-pip", str(root)])
    if created.returncode != 0:
        raise TestbedError(f"python -m venv {root} failed:\n{created.stderr[-2000:]}")
    target = f"{wheel}[{','.join(extras)}]" if extras else str(wheel)
    command = [sys.executable, "-m", "pip", "--python", str(root / "bin" / "python"), "install", "--no-index"]
    # Without PYTHONPATH: pointed at the checkout's operator/ (and its slimguard.egg-info), pip would find
    # slimguard 0.1.0 "already satisfied" there and install only the dependencies.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    result = _run([*command, "--no-cache-dir", "--find-links", str(houses), target], env=env)
    if result.returncode != 0:
        raise TestbedError(f"pip install {target} failed:\n{result.stderr[-3000:]}")
    return InstalledPackage(root=root, extras=tuple(extras))


def _run(
    command: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, env=dict(env) if env else None, timeout=timeout, check=False
    )
