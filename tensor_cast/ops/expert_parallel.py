"""Expert-parallel token exchange as graph ops: `tensor_cast::ep_dispatch` and `ep_combine`.

Under expert parallelism with attention data parallelism each rank holds its own tokens, while a
token's k experts live on other ranks. Serving engines (DeepEP in SGLang and vLLM, pplx) move
them with two all_to_all exchanges around the routed experts:

- `ep_dispatch(x, top_k, num_experts, group_size, ep_dp, nodes, wire_dtype)`: every rank
  sends each (token, expert) row of its tokens to the rank holding that expert, in `wire_dtype`
  ("fp8": DeepEP's FP8 dispatch, when the experts run FP8 activations; else the model dtype);
- `ep_combine(y, top_k, num_experts, group_size, ep_dp, nodes)`: the expert outputs travel
  back to their tokens' ranks (in y's dtype, bf16), where they are weighted and summed.

When the experts are also split tensor-parallel (moe_tp > 1) an all_to_all cannot deliver a
token to every column slice of its experts; engines then gather every replica's tokens on every
rank and reduce-scatter the partial outputs (TensorRT-LLM `AllGatherReduceScatter`, chosen
whenever `moe_tp_size != 1` under attention DP: "AlltoAll cannot support MoE TP",
`_torch/modules/fused_moe/communication/communication_factory.py`):

- `ep_allgather(x, group_size, ep_dp, nodes, wire_dtype)`: every rank receives the tokens of all
  `ep_dp` replicas (TensorRT-LLM gathers after quantizing: "post-quant dispatch");
- `ep_reducescatter(y, group_size, ep_dp, nodes)`: the partial outputs of all those tokens are
  summed over the ranks and each rank keeps its replica's rows.

`insert_ep_collectives` places them around `tensor_cast::moe`. They carry what their cost needs:
the routing (k, E; the skew is a cost knob, outside the graph) that sets how many rows the most loaded rank receives, the EP group
(`group_size` ranks over `nodes` nodes) and `ep_dp`, the attention-DP replicas whose tokens the
group routes. The cost rule is in `backends/formulas/expert_parallel.py`.

Reference implementations simulate a group in which every rank holds the same tokens (a single
process has no peers): both return their input unchanged, so a graph with them computes what it
computed before. The fake kernels keep the shape: the graph stays in per-token layout, and the
exchanged row counts live in the cost rule, not in the shapes.
"""

from __future__ import annotations

import torch

WIRE_DTYPES = ("fp8", "nvfp4", "bf16", "fp16", "fp32")


def _check(wire_dtype: str) -> None:
    if wire_dtype not in WIRE_DTYPES:
        raise ValueError(f"unknown dispatch wire dtype {wire_dtype!r}; known: {', '.join(WIRE_DTYPES)}")


@torch.library.custom_op("tensor_cast::ep_dispatch", mutates_args=())
def ep_dispatch(x: torch.Tensor, top_k: int, num_experts: int, group_size: int, ep_dp: int,
                nodes: int, wire_dtype: str) -> torch.Tensor:
    """Send each (token, expert) row of `x` (..., H) to the rank holding the expert."""
    _check(wire_dtype)
    return x.clone()


@ep_dispatch.register_fake
def _ep_dispatch_fake(x, top_k, num_experts, group_size, ep_dp, nodes, wire_dtype):
    _check(wire_dtype)
    return torch.empty_like(x)


@torch.library.custom_op("tensor_cast::ep_combine", mutates_args=())
def ep_combine(y: torch.Tensor, top_k: int, num_experts: int, group_size: int, ep_dp: int,
               nodes: int) -> torch.Tensor:
    """Return every expert output row to the rank owning its token (same shape as `y`)."""
    return y.clone()


@ep_combine.register_fake
def _ep_combine_fake(y, top_k, num_experts, group_size, ep_dp, nodes):
    return torch.empty_like(y)


@torch.library.custom_op("tensor_cast::ep_allgather", mutates_args=())
def ep_allgather(x: torch.Tensor, group_size: int, ep_dp: int, nodes: int, wire_dtype: str) -> torch.Tensor:
    """Gather the tokens of all `ep_dp` replicas on every rank (same shape: rows live in the cost)."""
    _check(wire_dtype)
    return x.clone()


@ep_allgather.register_fake
def _ep_allgather_fake(x, group_size, ep_dp, nodes, wire_dtype):
    _check(wire_dtype)
    return torch.empty_like(x)


@torch.library.custom_op("tensor_cast::ep_reducescatter", mutates_args=())
def ep_reducescatter(y: torch.Tensor, group_size: int, ep_dp: int, nodes: int) -> torch.Tensor:
    """Sum the partial outputs of all gathered tokens and keep this rank's rows (same shape as `y`)."""
    return y.clone()


@ep_reducescatter.register_fake
def _ep_reducescatter_fake(y, group_size, ep_dp, nodes):
    return torch.empty_like(y)


__all__ = ["WIRE_DTYPES", "ep_allgather", "ep_combine", "ep_dispatch", "ep_reducescatter"]
