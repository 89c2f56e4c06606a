"""Collective cost rules: `tensor_cast::all_reduce`, `all_gather`, `reduce_scatter`, `all_to_all`,
`send_recv`, the fused `all_reduce_add_rms_norm` and `sharded_rms_norm` (kind "collective").

Counts only — bytes, not seconds: `comm.payload_bytes` is the logical message M (all_reduce,
all_to_all, send/recv: the tensor; all_gather: the gathered output; reduce_scatter: the full input),
`comm_bytes` what each rank sends with the bandwidth-optimal ring algorithm (NCCL's "bus bytes"):

    all_reduce      2(n-1)/n · M   (reduce-scatter then all-gather, each (n-1)/n · M)
    all_gather      (n-1)/n · M
    reduce_scatter  (n-1)/n · M
    all_to_all      (n-1)/n · M    (every rank keeps 1/n of its data)
    send_recv       M

The collective's own kernel reads its input and writes its output once in device memory, and a
reduction adds (n-1)/n · M/itemsize vector FLOPs. `backends/communication.py` turns the
`CommInfo` into time over the device's interconnect (ring or tree, intra- or inter-node).

`all_reduce_add_rms_norm(x, residual, weight)` is the all-reduce of x and the residual add + RMSNorm
of `add_rms_norm` in one kernel: the same communication as the unfused `all_reduce` of x (same
payload, same CommInfo, so the same protocol / ring / tree model times it), and device-memory
traffic of x, residual and weight read once and the normed output and the new residual written
once. The unfused pair also writes the all-reduced x and reads it back into the norm: 2 · M
bytes (M = x's bytes) and one launch that the fused kernel does not spend. FLOPs: the reduction's
(n-1)/n per element plus the norm's (`norm_activation.add_rms_norm`).
"""

from __future__ import annotations

from typing import Any

import sympy
import torch

from ...ops import collectives as _collective_ops  # noqa: F401  (ops exist before their rules)
from ..counts import CommInfo, Counts
from .mamba import GATED_NORM_FLOPS
from .norm_activation import RMS_NORM_FLOPS_PER_ELEMENT
from .registry import OpCall, register

tc = torch.ops.tensor_cast


def ring_bytes(collective: str, group_size: int, payload: Any) -> Any:
    """Bytes each rank sends for a collective of `payload` bytes over `group_size` ranks."""
    n = group_size
    factor = {"all_reduce": sympy.Rational(2 * (n - 1), n), "all_gather": sympy.Rational(n - 1, n),
              "reduce_scatter": sympy.Rational(n - 1, n), "all_to_all": sympy.Rational(n - 1, n),
              "send_recv": sympy.Integer(1)}[collective]
    return factor * payload


def collective_counts(collective: str, *, group_size: int, nodes: int, scope: str, payload: Any,
                      read: Any, written: Any, reduce_elements: Any = 0) -> Counts:
    flops = {"vector": sympy.Rational(group_size - 1, group_size) * reduce_elements} if reduce_elements else {}
    return Counts(flops=flops, bytes_read=read, bytes_written=written,
                  comm_bytes=ring_bytes(collective, group_size, payload),
                  comm=CommInfo(collective=collective, group_size=group_size, payload_bytes=payload, scope=scope,
                                nodes=nodes))


@register(tc.all_reduce.default, kind="collective")
def all_reduce(call: OpCall) -> Counts:
    x, n, nodes, scope = call.get("x"), call.get("group_size"), call.get("nodes"), call.get("scope")
    return collective_counts("all_reduce", group_size=n, nodes=nodes, scope=scope, payload=x.nbytes,
                             read=x.nbytes, written=call.out_bytes, reduce_elements=x.numel)


@register(tc.all_reduce_add_rms_norm.default, kind="collective")
def all_reduce_add_rms_norm(call: OpCall) -> Counts:
    x, n, nodes, scope = call.get("x"), call.get("group_size"), call.get("nodes"), call.get("scope")
    reduced = collective_counts("all_reduce", group_size=n, nodes=nodes, scope=scope, payload=x.nbytes,
                                read=call.in_bytes, written=call.out_bytes, reduce_elements=x.numel)
    norm_flops = (RMS_NORM_FLOPS_PER_ELEMENT + 1) * call.out.numel  # the add + the norm, per element
    return Counts(flops={"vector": reduced.flops.get("vector", 0) + norm_flops}, bytes_read=reduced.bytes_read,
                  bytes_written=reduced.bytes_written, comm_bytes=reduced.comm_bytes, comm=reduced.comm)


@register(tc.sharded_rms_norm.default, kind="collective")
def sharded_rms_norm(call: OpCall) -> Counts:
    """"stats": one pass over the rank's share (read x, the gate if any, and weight; write the output) around
    an all-reduce of one fp32 per token (the local mean of squares). "gather": an all-gather of the shares, then the norm
    over the whole row on every rank (read n shares and the whole weight, write the row), the rank keeping
    a view of its share."""
    x, n, nodes, scope = call.get("x"), call.get("group_size"), call.get("nodes"), call.get("scope")
    weight = call.get("weight")
    weight_bytes = weight.nbytes if weight is not None else 0
    tokens = x.numel / x.shape[-1]
    if call.get("method") == "stats":
        stats = collective_counts("all_reduce", group_size=n, nodes=nodes, scope=scope, payload=4 * tokens,
                                  read=4 * tokens, written=4 * tokens, reduce_elements=tokens)
        per_element = GATED_NORM_FLOPS if call.get("gate") is not None else RMS_NORM_FLOPS_PER_ELEMENT
        return Counts(flops={"vector": per_element * x.numel + stats.flops.get("vector", 0)},
                      bytes_read=call.in_bytes + stats.bytes_read, bytes_written=call.out_bytes + stats.bytes_written,
                      comm_bytes=stats.comm_bytes, comm=stats.comm)
    row = n * x.nbytes
    gathered = collective_counts("all_gather", group_size=n, nodes=nodes, scope=scope, payload=row,
                                 read=x.nbytes, written=row)
    return Counts(flops={"vector": RMS_NORM_FLOPS_PER_ELEMENT * n * x.numel},
                  bytes_read=gathered.bytes_read + row + n * weight_bytes, bytes_written=gathered.bytes_written + row,
                  comm_bytes=gathered.comm_bytes, comm=gathered.comm)


@register(tc.all_gather.default, kind="collective")
def all_gather(call: OpCall) -> Counts:
    x, n, nodes, scope = call.get("x"), call.get("group_size"), call.get("nodes"), call.get("scope")
    return collective_counts("all_gather", group_size=n, nodes=nodes, scope=scope, payload=call.out_bytes,
                             read=x.nbytes, written=call.out_bytes)


@register(tc.reduce_scatter.default, kind="collective")
def reduce_scatter(call: OpCall) -> Counts:
    x, n, nodes, scope = call.get("x"), call.get("group_size"), call.get("nodes"), call.get("scope")
    return collective_counts("reduce_scatter", group_size=n, nodes=nodes, scope=scope, payload=x.nbytes,
                             read=x.nbytes, written=call.out_bytes, reduce_elements=x.numel)


@register(tc.all_to_all.default, kind="collective")
def all_to_all(call: OpCall) -> Counts:
    x, n, nodes, scope = call.get("x"), call.get("group_size"), call.get("nodes"), call.get("scope")
    return collective_counts("all_to_all", group_size=n, nodes=nodes, scope=scope, payload=x.nbytes,
                             read=x.nbytes, written=call.out_bytes)


@register(tc.send_recv.default, kind="collective")
def send_recv(call: OpCall) -> Counts:
    x, nodes, scope = call.get("x"), call.get("nodes"), call.get("scope")
    return collective_counts("send_recv", group_size=2, nodes=nodes, scope=scope, payload=x.nbytes,
                             read=x.nbytes, written=call.out_bytes)
