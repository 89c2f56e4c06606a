"""Elementwise, type-conversion and reduction cost rules.

Elementwise: each tensor operand read once at its own size (a broadcast operand is read once,
not per output element), the output written once, one vector FLOP per output element (a few
for transcendental functions). Type conversions copy when the dtype changes and cost nothing
when it does not. Reductions read the input once and write the (smaller) output.
"""

from __future__ import annotations

import operator

import torch

from ...errors import UnknownOpError
from ..counts import ZERO, Counts
from .registry import OpCall, register

aten = torch.ops.aten


def elementwise_counts(call: OpCall, flops_per_element: float = 1) -> Counts:
    return Counts(flops={"vector": flops_per_element * call.out.numel}, bytes_read=call.in_bytes,
                  bytes_written=call.out_bytes)


_ARITHMETIC = (
    operator.add, operator.sub, operator.mul, operator.truediv, operator.neg, operator.pow, operator.iadd,
    operator.imul, operator.isub, operator.itruediv, operator.floordiv, operator.mod,
    operator.and_, operator.or_, operator.xor, operator.invert, operator.eq, operator.ne, operator.lt,
    operator.le, operator.gt, operator.ge,
    torch.add, torch.sub, torch.mul, torch.div, torch.neg, torch.pow, torch.abs, torch.clamp, torch.where,
    torch.maximum, torch.minimum, torch.eq, torch.ne, torch.gt, torch.ge, torch.lt, torch.le,
    torch.logical_and, torch.logical_or, torch.logical_not, torch.masked_fill, torch.reciprocal,
    torch.square, torch.sign, torch.floor, torch.ceil, torch.round, torch.bitwise_and, torch.bitwise_or,
    "Tensor.add", "Tensor.sub", "Tensor.mul", "Tensor.div", "Tensor.neg", "Tensor.pow", "Tensor.abs",
    "Tensor.clamp", "Tensor.clamp_", "Tensor.masked_fill", "Tensor.masked_fill_", "Tensor.add_",
    "Tensor.mul_", "Tensor.div_", "Tensor.sub_", "Tensor.reciprocal", "Tensor.square", "Tensor.eq",
    "Tensor.ne", "Tensor.gt", "Tensor.lt", "Tensor.ge", "Tensor.le", "Tensor.where", "Tensor.clamp_min",
    "Tensor.clamp_max", "Tensor.__and__", "Tensor.__or__", "Tensor.logical_not", "Tensor.floor",
    aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor, aten.neg.default, aten.pow.Tensor_Scalar,
    aten.where.self, aten.clamp.default,
)
register(*_ARITHMETIC, kind="elementwise")(elementwise_counts)


@register(torch.rsqrt, torch.sqrt, torch.exp, torch.log, torch.sin, torch.cos, torch.erf, torch.log1p,
          torch.expm1, "Tensor.rsqrt", "Tensor.sqrt", "Tensor.exp", "Tensor.log", "Tensor.sin", "Tensor.cos",
          "Tensor.erf", "Tensor.exp_", aten.rsqrt.default, aten.exp.default, kind="elementwise")
def transcendental(call: OpCall) -> Counts:
    return elementwise_counts(call, 4)


@register(torch.polar, kind="elementwise")
def polar(call: OpCall) -> Counts:
    """abs x e^(i angle), one complex output element from two reals: a cosine, a sine (4 FLOPs each,
    as `transcendental`) and two multiplies."""
    return elementwise_counts(call, 10)


@register("Tensor.to", "Tensor.float", "Tensor.half", "Tensor.bfloat16", "Tensor.type_as", "Tensor.type",
          "Tensor.double", "Tensor.int", "Tensor.long", "Tensor.bool", aten._to_copy.default,
          kind="elementwise")
def convert(call: OpCall) -> Counts:
    """A dtype conversion copies; `.to` to the same dtype (and shape) returns the input: free."""
    src = call.arg(0)
    if src.dtype == call.out.dtype:
        return ZERO
    return Counts(bytes_read=src.nbytes, bytes_written=call.out_bytes)


@register(torch.nn.functional.dropout, "Tensor.dropout", kind="elementwise")
def dropout(call: OpCall) -> Counts:
    """Inference dropout (`training=False`, or p = 0) returns its input: free. Training-mode dropout
    is not an inference op: an error, never a silent zero."""
    training = call.arg(2, "training", True)
    p = call.arg(1, "p", 0.5)
    if training and p:
        raise UnknownOpError(f"dropout with training=True and p={p} is not an inference op (a model in train mode?)")
    return ZERO


@register(torch.mean, torch.sum, torch.amax, torch.amin, torch.var, torch.prod, torch.norm, torch.max,
          torch.min, torch.any, torch.all, torch.logsumexp, "Tensor.mean", "Tensor.sum", "Tensor.amax",
          "Tensor.amin", "Tensor.var", "Tensor.max", "Tensor.min", "Tensor.norm", "Tensor.prod", "Tensor.any",
          "Tensor.all", aten.mean.dim, aten.sum.dim_IntList, aten.amax.default, kind="elementwise")
def reduction(call: OpCall) -> Counts:
    src = call.arg(0)
    return Counts(flops={"vector": src.numel}, bytes_read=src.nbytes, bytes_written=call.out_bytes)


@register(torch.ops.tensor_cast.rope.default, kind="elementwise")
def rope(call: OpCall) -> Counts:
    """q and k rotated in one kernel: read each once with its cos/sin rows, write each once.

    3 FLOPs per element (two multiplies, one add).
    """
    return Counts(flops={"vector": 3 * sum((o.numel for o in call.outputs), 0)}, bytes_read=call.in_bytes,
                  bytes_written=call.out_bytes)
