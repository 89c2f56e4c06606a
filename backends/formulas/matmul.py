"""GEMM cost rules: linear, matmul/mm/bmm/addmm, and the horizontally fused linear.

FLOPs are 2·M·N·K multiply-adds (+ M·N for a bias); bytes are each operand read once and the
output written once (the compulsory traffic a tiled GEMM approaches). The precision class is the
operands' dtype: bf16/fp16/fp8/int8 run on tensor cores; plain fp32 runs on CUDA cores (torch
does not use TF32 for matmul by default).
"""

from __future__ import annotations

import operator
from typing import Any

import torch

from ...sizes import numel
from ..counts import Counts
from ..kernels import GemmShape, product_shape
from .registry import OpCall, TensorInfo, register

aten = torch.ops.aten

PRECISION_OF_DTYPE = {
    torch.bfloat16: "bf16",
    torch.float16: "fp16",
    torch.float32: "fp32",
    torch.float8_e4m3fn: "fp8",
    torch.float8_e5m2: "fp8",
    torch.int8: "int8",
}


def gemm_precision(a: TensorInfo, b: TensorInfo) -> str:
    """The tensor-core class a GEMM of these operands runs at (the wider operand decides)."""
    pa, pb = PRECISION_OF_DTYPE.get(a.dtype, "fp32"), PRECISION_OF_DTYPE.get(b.dtype, "fp32")
    order = ("fp4", "int8", "fp8", "bf16", "fp16", "fp32")
    return max(pa, pb, key=order.index)


def gemm_counts(m: Any, n: Any, k: Any, *, precision: str, read_bytes: Any, write_bytes: Any,
                bias: bool = False) -> Counts:
    """One M x N x K GEMM (its shape travels with the counts for the efficiency model)."""
    flops = 2 * m * n * k + (m * n if bias else 0)
    return Counts(flops={precision: flops}, bytes_read=read_bytes, bytes_written=write_bytes,
                  kernel=GemmShape(1, m, n, k))


@register(torch._C._nn.linear, aten.linear.default, kind="gemm")
def linear(call: OpCall) -> Counts:
    """y[..., N] = x[..., K] @ W[N, K]^T (+ b[N])."""
    x, w, b = call.arg(0), call.arg(1), call.arg(2, "bias")
    m, k, n = numel(x.shape[:-1]), x.shape[-1], w.shape[0]
    read = x.nbytes + w.nbytes + (b.nbytes if b is not None else 0)
    return gemm_counts(m, n, k, precision=gemm_precision(x, w), read_bytes=read,
                       write_bytes=call.out_bytes, bias=b is not None)


@register(torch.ops.tensor_cast.fused_linear.default, kind="gemm")
def fused_linear(call: OpCall) -> Counts:
    """One GEMM against the concatenated weights: x read once, N = sum of output widths."""
    x, weights, biases = call.get("x"), call.get("weights"), call.get("biases")
    m, k = numel(x.shape[:-1]), x.shape[-1]
    n = sum((w.shape[0] for w in weights), 0)
    read = x.nbytes + sum((w.nbytes for w in weights), 0) + sum((b.nbytes for b in biases if b is not None), 0)
    return gemm_counts(m, n, k, precision=gemm_precision(x, weights[0]), read_bytes=read,
                       write_bytes=call.out_bytes, bias=any(b is not None for b in biases))


@register(torch.matmul, operator.matmul, "Tensor.matmul", torch.bmm, torch.mm, "Tensor.bmm", "Tensor.mm",
          aten.mm.default, aten.bmm.default, aten.matmul.default, kind="gemm")
def matmul(call: OpCall) -> Counts:
    """(..., M, K) @ (..., K, N): 2·K FLOPs per output element."""
    a, b = call.arg(0), call.arg(1)
    k = a.shape[-1]
    return Counts(flops={gemm_precision(a, b): 2 * call.out.numel * k},
                  bytes_read=a.nbytes + b.nbytes, bytes_written=call.out_bytes, kernel=product_shape(a, b, call.out))


@register(aten.addmm.default, torch.addmm, aten.baddbmm.default, torch.baddbmm, kind="gemm")
def addmm(call: OpCall) -> Counts:
    """bias + a @ b."""
    bias, a, b = call.arg(0), call.arg(1), call.arg(2)
    k = a.shape[-1]
    return Counts(flops={gemm_precision(a, b): 2 * call.out.numel * k + call.out.numel},
                  bytes_read=a.nbytes + b.nbytes + bias.nbytes, bytes_written=call.out_bytes,
                  kernel=product_shape(a, b, call.out))



def _nbytes(info: Any) -> Any:
    return info.nbytes if isinstance(info, TensorInfo) else 0


@register(aten._scaled_mm.default, kind="gemm")
def scaled_mm(call: OpCall) -> Counts:
    """fp8 GEMM with scales (`torch._scaled_mm`): (M, K) @ (K, N) · scale_a · scale_b (+ bias),
    written in `out_dtype`. 2·M·N·K FLOPs at the operands' precision (+ M·N for a bias); bytes:
    both operands, their scales (one per tensor, row or column) and the bias read, the output written."""
    a, b = call.arg(0, "self"), call.arg(1, "mat2")
    bias = call.arg(4, "bias")
    m, k, n = a.shape[0], a.shape[1], b.shape[1]
    read = a.nbytes + b.nbytes + _nbytes(call.arg(2, "scale_a")) + _nbytes(call.arg(3, "scale_b")) + _nbytes(bias)
    return gemm_counts(m, n, k, precision=gemm_precision(a, b), read_bytes=read, write_bytes=call.out_bytes,
                       bias=isinstance(bias, TensorInfo))


@register(aten._int_mm.default, kind="gemm")
def int_mm(call: OpCall) -> Counts:
    """int8 (M, K) @ int8 (K, N) -> int32 (M, N) (`torch._int_mm`): 2·M·N·K int8 tensor-core ops."""
    a, b = call.arg(0, "self"), call.arg(1, "mat2")
    return gemm_counts(a.shape[0], b.shape[1], a.shape[1], precision=gemm_precision(a, b),
                       read_bytes=a.nbytes + b.nbytes, write_bytes=call.out_bytes)
