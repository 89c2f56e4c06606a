"""Expert-parallel communication hidden behind the shared experts, per MoE layer.

Owns `shared_expert_overlap_s(nodes, multiplicities, profile, mode)`: the seconds of a step's
expert-parallel exchange (`ep_dispatch` + `ep_combine`, the all_to_alls around the routed experts)
that the shared experts can hide. The shared experts of a `tensor_cast::moe` op run on the rank's
own tokens and need nothing from the exchange, so engines launch them while the dispatch is in
flight (DeepSeek's and SGLang's single-batch overlap): per MoE layer, min(exchange time, shared
experts' kernel time) disappears from the step. The shared experts' time is their own part of the
op (`backends/formulas/moe.shared_counts`) timed with the op's roofline and efficiencies, without
launch gaps (those stay serial).

Not modelled here: two-batch overlap (SGLang `--enable-two-batch-overlap`: one micro-batch's
communication behind the other's compute), whose ideal bound is the report's `overlapped_time_s`
(max of compute and communication). MoE families without shared experts (Qwen3-MoE, Mixtral,
gpt-oss, MiniMax-M2) hide nothing here. Reads costed nodes only; never changes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..sizes import smin

if TYPE_CHECKING:
    from ..backends.device import DeviceProfile
    from ..backends.roofline import ExecutionMode
    from ..costed import CostedNode

# the all_to_alls, and the all-gather / reduce-scatter that replace them under MoE TP
EXCHANGE_OPS = ("tensor_cast.ep_dispatch", "tensor_cast.ep_combine", "tensor_cast.ep_allgather",
                "tensor_cast.ep_reducescatter")
MOE_OP = "tensor_cast.moe"  # the name (CostedNode.op) of tensor_cast::moe


def shared_expert_overlap_s(nodes: Sequence[CostedNode], multiplicities: Sequence[int],
                            profile: DeviceProfile | None, mode: ExecutionMode) -> Any:
    """Seconds of EP exchange hidden behind shared experts over the whole step (0 without EP)."""
    if profile is None or not any(node.op in EXCHANGE_OPS for node in nodes):
        return 0
    import torch

    from ..backends.formulas.moe import shared_counts
    from ..backends.roofline import op_time

    exchange: dict[int, Any] = {}
    shared: dict[int, Any] = {}
    count: dict[int, int] = {}
    for node, mult in zip(nodes, multiplicities, strict=True):
        layer = node.rep_layer
        if layer is None:
            continue
        if node.op in EXCHANGE_OPS:
            exchange[layer] = exchange.get(layer, 0) + node.time.time_s
            count[layer] = mult
        elif node.op.startswith(MOE_OP) and node.op_call().op is torch.ops.tensor_cast.moe.default:
            part = op_time(shared_counts(node.op_call()), node.kind, profile, mode)
            shared[layer] = shared.get(layer, 0) + part.work_s
    return sum((count[k] * smin(exchange[k], shared.get(k, 0)) for k in exchange), 0)
