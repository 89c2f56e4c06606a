"""Serving simulation: TTFT, TPOT and throughput of a deployment under a request stream.

One symbolic trace per (model, deployment) gives the step cost of any batch (`batch_cost.py`);
an engine's scheduler (`engines.py`, `scheduler.py`) decides each step's batch; a discrete-event
loop (`simulator.py`) runs requests from a workload (`workload.py`) through one pool of workers
or disaggregated prefill/decode pools (`disagg.py`), with pipeline stages when pp > 1
(`pipeline.py`); `report.py` turns the timelines into
metrics. Entry points: `simulate(...)` (`api.py`), `simulate_sweep(...)` (`sweep.py`: one deployment at
several loads) and `tensor-cast serve`
(`tensor_cast/commands/serve.py`).

Names are imported on first use (as in `tensor_cast/__init__.py`), so the CLI can read the
engine table (`serving.engines`, no torch) without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

if TYPE_CHECKING:
    from .api import simulate, step_cost, step_costs
    from .batch_cost import BatchCost
    from .engines import ENGINES, EngineProfile, engine_names, engine_profile
    from .report import RequestRecord, ServingReport, Stats
    from .sweep import ServingSweep, simulate_sweep

_LAZY: dict[str, str] = {
    "simulate": ".api", "step_cost": ".api", "step_costs": ".api", "BatchCost": ".batch_cost",
    "ENGINES": ".engines", "EngineProfile": ".engines", "engine_names": ".engines", "engine_profile": ".engines",
    "RequestRecord": ".report", "ServingReport": ".report", "Stats": ".report",
    "ServingSweep": ".sweep", "simulate_sweep": ".sweep",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = ["ENGINES", "BatchCost", "EngineProfile", "RequestRecord", "ServingReport", "ServingSweep", "Stats",
           "engine_names", "engine_profile", "simulate", "simulate_sweep", "step_cost", "step_costs"]
