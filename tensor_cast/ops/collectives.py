"""Collective communication as graph ops: `all_reduce`, `all_gather`, `reduce_scatter`,
`all_to_all`, `send_recv` (`torch.ops.tensor_cast.*`), `sharded_rms_norm` (an RMSNorm over channels split
over the group, `passes/shard_norms.py`), and `all_reduce_add_rms_norm`, the
all-reduce that also adds the residual and normalizes (one kernel: TensorRT-LLM's `AllReduce` with
`RESIDUAL_RMS_NORM`, FlashInfer's `allreduce_fusion` in vLLM and SGLang;
`passes/fuse_allreduce_add_rms_norm.py` produces it).

Inserted after capture by the parallelism passes (`passes/insert_tp_collectives.py`, ...). Each
carries what its cost needs: the group size, how many nodes the group spans (a group spanning
nodes runs at the inter-node link's speed) and the parallel scope it belongs to (tp, ep, dp, pp).

Reference implementations simulate a group in which every rank holds the same tensor (a single
process has no peers): all_reduce sums n copies, all_gather concatenates n copies,
reduce_scatter keeps this rank's shard of the n-copy sum, all_to_all and send_recv return the
data unchanged. They exist so `opcheck` and numeric pass tests run on CPU; the fake kernels
give the shapes every rank sees.
"""

from __future__ import annotations

import torch

SCOPES = ("tp", "ep", "dp", "pp")


@torch.library.custom_op("tensor_cast::all_reduce", mutates_args=())
def all_reduce(x: torch.Tensor, group_size: int, nodes: int, scope: str) -> torch.Tensor:
    """Sum `x` over the group; every rank gets the sum (same shape)."""
    return x * group_size


@all_reduce.register_fake
def _all_reduce_fake(x, group_size, nodes, scope):
    return torch.empty_like(x)


@torch.library.custom_op("tensor_cast::all_reduce_add_rms_norm", mutates_args=())
def all_reduce_add_rms_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor | None, eps: float,
                            group_size: int, nodes: int, scope: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(rms_norm(sum over the group of `x` + residual), that sum + residual): `add_rms_norm` of
    the all-reduced `x`, in one kernel."""
    from .fused import add_rms_norm

    normed, summed = add_rms_norm(x * group_size, residual, weight, eps)
    return normed.clone(), summed.clone()


@all_reduce_add_rms_norm.register_fake
def _all_reduce_add_rms_norm_fake(x, residual, weight, eps, group_size, nodes, scope):
    summed_dtype = torch.promote_types(x.dtype, residual.dtype)
    out_dtype = torch.promote_types(summed_dtype, weight.dtype) if weight is not None else summed_dtype
    shape = torch.broadcast_shapes(x.shape, residual.shape)
    return x.new_empty(shape, dtype=out_dtype), x.new_empty(shape, dtype=summed_dtype)


NORM_SHARDINGS = ("stats", "gather")


@torch.library.custom_op("tensor_cast::sharded_rms_norm", mutates_args=())
def sharded_rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float, group_size: int, nodes: int,
                     scope: str, method: str, gate: torch.Tensor | None = None) -> torch.Tensor:
    """This rank's share of an RMSNorm whose feature dimension is split over the group (a q / k norm
    spanning all heads under TP: `x` and `weight` are the rank's channels). `method` is how the engine
    gets the whole row's mean of squares: "stats" all-reduces each token's local statistic (one fp32)
    and normalizes the share (vLLM / SGLang `MiniMaxText01RMSNormTP`); "gather" all-gathers the
    shares, normalizes the whole row on every rank and keeps its own share (vLLM's OLMo 2 / 3 and
    FlexOlmo `_apply_qk_norm`). With a `gate` (Mamba-2's output norm with one group, "stats" only) the
    row normalized is x · silu(gate), vLLM's `Mixer2RMSNormGated` at tp > 1. Reference: every rank holds
    the same share, so the whole row's mean of squares is the share's and the result is the share's
    own (gated) RMSNorm."""
    _check_sharding(method, gate)
    if gate is not None:
        from .mamba import gated_rms_norm

        return gated_rms_norm(x, gate, weight, x.shape[-1], eps).clone()
    from .fused import rms_norm

    return rms_norm(x, weight, eps).clone()


def _check_sharding(method: str, gate: torch.Tensor | None) -> None:
    if method not in NORM_SHARDINGS:
        raise ValueError(f"unknown norm sharding {method!r}; known: {', '.join(NORM_SHARDINGS)}")
    if gate is not None and method != "stats":
        raise ValueError("a gated sharded norm all-reduces its statistic: method 'stats'")


@sharded_rms_norm.register_fake
def _sharded_rms_norm_fake(x, weight, eps, group_size, nodes, scope, method, gate=None):
    _check_sharding(method, gate)
    dtype = torch.promote_types(x.dtype, weight.dtype) if weight is not None else x.dtype
    return x.new_empty(x.shape, dtype=dtype)


@torch.library.custom_op("tensor_cast::all_gather", mutates_args=())
def all_gather(x: torch.Tensor, dim: int, group_size: int, nodes: int, scope: str) -> torch.Tensor:
    """Concatenate every rank's `x` along `dim`."""
    return torch.cat([x] * group_size, dim=dim)


@all_gather.register_fake
def _all_gather_fake(x, dim, group_size, nodes, scope):
    shape = list(x.shape)
    shape[dim] = shape[dim] * group_size
    return x.new_empty(shape)


@torch.library.custom_op("tensor_cast::reduce_scatter", mutates_args=())
def reduce_scatter(x: torch.Tensor, dim: int, group_size: int, nodes: int, scope: str) -> torch.Tensor:
    """Sum `x` over the group and keep this rank's 1/group_size slice along `dim`."""
    return (x.narrow(dim, 0, x.shape[dim] // group_size) * group_size).contiguous()


@reduce_scatter.register_fake
def _reduce_scatter_fake(x, dim, group_size, nodes, scope):
    shape = list(x.shape)
    shape[dim] = shape[dim] // group_size
    return x.new_empty(shape)


@torch.library.custom_op("tensor_cast::all_to_all", mutates_args=())
def all_to_all(x: torch.Tensor, group_size: int, nodes: int, scope: str) -> torch.Tensor:
    """Each rank sends 1/group_size of `x` to every rank (itself included); same shape out."""
    return x.clone()


@all_to_all.register_fake
def _all_to_all_fake(x, group_size, nodes, scope):
    return torch.empty_like(x)


@torch.library.custom_op("tensor_cast::send_recv", mutates_args=())
def send_recv(x: torch.Tensor, nodes: int, scope: str) -> torch.Tensor:
    """Point to point: this rank sends `x` to the next pipeline stage, which receives it."""
    return x.clone()


@send_recv.register_fake
def _send_recv_fake(x, nodes, scope):
    return torch.empty_like(x)
