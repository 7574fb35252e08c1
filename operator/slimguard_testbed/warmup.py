"""The collection-time warm-up: whatever is slow only the first time on a machine, done before any test's clock
starts, one progress line per part, so a cold machine is visibly busy rather than silently timing tests out.

A part that cannot be prepared is reported here in one line and then by the fixture that needs it, as a test
failure with the whole error; collection itself never fails.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

from slimguard_testbed.cache import REPO_ROOT
from slimguard_testbed.process import TestbedError

T = TypeVar("T")


class Warmup:
    """Runs preparation steps in order, writing "warming: ..." lines (and how long each took) with `write`."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write
        self.failed: list[str] = []

    def step(self, what: str, cold_estimate: str, prepare: Callable[[], T]) -> T | None:
        """`prepare()` with a progress line before and after; None (and a line saying why) if it raised."""
        self.write(f"warming: {what} (up to {cold_estimate} on a cold machine)...")
        started = time.monotonic()
        try:
            result = prepare()
        except Exception as error:  # the fixture that needs this part reports it in full
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            self.write(f"warming: {what} FAILED after {time.monotonic() - started:.1f}s: {first_line}")
            self.failed.append(what)
            return None
        self.write(f"warming: {what} ready in {time.monotonic() - started:.1f}s")
        return result


def run_build_script(script: str, *args: str) -> str:
    """Run one of scripts/build-*.sh (each returns at once when its output is cached); its printed path."""
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / script), *args], capture_output=True, text=True, check=False, cwd=REPO_ROOT
    )
    if result.returncode != 0:
        tail = "\n".join(result.stderr.splitlines()[-30:])
        raise TestbedError(f"scripts/{script} failed ({result.returncode}):\n{tail}")
    return result.stdout.strip().splitlines()[-1]
