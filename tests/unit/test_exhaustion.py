"""Which failures mean the process is out of memory or threads, and the one line it then prints."""

from __future__ import annotations

import logging
import resource

import pytest

from slimguard import exhaustion


def test_memory_and_thread_exhaustion_are_told_apart_from_ordinary_errors() -> None:
    assert exhaustion.is_exhaustion(MemoryError())
    assert exhaustion.is_exhaustion(RuntimeError("can't start new thread"))
    assert not exhaustion.is_exhaustion(RuntimeError("something else"))
    assert not exhaustion.is_exhaustion(ValueError("can't start new thread"))


def test_the_message_names_the_component_the_limit_and_the_cause() -> None:
    text = exhaustion.message("controller", RuntimeError("can't start new thread"))
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    cap = "no address-space limit" if limit == resource.RLIM_INFINITY else f"address-space limit {limit >> 20} MiB"
    assert text == (
        f"slimguard controller: out of memory ({cap}): can't start new thread; "
        "give it more memory (resources.limits.memory)"
    )
    assert exhaustion.message("webhook", MemoryError()).startswith("slimguard webhook: out of memory (")


def _watcher_failed() -> None:
    try:
        raise MemoryError()
    except MemoryError as inner:
        raise RuntimeError("watcher failed") from inner


def test_exhaustion_is_found_along_an_exception_chain() -> None:
    with pytest.raises(RuntimeError) as failed:
        _watcher_failed()
    assert isinstance(exhaustion.exhaustion_in(failed.value), MemoryError)
    assert exhaustion.exhaustion_in(ValueError("no")) is None
    assert exhaustion.exhaustion_in(None) is None


def test_an_exhaustion_logged_by_any_library_ends_the_process_with_the_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kopf logs a watcher that died of MemoryError and shuts down in order: that must still exit 3."""
    exits: list[tuple[str, BaseException]] = []
    monkeypatch.setattr(exhaustion, "exit_exhausted", lambda component, error: exits.append((component, error)))
    with exhaustion.exit_when_exhausted("controller"):
        try:
            raise MemoryError()
        except MemoryError:
            logging.getLogger("kopf._core.reactor.queueing").exception("Watcher for deployments has failed")
        logging.getLogger("kopf").error("an ordinary error")
    assert [(component, type(error)) for component, error in exits] == [("controller", MemoryError)]
