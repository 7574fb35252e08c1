"""Which failures mean the process is out of memory or threads, and the one line it then prints."""

from __future__ import annotations

import resource

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
