"""Deployment search: the best serving configurations of a model under latency SLOs.

`search(...)` (Pareto frontier, best per device, cost) and `recommend(...)` (fewest GPUs for a
request rate) enumerate the space (`space.py`), prune by memory, simulate with the serving
simulator (`tensor_cast.simulate`), and answer (`select.py`, `results.py`) with engine launch
commands (`launch.py`, flags from `engine_flags.py`). Fan-out: `fanout.py`.
"""

from importlib import import_module
from typing import Any

# Imported on first use (PEP 562): the CLI's parser imports tensor_cast.search.cli without torch.
_LAZY = {"SearchResult": ".results", "recommend": ".run", "search": ".run"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tensor_cast.search' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = ["SearchResult", "recommend", "search"]
