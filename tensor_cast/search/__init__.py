"""Deployment search: the best serving configurations of a model under latency SLOs.

`search(...)` (Pareto frontier, best per device, cost) and `recommend(...)` (fewest GPUs for a
request rate) enumerate the space (`space.py`), prune by memory, simulate with the serving
simulator (`tensor_cast.simulate`), and answer (`select.py`, `results.py`) with engine launch
commands (`launch.py`, flags from `engine_flags.py`). Fan-out: `fanout.py`.
"""

from .results import SearchResult
from .run import recommend, search

__all__ = ["SearchResult", "recommend", "search"]
