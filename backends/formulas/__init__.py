"""Cost formulas: op -> Counts, one file per op family.

Importing this package fills the registry (`registry.py`). Families: matmul, attention,
norm/activation, elementwise, memory ops, MoE, collectives, quantization, and the free-op table.
"""

from ...ops import attention as _attention_ops  # noqa: F401  (custom ops must exist before rules)
from ...ops import fused as _fused_ops  # noqa: F401
from ...ops import moe as _moe_ops  # noqa: F401
from . import attention, collectives, elementwise, free, matmul, memory, moe, norm_activation, quant  # noqa: F401
from .registry import (
    FREE_OPS,
    KINDS,
    OpCall,
    RuleEntry,
    TensorInfo,
    is_free,
    lookup,
    op_name,
    register,
    tensor_infos,
)

__all__ = ["FREE_OPS", "KINDS", "OpCall", "RuleEntry", "TensorInfo", "is_free", "lookup", "op_name", "register", "tensor_infos"]
