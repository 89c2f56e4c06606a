"""Fused kernels that serving engines launch, as ops the fusion passes produce.

- `rms_norm(x, weight, eps)`: one kernel (vLLM `rms_norm`).
- `add_rms_norm(x, residual, weight, eps) -> (normed, x + residual)`: the residual add fused into
  the norm (vLLM `fused_add_rms_norm`).
- `act_mul(gate, up, activation) -> act(gate) * up`: SiLU/GELU-and-mul (vLLM `silu_and_mul`).
- `activation(x, activation) -> act(x)`: a composite activation as one kernel (squared ReLU: vLLM's
  `ReLUSquaredActivation`, relu and square fused by its torch.compile).
- `rope(xs, cos, sin) -> xs rotated`: one kernel rotating q and k together (`rope(xs, freqs_cis, None)`
  for the complex-table form).
- `fused_linear(x, weights, biases) -> [x @ w.T + b ...]`: horizontally fused GEMM (QKV,
  gate+up): reads x once, one launch, N = sum of the weights' rows.
- `rotary_table(positions, inv_freq, scaling, dtype, paired) -> (cos, sin)`: the per-forward cos/sin
  computation that engines replace with a precomputed cache indexed inside the RoPE kernel
  (`paired`: one angle per rotated pair, not duplicated — DeepSeek-V4's interleaved RoPE tables).

Reference implementations use the common HF forms (rotate-half RoPE, weight * normed), so the
fusion passes can be checked numerically on CPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "silu": F.silu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "relu2": lambda x: F.relu(x).square(),  # squared ReLU (Nemotron-H, transformers' "relu2")
    "sigmoid": torch.sigmoid,
}


def _rms(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    h = h.to(x.dtype)
    return h * weight if weight is not None else h


@torch.library.custom_op("tensor_cast::rms_norm", mutates_args=())
def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    return _rms(x, weight, eps)


@rms_norm.register_fake
def _rms_norm_fake(x, weight, eps):
    dtype = torch.promote_types(x.dtype, weight.dtype) if weight is not None else x.dtype
    return x.new_empty(x.shape, dtype=dtype)


@torch.library.custom_op("tensor_cast::add_rms_norm", mutates_args=())
def add_rms_norm(
    x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor | None, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    summed = x + residual
    return _rms(summed, weight, eps), summed


@add_rms_norm.register_fake
def _add_rms_norm_fake(x, residual, weight, eps):
    summed_dtype = torch.promote_types(x.dtype, residual.dtype)
    out_dtype = torch.promote_types(summed_dtype, weight.dtype) if weight is not None else summed_dtype
    shape = torch.broadcast_shapes(x.shape, residual.shape)
    return x.new_empty(shape, dtype=out_dtype), x.new_empty(shape, dtype=summed_dtype)


@torch.library.custom_op("tensor_cast::activation", mutates_args=())
def activation(x: torch.Tensor, activation: str) -> torch.Tensor:
    return ACTIVATIONS[activation](x)


@activation.register_fake
def _activation_fake(x, activation):
    return torch.empty_like(x)


@torch.library.custom_op("tensor_cast::act_mul", mutates_args=())
def act_mul(gate: torch.Tensor, up: torch.Tensor, activation: str) -> torch.Tensor:
    # evaluated in float32 and written in the inputs' dtype, as the engines' kernels do (vLLM silu_and_mul)
    dtype = torch.promote_types(gate.dtype, up.dtype)
    return (ACTIVATIONS[activation](gate.float()) * up.float()).to(dtype)


@act_mul.register_fake
def _act_mul_fake(gate, up, activation):
    return gate.new_empty(torch.broadcast_shapes(gate.shape, up.shape),
                          dtype=torch.promote_types(gate.dtype, up.dtype))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


@torch.library.custom_op("tensor_cast::rope", mutates_args=())
def rope(xs: list[torch.Tensor], cos: torch.Tensor, sin: torch.Tensor | None,
         dtype: torch.dtype | None = None) -> list[torch.Tensor]:
    """`dtype`: the rotated tensors' dtype (default: x's promoted with the tables', as eager math
    gives; a family whose helper casts back, e.g. ERNIE's float32 rotation, passes x's own).
    `sin` None: `cos` is one complex table e^(i theta) (`freqs_cis`: Llama 4, DeepSeek-V2), already
    shaped to broadcast against x's consecutive pairs viewed as complex numbers, which it multiplies."""
    out = []
    for x in xs:
        if sin is None:  # the table as the helper multiplies by it: broadcastable against x's complex pairs
            pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
            out.append(torch.view_as_real(pairs * cos).flatten(-2).to(dtype or x.dtype))
            continue
        c, s = cos, sin
        while c.dim() < x.dim():  # (B, S, D) tables broadcast over the heads dim of (B, H, S, D)
            c, s = c.unsqueeze(1), s.unsqueeze(1)
        out.append((x * c + _rotate_half(x) * s).to(dtype or torch.promote_types(x.dtype, cos.dtype)))
    return out


@rope.register_fake
def _rope_fake(xs, cos, sin, dtype=None):
    if sin is None:
        return [x.new_empty(x.shape, dtype=dtype or x.dtype) for x in xs]
    return [x.new_empty(x.shape, dtype=dtype or torch.promote_types(x.dtype, cos.dtype)) for x in xs]


@torch.library.custom_op("tensor_cast::fused_linear", mutates_args=())
def fused_linear(x: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor | None]) -> list[torch.Tensor]:
    return [F.linear(x, w, b) for w, b in zip(weights, biases, strict=True)]


@fused_linear.register_fake
def _fused_linear_fake(x, weights, biases):
    return [x.new_empty((*x.shape[:-1], w.shape[0])) for w in weights]


@torch.library.custom_op("tensor_cast::rotary_table", mutates_args=())
def rotary_table(
    positions: torch.Tensor, inv_freq: torch.Tensor, scaling: float, dtype: torch.dtype, paired: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    freqs = positions.float().unsqueeze(-1) * inv_freq.float()
    emb = freqs if paired else torch.cat((freqs, freqs), dim=-1)
    return (emb.cos() * scaling).to(dtype), (emb.sin() * scaling).to(dtype)


@rotary_table.register_fake
def _rotary_table_fake(positions, inv_freq, scaling, dtype, paired=False):
    shape = (*positions.shape, (1 if paired else 2) * inv_freq.shape[0])
    return positions.new_empty(shape, dtype=dtype), positions.new_empty(shape, dtype=dtype)
