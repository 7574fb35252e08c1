"""How a CI command runs (``check``, ``diff``, ``inspect``): within ``--timeout``, notes on standard error unless
``--quiet``, and a progress line on standard error for long work only when it is a terminal.

The timeout covers the whole command. When it passes, the command's tasks are cancelled (open connections and
credential-provider runs are closed by the code they interrupt), one line says so, and the process exits 2 at once:
a read still running in a thread (the Docker engine's ``image.save()`` stream, an archive being gzipped to
measure it) is abandoned with the process, never waited for. A watchdog thread does the same if the event loop is
itself blocked past the deadline, so nothing outlives ``--timeout`` by more than ``GRACE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer

from slimguard.core.evaluation.outcome import EXIT_ERROR
from slimguard.core.model.duration import format_duration

T = TypeVar("T")
GRACE_SECONDS = 2.0
"""How long the cancelled command gets to close its connections before the watchdog ends the process."""


class Voice:
    """What a command says on standard error besides its errors: notes, and progress on a terminal."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        if quiet:  # the libraries' own warnings too (a registry retried, an engine's deprecation)
            logging.disable(logging.WARNING)

    def note(self, text: str) -> None:
        if not self.quiet:
            typer.echo(f"slimguard: note: {text}", err=True)

    @contextmanager
    def progress(self, what: str, *, long: bool) -> Iterator[None]:
        """A transient spinner saying ``what`` with the time elapsed, on a terminal only and only for ``long``
        work (layers streamed or compressed): piped or in CI, standard error carries notes and errors alone."""
        if self.quiet or not long or not sys.stderr.isatty():
            yield
            return
        from rich.console import Console

        with Console(stderr=True).status(f"{what}…", spinner="dots"):
            yield


def _end_now(message: str) -> None:
    typer.echo(f"slimguard: error: {message}", err=True)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(EXIT_ERROR)  # threads still reading are abandoned with the process, not waited for


class _Expired(Exception):
    """The command's own deadline passed (not a TimeoutError from inside it)."""


def run_command(main: Coroutine[Any, Any, T], *, timeout: float | None) -> T:
    """``main`` run to completion, or stopped after ``timeout`` seconds: exit 2 with one line saying so."""
    if timeout is None:
        return asyncio.run(main)
    said = f"--timeout {format_duration(timeout)} passed before the command finished: stopped, nothing decided"
    finished = threading.Event()

    def watchdog() -> None:
        if not finished.wait(timeout + GRACE_SECONDS):
            _end_now(said)

    async def limited() -> T:
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                return await main
        except TimeoutError:
            if scope.expired():
                raise _Expired from None
            raise

    threading.Thread(target=watchdog, name="slimguard-timeout", daemon=True).start()
    runner = asyncio.Runner()
    try:
        return runner.run(limited())
    except _Expired:
        _end_now(said)  # before the runner's close, which would wait for threads still reading
        raise
    finally:
        runner.close()  # as asyncio.run: the rest cancelled, the executor's threads joined (the watchdog still on)
        finished.set()
