"""Serving simulation: TTFT, TPOT and throughput of a deployment under a request stream.

One symbolic trace per (model, deployment) gives the step cost of any batch (`batch_cost.py`);
an engine's scheduler (`engines.py`, `scheduler.py`) decides each step's batch; a discrete-event
loop (`simulator.py`) runs requests from a workload (`workload.py`) through one pool of workers
or disaggregated prefill/decode pools (`disagg.py`); `report.py` turns the timelines into
metrics. Entry points: `simulate(...)` (`api.py`) and `tensor-cast serve`
(`tensor_cast/commands/serve.py`).

Names are imported on first use (as in `tensor_cast/__init__.py`), so the CLI can read the
engine table (`serving.engines`, no torch) without importing torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import simulate, step_cost
    from .batch_cost import BatchCost
    from .engines import ENGINES, EngineProfile, engine_names, engine_profile
    from .report import RequestRecord, ServingReport, Stats

_LAZY: dict[str, str] = {
    "simulate": ".api", "step_cost": ".api", "BatchCost": ".batch_cost",
    "ENGINES": ".engines", "EngineProfile": ".engines", "engine_names": ".engines", "engine_profile": ".engines",
    "RequestRecord": ".report", "ServingReport": ".report", "Stats": ".report",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tensor_cast.serving' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["ENGINES", "BatchCost", "EngineProfile", "RequestRecord", "ServingReport", "Stats", "engine_names",
           "engine_profile", "simulate", "step_cost"]
