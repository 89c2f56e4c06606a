"""Serving simulation: TTFT, TPOT and throughput of a deployment under a request stream.

One symbolic trace per (model, deployment) gives the step cost of any batch (`batch_cost.py`);
an engine's scheduler (`engines.py`, `scheduler.py`) decides each step's batch; a discrete-event
loop (`simulator.py`) runs requests from a workload (`workload.py`) through one pool of workers
or disaggregated prefill/decode pools (`disagg.py`); `report.py` turns the timelines into
metrics. Entry points: `simulate(...)` (`api.py`) and `tensor-cast serve` (`cli.py`).
"""

from .api import simulate, step_cost
from .batch_cost import BatchCost
from .engines import ENGINES, EngineProfile, engine_names, engine_profile
from .report import RequestRecord, ServingReport, Stats

__all__ = ["ENGINES", "BatchCost", "EngineProfile", "RequestRecord", "ServingReport", "Stats", "engine_names",
           "engine_profile", "simulate", "step_cost"]
