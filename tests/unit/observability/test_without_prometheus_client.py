"""Without prometheus-client (`pip install slimguard`, the CLI alone) the same code counts, and nothing is kept.

Each check runs in a fresh interpreter where importing prometheus_client fails, as in an install without the
operator extra; this process's metrics, which other tests read, are left alone.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

WITHOUT_PROMETHEUS = "import sys\nsys.modules['prometheus_client'] = None  # any import of it now fails\n"


def run_without_prometheus(code: str) -> subprocess.CompletedProcess[str]:
    script = WITHOUT_PROMETHEUS + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False)


def test_the_blocked_import_really_fails() -> None:
    result = run_without_prometheus("import prometheus_client")
    assert "ModuleNotFoundError" in result.stderr


def test_every_way_the_work_is_counted_is_accepted_and_kept_nowhere() -> None:
    result = run_without_prometheus(
        """
        from datetime import UTC, datetime

        from slimguard import metrics, noop_metrics

        metrics.registry_response("registry.example.com", 200)
        metrics.registry_response("registry.example.com", None, refused=True)
        metrics.cache_lookup("facts", hit=True)
        metrics.admission_started(3.0)
        metrics.INSPECTION_FAILURES.labels(reason="ImageNotFound").inc()
        with metrics.INSPECTION_SECONDS.time(), metrics.EVALUATION_SECONDS.time():
            pass
        metrics.ADMISSION_SECONDS.observe(0.01)
        metrics.WEBHOOK_CERTIFICATE_EXPIRY.set(0)
        metrics.BUILD_INFO.labels(component="controller", version=metrics.VERSION).set(1)
        snapshot = metrics.FleetSnapshot(verdicts=(), policies=(), now=datetime.now(UTC))
        metrics.register_fleet(lambda: snapshot)
        assert metrics.fleet_metrics(snapshot)
        assert isinstance(metrics.REGISTRY_REQUESTS, noop_metrics.NoopMetric)
        print("counted")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "counted\n"


def test_the_ci_commands_modules_import_none_of_the_operator_extra() -> None:
    # kopf, kubernetes, aiohttp and cryptography are installed here: this sees whether anything imports them.
    result = run_without_prometheus(
        """
        import slimguard.cli.check, slimguard.cli.main, slimguard.cli.render, slimguard.cli.sarif
        from slimguard.cli.main import OPERATOR_EXTRA_MODULES

        print(sorted(name for name, module in sys.modules.items()
                     if module is not None and name.partition(".")[0] in OPERATOR_EXTRA_MODULES))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"
