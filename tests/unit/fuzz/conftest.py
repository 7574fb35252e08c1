"""Hypothesis profiles: ``ci`` (the default) keeps the unit tier fast, ``nightly`` searches far longer.

Choose with ``HYPOTHESIS_PROFILE=nightly pytest tests/unit/fuzz``. No profile has a per-example deadline:
a slow example on a busy CI machine is not a bug, and tests here assert outcomes, never durations.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile(
    "nightly", max_examples=20_000, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
