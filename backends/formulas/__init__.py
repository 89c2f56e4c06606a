"""Cost formulas: op -> Counts, one file per op family.

Importing this package fills the registry (`registry.py`). Families: matmul, attention,
norm/activation, elementwise, memory ops, MoE, collectives, expert-parallel exchange, quantization,
MLA (latent attention, sparse indexer), linear attention (gated DeltaNet, KDA), Mamba-2, DeepSeek-V4's compressed
attention and hyper-connections, and the free-op table.
"""

from ...ops import attention as _attention_ops  # noqa: F401  (custom ops must exist before rules)
from ...ops import compressed_attention as _compressed_attention_ops  # noqa: F401
from ...ops import fused as _fused_ops  # noqa: F401
from ...ops import hyper_connection as _hyper_connection_ops  # noqa: F401
from ...ops import linear_attention as _linear_attention_ops  # noqa: F401
from ...ops import mamba as _mamba_ops  # noqa: F401
from ...ops import mla as _mla_ops  # noqa: F401
from ...ops import moe as _moe_ops  # noqa: F401
from . import (  # noqa: F401
    attention,
    collectives,
    compressed_attention,
    elementwise,
    expert_parallel,
    free,
    hyper_connection,
    linear_attention,
    mamba,
    matmul,
    memory,
    mla,
    moe,
    norm_activation,
    quant,
)
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
