"""tensor_cast: predict what an LLM costs to run — time, memory, bytes moved, FLOPs — per op,
on a given accelerator and deployment, from its HF config, without weights or the accelerator.

    import tensor_cast
    report = tensor_cast.analyze("meta-llama/Llama-3.1-8B", device="h100-sxm", batch_size=1, query_len=2048)
    print(report.summary()); print(report.table())

The public names are imported on first use (PEP 562 `__getattr__`), so `import tensor_cast`
and the command line's `--help`, `models`, `devices` and argument errors do not pay for torch
and transformers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import TensorCastError
from .lazy import lazy_exports

if TYPE_CHECKING:  # the same names, for type checkers
    from .api import OpCost, analyze, clear_cache, list_devices, list_models, load_model, op_cost
    from .backends.device import DeviceProfile, load_device
    from .models.spec import AttentionSpec, LayerSpec, MLPSpec, ModelSpec
    from .report import Memory, OpRow, Report
    from .search import SearchResult, recommend, search
    from .serving import ServingReport, ServingSweep, simulate, simulate_sweep

# public name -> the module that defines it
_LAZY: dict[str, str] = {
    "OpCost": ".api", "analyze": ".api", "clear_cache": ".api", "list_devices": ".api", "list_models": ".api",
    "load_model": ".api", "op_cost": ".api",
    "DeviceProfile": ".backends.device", "load_device": ".backends.device",
    "AttentionSpec": ".models.spec", "LayerSpec": ".models.spec", "MLPSpec": ".models.spec",
    "ModelSpec": ".models.spec",
    "Memory": ".report", "OpRow": ".report", "Report": ".report",
    "SearchResult": ".search", "recommend": ".search", "search": ".search",
    "ServingReport": ".serving", "ServingSweep": ".serving", "simulate": ".serving", "simulate_sweep": ".serving",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "AttentionSpec",
    "DeviceProfile",
    "LayerSpec",
    "MLPSpec",
    "Memory",
    "ModelSpec",
    "OpCost",
    "OpRow",
    "Report",
    "SearchResult",
    "ServingReport",
    "ServingSweep",
    "TensorCastError",
    "analyze",
    "clear_cache",
    "list_devices",
    "list_models",
    "load_device",
    "load_model",
    "op_cost",
    "recommend",
    "search",
    "simulate",
    "simulate_sweep",
]
