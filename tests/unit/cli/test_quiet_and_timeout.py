"""``--quiet`` silences notes; ``--timeout`` stops the whole command with one line and exit 2, leaving nothing
running (a thread still reading, an event loop blocked: the process ends anyway)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.builds import NEW, growth_policy, run, two_builds
from slimguard.core.model.duration import format_duration, parse_duration

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("500ms", 0.5), ("1.5s", 1.5)]
)
def test_durations_are_written_as_people_and_kubernetes_write_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-1", "5x", "1h 30m", "nan", "inf", "1e3", "200h", "m"])
def test_what_is_no_duration_or_none_worth_waiting_for_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_a_duration_is_said_back_as_written() -> None:
    assert [format_duration(s) for s in (0.25, 2, 90, 5400, 3600)] == ["250ms", "2s", "1m30s", "1h30m", "1h"]


def test_quiet_keeps_notes_off_standard_error_and_the_report_on_standard_output(tmp_path: Path) -> None:
    archive = two_builds(tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(growth_policy("maxGrowthBytes: 1Mi"))
    argv = ["check", "--input", archive, NEW, "--measure-compressed", "-p", str(policy), "-f", "json"]
    code, out, err = run(*argv)
    assert (code, err.startswith("slimguard: note: maxGrowth/maxGrowthBytes")) == (0, True)
    quiet_code, quiet_out, quiet_err = run(*argv, "--quiet")
    assert (quiet_code, quiet_err) == (0, "")
    assert quiet_out == out


def test_a_timeout_that_is_no_duration_is_one_line_and_exit_2(tmp_path: Path) -> None:
    code, _, err = run("check", NEW, "-p", str(tmp_path / "p.yaml"), "--timeout", "5x")
    assert code == 2
    assert err == (
        "slimguard: error: --timeout '5x' is not a duration: e.g. 90s, 5m, 1h30m or 500ms (a bare number is seconds)"
    )


RUNNER = """
import asyncio, sys, time
from slimguard.cli.running import run_command

async def main(how):
    if how == "awaiting":
        await asyncio.sleep(60)
    elif how == "thread":
        await asyncio.to_thread(time.sleep, 60)  # a read in a thread: never waited for
    elif how == "blocked":
        time.sleep(60)  # the event loop itself blocked: the watchdog ends the process
    return "done"

print(run_command(main(sys.argv[1]), timeout=float(sys.argv[2])))
"""


@pytest.mark.parametrize(("how", "within"), [("awaiting", 10), ("thread", 10), ("blocked", 10)])
def test_the_timeout_ends_the_process_however_the_work_is_stuck(how: str, within: float) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, how, "0.3"],
        capture_output=True, text=True, timeout=30, check=False, env={"PYTHONPATH": str(REPO / "operator")},
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr == (
        "slimguard: error: --timeout 300ms passed before the command finished: stopped, nothing decided\n"
    )
    assert elapsed < within, "not the 60 s the work would take"


def test_work_within_the_timeout_finishes_as_without_one() -> None:
    script = RUNNER.replace("await asyncio.sleep(60)", "await asyncio.sleep(0.01)")
    result = subprocess.run(
        [sys.executable, "-c", script, "awaiting", "5"],
        capture_output=True, text=True, timeout=30, check=False, env={"PYTHONPATH": str(REPO / "operator")},
    )  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (0, "done\n", "")
