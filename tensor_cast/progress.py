"""Progress of long analyses, as log records of the `tensor_cast.progress` logger.

The analysis stages (`analysis.py`) log one INFO line as each starts ("tracing ...", "costing
..."); nothing is shown unless a caller asks. `stderr_progress()` shows them on stderr while a
command runs, only when stderr is a terminal (quiet in pipes, logs and tests): the CLI and the
long benchmark scripts use it. Standard logging, so an application can route the records itself.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator

logger = logging.getLogger("tensor_cast.progress")


def step(message: str) -> None:
    """Announce a stage of the analysis that may take seconds."""
    logger.info(message)


class _Elapsed(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self.start = time.monotonic()

    def format(self, record: logging.LogRecord) -> str:
        return f"tensor-cast: [{time.monotonic() - self.start:5.1f} s] {record.getMessage()}"


@contextlib.contextmanager
def stderr_progress(force: bool = False) -> Iterator[None]:
    """Show progress lines on stderr inside the block when stderr is a terminal (or `force`)."""
    if not (force or sys.stderr.isatty()):
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Elapsed())
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
