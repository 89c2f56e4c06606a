"""Deployment search: the best serving configurations of a model under latency SLOs.

`search(...)` (Pareto frontier, best per device, cost) and `recommend(...)` (fewest GPUs for a
request rate) enumerate the space (`space.py`), prune by memory, simulate with the serving
simulator (`tensor_cast.simulate`), and answer (`select.py`, `results.py`) with engine launch
commands (`launch.py`, flags from `engine_flags.py`). Fan-out: `fanout.py`.
"""

from ..lazy import lazy_exports

# Imported on first use (PEP 562): the CLI's parser imports tensor_cast.search.cli without torch.
_LAZY = {"SearchResult": ".results", "recommend": ".run", "search": ".run"}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = ["SearchResult", "recommend", "search"]
