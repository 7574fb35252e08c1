"""Start/stop as a context manager, shared by the test bed's servers."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Service:
    """A server the test bed runs: ``_start`` brings it up; ``stop`` is idempotent and also cleans a failed start."""

    _keep_workdir: bool = False

    def _start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        try:
            self._start()
        except BaseException:
            self._keep_workdir = True  # the error names log files in it
            self.stop()
            raise
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
