"""tensor_cast: predict what an LLM costs to run — time, memory, bytes moved, FLOPs — per op,
on a given accelerator and deployment, from its HF config, without weights or the accelerator.

    import tensor_cast
    report = tensor_cast.analyze("meta-llama/Llama-3.1-8B", device="h100-sxm", batch_size=1, query_len=2048)
    print(report.summary()); print(report.table())
"""

from .api import OpCost, analyze, clear_cache, list_devices, list_models, load_model, op_cost
from .backends.device import DeviceProfile, load_device
from .errors import TensorCastError
from .models.spec import AttentionSpec, LayerSpec, MLPSpec, ModelSpec
from .report import Memory, OpRow, Report

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
    "TensorCastError",
    "analyze",
    "clear_cache",
    "list_devices",
    "list_models",
    "load_device",
    "load_model",
    "op_cost",
]
