"""No cascades: once a shared part has died, the next test that uses it fails at once and names it.

An inner pytest session (pytester) is given the suite's own autouse check (shared_parts.py) and a session
`operator` that is a real InProcessOperator whose controller starts and then dies, as the one of issue 21 did
("Cannot send a request, as the client has been closed."). The test after the death must fail within seconds
with that error, not wait out its timeout; a test that does not use the controller is not touched.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from shared_parts import SHARED_PARTS, dead_part_message

from slimguard.controller.settings import ControllerSettings
from slimguard_testbed.operator_runner import InProcessOperator

pytest_plugins = ["pytester"]

E2E_DIR = Path(__file__).resolve().parent
ERROR = "Cannot send a request, as the client has been closed."

INNER_CONFTEST = f'''
import threading

import pytest

from shared_parts import fail_fast_when_a_shared_part_died  # noqa: F401
from slimguard.controller.settings import ControllerSettings
from slimguard_testbed.operator_runner import InProcessOperator


class ControllerThatDies(InProcessOperator):
    """Ready, then its controller thread ends with the error kopf re-raised in issue 21."""

    def _run(self) -> None:
        self._ready.set()
        self.died.wait()
        self.error = RuntimeError({ERROR!r})


@pytest.fixture(scope="session")
def operator():
    controller = ControllerThatDies(ControllerSettings())
    controller.died = threading.Event()
    controller.start(timeout=5)
    yield controller
'''

INNER_TESTS = """
import time


def test_the_controller_dies_during_this_test(operator):
    operator.died.set()
    operator._thread.join(timeout=5)


def test_the_next_test_using_the_controller_fails_at_once(operator):
    time.sleep(120)  # what a test waiting for a dead controller does: it would wait out its whole timeout


def test_a_test_that_does_not_use_the_controller_runs():
    assert True
"""


def test_a_dead_session_controller_fails_the_next_test_at_once_naming_it(pytester: pytest.Pytester) -> None:
    pytester.syspathinsert(E2E_DIR)
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_inner=INNER_TESTS)

    started = time.monotonic()
    result = pytester.runpytest("-p", "no:cacheprovider", "--timeout=100")
    elapsed = time.monotonic() - started

    result.assert_outcomes(passed=2, errors=1)  # failed in its setup, before its body ran
    result.stdout.fnmatch_lines(
        [
            "*test_the_next_test_using_the_controller_fails_at_once*",
            f"*the session's in-process controller is not running: it stopped with RuntimeError({ERROR!r})*",
        ]
    )
    assert "time.sleep(120)" not in result.stdout.str()  # failed before the test's body ran
    assert elapsed < 30, f"the inner session took {elapsed:.0f}s: the dead controller was waited for"


def test_a_controller_that_was_never_started_or_is_running_is_not_reported() -> None:
    controller = InProcessOperator(ControllerSettings())
    assert controller.failure() is None
    assert dead_part_message({"operator": controller}) is None


def test_every_shared_part_names_itself_in_the_message() -> None:
    class Dead:
        def failure(self) -> str:
            return "etcd exited with code 1"

    for name, description in SHARED_PARTS.items():
        assert dead_part_message({name: Dead()}) == f"{description} is not running: etcd exited with code 1"
