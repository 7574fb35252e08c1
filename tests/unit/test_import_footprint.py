"""What the long-running components load: every module is memory held for the life of the process."""

from __future__ import annotations

import subprocess
import sys

ENTRY_POINTS = ("slimguard.cli.main", "slimguard.controller.handlers", "slimguard.admission.handlers")
TERMINAL_RENDERING = ("rich", "pygments", "click")


def test_the_controller_and_the_webhook_load_no_terminal_rendering_library() -> None:
    # A fresh interpreter: this test process has imported whatever other tests needed.
    probe = (
        f"import {', '.join(ENTRY_POINTS)}, sys; print(' '.join(m for m in {TERMINAL_RENDERING!r} if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.split() == [], "httpx's command line (slimguard.__init__ says why) or an import of our own"
