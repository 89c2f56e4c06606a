"""Quantized GEMMs and activation quantization as graph ops (`torch.ops.tensor_cast.*`).

- `quantize(x, fmt, group, dynamic) -> (q, scale)`: one kernel turning a 16-bit activation into
  `fmt` (`fp8`: float8_e4m3fn; `int8`; `nvfp4`: E2M1 codes packed two per uint8 byte) with one
  scale per tensor (group 0), per token (group -1) or per `group` elements of the last dim.
  `dynamic` scales are computed from the data (per-tensor needs a second pass); static ones were
  calibrated offline.
- `quant_linear(x, x_scale, weights, biases, scheme, out_dtype) -> [y_i]`: one GEMM (horizontally
  fused when several weights share x, like `fused_linear`) whose weights are stored in `scheme`
  (`tensor_cast.deployment.quantization.SCHEMES`); `x` is the quantized activation with its
  scales, or the 16-bit activation for weight-only schemes (`x_scale` None).

The meta model stays in its 16-bit dtype: weights keep their logical shapes and the scheme says
how many bytes they occupy. Reference implementations quantize activations for real (so the
numerics of the activation path are checkable on CPU) and use the 16-bit weights as stored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..deployment.quantization import PER_TENSOR, PER_TOKEN, scheme

STORAGE = {"fp8": torch.float8_e4m3fn, "int8": torch.int8, "nvfp4": torch.uint8, "mxfp8": torch.float8_e4m3fn}
QMAX = {"fp8": 448.0, "int8": 127.0, "nvfp4": 6.0, "mxfp8": 448.0}
# MXFP8 (OCP Microscaling): E4M3 elements, one E8M0 scale (a power of two) per 32
SCALE_DTYPE = {"fp8": torch.float32, "int8": torch.float32, "nvfp4": torch.float8_e4m3fn, "mxfp8": torch.float8_e8m0fnu}
POWER_OF_TWO_SCALES = ("mxfp8",)  # E8M0 holds only powers of two: the scale rounds up, so no element overflows
E2M1 = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])  # FP4 magnitudes, codes 0..7 (bit 3: sign)


def _scale_shape(x: torch.Tensor, group: int) -> list:
    if group == PER_TENSOR:
        return [1]
    if group == PER_TOKEN:
        return [*x.shape[:-1], 1]
    return [*x.shape[:-1], -(-x.shape[-1] // group)]


def _groups(x: torch.Tensor, group: int) -> torch.Tensor:
    """x as (..., n_groups, group_len) for amax/scale computations."""
    if group == PER_TENSOR:
        return x.reshape(1, -1)
    if group == PER_TOKEN:
        return x.unsqueeze(-2)
    return x.reshape(*x.shape[:-1], -1, group)


def _encode_fp4(v: torch.Tensor) -> torch.Tensor:
    codes = (v.abs().unsqueeze(-1) - E2M1).abs().argmin(-1).to(torch.uint8) | ((v < 0).to(torch.uint8) << 3)
    return codes[..., 0::2] | (codes[..., 1::2] << 4)


def _decode_fp4(packed: torch.Tensor) -> torch.Tensor:
    codes = torch.stack([packed & 0xF, packed >> 4], dim=-1).flatten(-2)
    values = E2M1[(codes & 7).long()]
    return torch.where((codes & 8) > 0, -values, values)


@torch.library.custom_op("tensor_cast::quantize", mutates_args=())
def quantize(x: torch.Tensor, fmt: str, group: int, dynamic: bool) -> tuple[torch.Tensor, torch.Tensor]:
    grouped = _groups(x.float(), group)
    amax = grouped.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12)
    scale = amax / QMAX[fmt]
    if fmt in POWER_OF_TWO_SCALES:
        scale = torch.exp2(torch.ceil(torch.log2(scale)))
    scaled = (grouped / scale).reshape(x.shape)
    if fmt == "int8":
        q = scaled.round().clamp(-128, 127).to(torch.int8)
    elif fmt == "nvfp4":
        q = _encode_fp4(scaled)
    else:
        q = scaled.clamp(-QMAX[fmt], QMAX[fmt]).to(STORAGE[fmt])
    return q, scale.reshape(_scale_shape(x, group)).to(SCALE_DTYPE[fmt])


@quantize.register_fake
def _quantize_fake(x, fmt, group, dynamic):
    shape = list(x.shape) if fmt != "nvfp4" else [*x.shape[:-1], x.shape[-1] // 2]
    return x.new_empty(shape, dtype=STORAGE[fmt]), x.new_empty(_scale_shape(x, group), dtype=SCALE_DTYPE[fmt])


def dequantize(q: torch.Tensor, scale: torch.Tensor, fmt: str, group: int) -> torch.Tensor:
    values = _decode_fp4(q) if fmt == "nvfp4" else q.float()
    grouped = _groups(values, group)
    return (grouped * scale.float().reshape(*grouped.shape[:-1], 1)).reshape(values.shape)


@torch.library.custom_op("tensor_cast::quant_linear", mutates_args=())
def quant_linear(x: torch.Tensor, x_scale: torch.Tensor | None, weights: list[torch.Tensor],
                 biases: list[torch.Tensor | None], scheme_name: str, out_dtype: torch.dtype) -> list[torch.Tensor]:
    fmt = scheme(scheme_name).activation
    xf = dequantize(x, x_scale, fmt.name, fmt.group) if fmt is not None and x_scale is not None else x.float()
    return [F.linear(xf, w.float(), b.float() if b is not None else None).to(out_dtype)
            for w, b in zip(weights, biases, strict=True)]


@quant_linear.register_fake
def _quant_linear_fake(x, x_scale, weights, biases, scheme_name, out_dtype):
    lead = x.shape[:-1]
    return [x.new_empty((*lead, w.shape[0]), dtype=out_dtype) for w in weights]


@torch.library.custom_op("tensor_cast::grouped_linear", mutates_args=())
def grouped_linear(x: torch.Tensor, weight: torch.Tensor, scheme_name: str) -> torch.Tensor:
    """x (..., G, K), weight (G·R, K) -> (..., G, R): group g multiplies rows g·R .. (g+1)·R - 1 of the
    weight (DeepSeek-V4's grouped output projection, a batched GEMM); `scheme_name` its quantization
    ("none": the model dtype; set by `quantize_linears`, a cost parameter, not part of the result)."""
    groups = x.shape[-2]
    w = weight.float().reshape(groups, -1, weight.shape[-1])
    return torch.einsum("...gk,grk->...gr", x.float(), w).to(x.dtype).contiguous()


@grouped_linear.register_fake
def _grouped_linear_fake(x, weight, scheme_name):
    return x.new_empty((*x.shape[:-1], weight.shape[0] // x.shape[-2]))
