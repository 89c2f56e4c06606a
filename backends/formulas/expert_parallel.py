"""Expert-parallel exchange cost rules: `tensor_cast::ep_dispatch` and `ep_combine`, and the MoE-TP
exchange `ep_allgather` / `ep_reducescatter` (kind "collective").

Both are all_to_all collectives over the EP group (`CommInfo(collective="all_to_all", scope="ep")`,
timed by `backends/communication.py`, which sends the intra- and inter-node shares of a group
spanning nodes on their own links). Counts only, no seconds.

Rows exchanged. N = ep_dp·T tokens (T = the tokens of the op's input, one attention-DP replica's
step; ep_dp replicas) are routed over `group_size` = ep ranks, k (token, expert) rows each. The
most loaded rank — the one that sets the step time — receives N·k·share rows, share = 1/ep under
uniform routing (`moe.ep_rank_share`; with skew, the hottest rank's share of the pairs). Its rows
come from every rank alike, so (ep-1)/ep of them cross the interconnect, and it sends as many as
it receives. Uniform routing: N·k/ep = T·k/tp rows (ep = tp·dp), i.e. each rank sends every row
of its own T/tp tokens and keeps the 1/ep that stay local. A row is one (token, expert) pair — what
DeepEP's low-latency kernels and pplx send; DeepEP's high-throughput (prefill) kernels send a
token once per destination rank, which is fewer bytes when a token's k experts share ranks.

    payload M = rows · H · bytes per element       comm_bytes = (ep-1)/ep · M   (all_to_all)

Dispatch travels in `wire_dtype`: "fp8" is DeepEP's FP8 dispatch (E4M3 plus one fp32 scale per
128 channels: 1 + 4/128 bytes), used when the experts run FP8 activations; "nvfp4" is the
quantize-then-dispatch of NVFP4 experts (E2M1 plus one E4M3 scale per 16 channels: 1/2 + 1/16
bytes; TensorRT-LLM's post-quant all_to_all, `TRTLLM_MOE_POST_QUANT_ALLTOALLV` default "1" when the
MoE quant mode has NVFP4, tensorrt_llm/_torch/modules/fused_moe/fused_moe_cutlass.py; vLLM's
FlashInfer NVFP4 paths likewise quantize before `mnnvl_moe_alltoallv` or the DP all_gatherv,
vllm/model_executor/layers/fused_moe/flashinfer_cutlass_prepare_finalize.py); otherwise the model
dtype. Combine returns the expert outputs in their own dtype (bf16). Each kernel reads the rows it
sends and writes the rows it receives once in device memory.

MoE TP across attention-DP replicas (`ep_allgather` / `ep_reducescatter`, moe_tp > 1): every rank
needs every token of the N = ep_dp·T its experts serve, whole (its column slice of the expert
needs the full hidden vector). The all-gather's output is the N rows in the wire dtype, the
reduce-scatter's input the N rows of partial outputs in their own dtype, over the `group_size`
ranks that hold different tokens (the dp replicas):

    all_gather      M = N · H · wire bytes      comm_bytes = (n-1)/n · M
    reduce_scatter  M = N · H · out bytes       comm_bytes = (n-1)/n · M, (n-1)/n · N·H adds
"""

from __future__ import annotations

from typing import Any

import sympy
import torch

from ...ops import expert_parallel as _ep_ops  # noqa: F401  (ops exist before their rules)
from ...sizes import numel
from ..counts import Counts
from .collectives import collective_counts
from .moe import ep_rank_share
from .registry import OpCall, TensorInfo, register

tc = torch.ops.tensor_cast

# bytes per element on the wire; fp8: E4M3 + one fp32 scale per 128 channels (DeepEP FP8 dispatch);
# nvfp4: E2M1 + one E4M3 scale per 16 channels (post-quant all_to_all of NVFP4 experts)
WIRE_BYTES: dict[str, Any] = {"fp8": 1 + sympy.Rational(4, 128), "nvfp4": sympy.Rational(1, 2) + sympy.Rational(1, 16),
                              "bf16": 2, "fp16": 2, "fp32": 4}


def exchanged_rows(tokens: Any, *, top_k: int, num_experts: int, skew: float, group_size: int, ep_dp: int) -> Any:
    """Rows the most loaded rank of the EP group receives (and sends) in one exchange."""
    return ep_dp * tokens * top_k * ep_rank_share(num_experts, top_k, skew, group_size)


def _exchange(call: OpCall, x: TensorInfo, element_bytes: Any) -> Counts:
    top_k, experts, group, ep_dp, nodes = (call.get(name) for name in (
        "top_k", "num_experts", "group_size", "ep_dp", "nodes"))
    skew = call.knobs.moe_skew  # a cost knob, not in the graph
    rows = exchanged_rows(numel(x.shape[:-1]), top_k=int(top_k), num_experts=int(experts), skew=float(skew),
                          group_size=int(group), ep_dp=int(ep_dp))
    payload = rows * x.shape[-1] * element_bytes
    return collective_counts("all_to_all", group_size=int(group), nodes=int(nodes), scope="ep", payload=payload,
                             read=payload, written=payload)


@register(tc.ep_dispatch.default, kind="collective")
def ep_dispatch(call: OpCall) -> Counts:
    """Tokens to their experts' ranks, in the wire dtype."""
    wire = str(call.get("wire_dtype"))
    if wire not in WIRE_BYTES:
        raise ValueError(f"unknown dispatch wire dtype {wire!r}; known: {', '.join(WIRE_BYTES)}")
    return _exchange(call, call.get("x"), WIRE_BYTES[wire])


@register(tc.ep_combine.default, kind="collective")
def ep_combine(call: OpCall) -> Counts:
    """Expert outputs back to their tokens' ranks, in their own dtype."""
    y = call.get("y")
    return _exchange(call, y, y.itemsize)


def _gathered(call: OpCall, x: TensorInfo) -> Any:
    """Rows every rank holds after the gather: the tokens of all ep_dp replicas."""
    return int(call.get("ep_dp")) * numel(x.shape[:-1])


@register(tc.ep_allgather.default, kind="collective")
def ep_allgather(call: OpCall) -> Counts:
    """Every replica's tokens to every rank of the group, in the wire dtype."""
    wire = str(call.get("wire_dtype"))
    if wire not in WIRE_BYTES:
        raise ValueError(f"unknown dispatch wire dtype {wire!r}; known: {', '.join(WIRE_BYTES)}")
    x = call.get("x")
    local = numel(x.shape[:-1]) * x.shape[-1] * WIRE_BYTES[wire]
    payload = _gathered(call, x) * x.shape[-1] * WIRE_BYTES[wire]
    return collective_counts("all_gather", group_size=int(call.get("group_size")), nodes=int(call.get("nodes")),
                             scope="ep", payload=payload, read=local, written=payload)


@register(tc.ep_reducescatter.default, kind="collective")
def ep_reducescatter(call: OpCall) -> Counts:
    """The partial outputs of all gathered tokens summed over the group; this rank keeps its own rows."""
    y = call.get("y")
    elements = _gathered(call, y) * y.shape[-1]
    return collective_counts("reduce_scatter", group_size=int(call.get("group_size")), nodes=int(call.get("nodes")),
                             scope="ep", payload=elements * y.itemsize, read=elements * y.itemsize,
                             written=y.nbytes, reduce_elements=elements)
