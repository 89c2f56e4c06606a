"""Quantization cost rules: `tensor_cast::quantize` and `tensor_cast::quant_linear` (kind "quant"
and "gemm").

- quantize: reads the 16-bit activation, writes the quantized values and their scales. A dynamic
  per-tensor scale needs the whole tensor's amax first: two kernels, the input read twice; per-token
  and per-group scales are found inside the one quantizing kernel; static scales are given.
  The dynamic per-tensor kernels run one block per row (vLLM's `dynamic_scaled_fp8_quant`), so the
  shape carries the rows, their atomics on the one scale and the row length each block walks.
  ~2 vector FLOPs per element to find the amax (abs, max), ~2 to scale and round.
- grouped_linear (DeepSeek-V4's grouped output projection): G GEMMs of M x R x K, one batched
  kernel; in a quantized scheme the weights at its stored size and, for schemes that quantize
  activations, the quantizing kernel of the input folded in (the GEMM then reads it narrow).
- quant_linear: 2·M·N·K FLOPs (+ M·N for a bias) at the scheme's tensor-core precision (fp8, int8,
  fp4, or bf16 for weight-only schemes, which dequantize in the GEMM's main loop; that in-register
  work is not counted separately); bytes: the (quantized) activation and its scales, every weight
  element at the scheme's stored size (scales included), biases, and the 16-bit outputs.
"""

from __future__ import annotations

import dataclasses

import torch

from ...deployment.quantization import PER_TENSOR, scheme
from ...ops import quant as _quant_ops  # noqa: F401  (ops exist before their rules)
from ...sizes import numel
from ..counts import Counts
from ..kernels import GemmShape, QuantShape
from .matmul import gemm_counts, gemm_precision
from .registry import OpCall, register

tc = torch.ops.tensor_cast


@register(tc.quantize.default, kind="quant")
def quantize(call: OpCall) -> Counts:
    x, group, dynamic = call.get("x"), call.get("group"), bool(call.get("dynamic"))
    two_pass = dynamic and group == PER_TENSOR
    flops = (4 if dynamic else 2) * x.numel
    rows = numel(x.shape[:-1])
    return Counts(flops={"vector": flops}, bytes_read=x.nbytes * (2 if two_pass else 1),
                  bytes_written=call.out_bytes, launches=2 if two_pass else 1,
                  kernel=QuantShape(rows, rows if two_pass else 0, x.shape[-1] if two_pass else 0))


@register(tc.quant_linear.default, kind="gemm")
def quant_linear(call: OpCall) -> Counts:
    x, x_scale, weights, biases = call.get("x"), call.get("x_scale"), call.get("weights"), call.get("biases")
    s = scheme(call.get("scheme_name"))
    m, k = numel(x.shape[:-1]), weights[0].shape[1]
    n = sum((w.shape[0] for w in weights), 0)
    weight_bytes = sum((w.numel for w in weights), 0) * s.weight_bytes
    read = (x.nbytes + (x_scale.nbytes if x_scale is not None else 0) + weight_bytes
            + sum((b.nbytes for b in biases if b is not None), 0))
    return gemm_counts(m, n, k, precision=s.precision, read_bytes=read, write_bytes=call.out_bytes,
                       bias=any(b is not None for b in biases), variant=s.name)


@register(tc.grouped_linear.default, kind="gemm")
def grouped_linear(call: OpCall) -> Counts:
    x, weight, name = call.get("x"), call.get("weight"), str(call.get("scheme_name"))
    groups, k = x.shape[-2], x.shape[-1]
    m, r = numel(x.shape[:-2]), weight.shape[0] // x.shape[-2]
    if name == "none":
        return Counts(flops={gemm_precision(x, weight): 2 * groups * m * r * k},
                      bytes_read=x.nbytes + weight.nbytes, bytes_written=call.out_bytes,
                      kernel=GemmShape(groups, m, r, k))
    s = scheme(name)
    gemm = Counts(flops={s.precision: 2 * groups * m * r * k}, bytes_read=weight.numel * s.weight_bytes,
                  bytes_written=call.out_bytes, kernel=GemmShape(groups, m, r, k, s.name))
    fmt = s.activation
    if fmt is None:
        return dataclasses.replace(gemm + Counts(bytes_read=x.nbytes, launches=0), kernel=gemm.kernel)
    narrow = x.numel * fmt.bits / 8 + (numel(x.shape[:-1]) * (k // fmt.group if fmt.group > 0 else 1) * fmt.scale_bytes)
    quantize_x = Counts(flops={"vector": 4 * x.numel}, bytes_read=x.nbytes, bytes_written=narrow)
    return dataclasses.replace(gemm + quantize_x + Counts(bytes_read=narrow, launches=0), kernel=gemm.kernel)
