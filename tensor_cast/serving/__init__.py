"""Serving simulation: TTFT, TPOT and throughput of a deployment under a request stream.

One symbolic trace per (model, deployment) gives the step cost of any batch (`batch_cost.py`);
an engine's scheduler (`engines.py`, `scheduler.py`) decides each step's batch; a discrete-event
loop (`simulator.py`) runs requests from a workload (`workload.py`) through one pool of workers
or disaggregated prefill/decode pools (`disagg.py`); `report.py` turns the timelines into
metrics. Entry points: `simulate(...)` (`api.py`) and `tensor-cast serve` (`cli.py`).
"""

from importlib import import_module
from typing import Any

from .engines import ENGINES, EngineProfile, engine_names, engine_profile

# Imported on first use (PEP 562), so the CLI's parser (tensor_cast/commands/serve.py) does not
# import torch: public name -> its module.
_LAZY = {"simulate": ".api", "step_cost": ".api", "BatchCost": ".batch_cost", "RequestRecord": ".report",
         "ServingReport": ".report", "Stats": ".report"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tensor_cast.serving' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = ["ENGINES", "BatchCost", "EngineProfile", "RequestRecord", "ServingReport", "Stats", "engine_names",
           "engine_profile", "simulate", "step_cost"]
