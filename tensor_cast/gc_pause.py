"""The cyclic garbage collector paused for a block of work: `paused_gc()`.

Building, capturing and importing torch / transformers allocate millions of objects that live
as long as the process (modules, dynamo state) or die by reference count; every automatic
collection walks all of them. Pausing the collector for such a block and restoring its previous
state afterwards saves that walk; cyclic garbage made in the block is collected once the
collector is back on. Plain Python, no torch: the CLI uses it before importing anything heavy.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic garbage collector off for the block, back to its previous state after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
