"""The Mamba-2 (SSD) token mixer as one op, its grouped gated output norm, and Mamba-1's conv and scan.

`mamba2_scan(xbc, dt, conv_weight, conv_bias, A_log, D, dt_bias, num_heads, head_dim, n_groups,
state_size, chunk_size, dt_min, state_dtype, decode_query_len) -> (B, S, H·P)` covers what serving
engines run between the input projection and the gated norm (vLLM's `MambaMixer2`, the mamba_ssm
kernels):

1. the short causal depthwise conv1d (kernel K, with bias) over the x / B / C channels
   (H·P + 2·G·N), with SiLU (`causal_conv1d_fn` / `causal_conv1d_update`);
2. the discretization: dt = max(softplus(dt + dt_bias), dt_min) per token and head, A = -exp(A_log);
3. the selective scan over a recurrent state of P·N values per head (B and C shared by the H/G
   heads of a group): S ← exp(dt·A)·S + dt·x·Bᵀ;  y = S·C + D·x.

The state is the layer's whole memory of the past. `state_dtype` is the dtype engines store it in
(the checkpoint's `mamba_ssm_cache_dtype`, float32 for Nemotron 3); `chunk_size` is the chunked
scan's (`chunk_size` in the config); `decode_query_len` is the largest step (tokens per sequence)
engines run with the recurrent kernel (`selective_state_update`), longer ones use the chunked scan
(`mamba_chunk_scan_combined`). Neither changes the result, only the cost.

`gated_rms_norm(x, gate, weight, group_size, eps) -> weight · rmsnorm_groups(x · silu(gate))`: the
output norm of Mamba-2 layers (transformers' `...RMSNormGated`, vLLM's `Mixer2RMSNormGated`: one
kernel), normalizing each group of `group_size` channels on its own.

Mamba-1 (Jamba's mixer, vLLM's `MambaMixer`) computes its B, C and time step from the conv output
(`x_proj`, then `dt_proj`, both plain linears in the graph), so its conv and scan are two ops:
`mamba1_conv(x, conv_weight, conv_bias) -> silu(causal depthwise conv1d(x))` over the D inner channels
(`causal_conv1d_fn` / `causal_conv1d_update`), and `mamba1_scan(x, dt, A_log, B, C, D, z, dt_bias,
state_dtype, decode_query_len) -> (B, S, D)`: dt = softplus(dt + dt_bias) per token and channel, A =
-exp(A_log) (D, N), the state of N values per channel S <- exp(dt·A)·S + dt·x·B, y = (S·C + D·x)·silu(z)
(mamba_ssm's `selective_scan_fn` in prefill, `selective_state_update` in decode, the gate z fused).

The reference implementations run the recurrences token by token from a zero state (the cached state
is modelled by the cost rule, not materialized).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.library.custom_op("tensor_cast::mamba2_scan", mutates_args=())
def mamba2_scan(
    xbc: torch.Tensor,
    dt: torch.Tensor,
    conv_weight: torch.Tensor,
    conv_bias: torch.Tensor | None,
    A_log: torch.Tensor,
    D: torch.Tensor,
    dt_bias: torch.Tensor,
    num_heads: int,
    head_dim: int,
    n_groups: int,
    state_size: int,
    chunk_size: int,
    dt_min: float,
    state_dtype: torch.dtype,
    decode_query_len: int,
) -> torch.Tensor:
    """xbc (B, S, H·P + 2·G·N) before the conv, dt (B, S, H), conv_weight (channels, 1, K)."""
    batch, seq, channels = xbc.shape
    kernel = conv_weight.shape[-1]
    bias = conv_bias.float() if conv_bias is not None else None
    conv = F.conv1d(xbc.float().transpose(1, 2), conv_weight.float(), bias, padding=kernel - 1, groups=channels)
    conv = F.silu(conv[..., :seq]).transpose(1, 2)
    width = num_heads * head_dim
    x, b, c = conv.split([width, n_groups * state_size, n_groups * state_size], dim=-1)
    x = x.reshape(batch, seq, num_heads, head_dim)
    rep = num_heads // n_groups
    b = b.reshape(batch, seq, n_groups, state_size).repeat_interleave(rep, dim=2)
    c = c.reshape(batch, seq, n_groups, state_size).repeat_interleave(rep, dim=2)
    step = F.softplus(dt.float() + dt_bias.float()).clamp(min=dt_min)  # (B, S, H)
    decay = torch.exp(step * -A_log.float().exp())
    state = x.new_zeros(batch, num_heads, head_dim, state_size)
    out = []
    for t in range(seq):
        update = torch.einsum("bhp,bhn->bhpn", x[:, t] * step[:, t, :, None], b[:, t])
        state = state * decay[:, t, :, None, None] + update
        out.append(torch.einsum("bhpn,bhn->bhp", state, c[:, t]) + D.float()[:, None] * x[:, t])
    return torch.stack(out, dim=1).reshape(batch, seq, width).to(xbc.dtype)


@mamba2_scan.register_fake
def _mamba2_scan_fake(xbc, dt, conv_weight, conv_bias, A_log, D, dt_bias, num_heads, head_dim, n_groups, state_size,
                      chunk_size, dt_min, state_dtype, decode_query_len):
    batch, seq, _ = xbc.shape
    return xbc.new_empty((batch, seq, num_heads * head_dim))


@torch.library.custom_op("tensor_cast::gated_rms_norm", mutates_args=())
def gated_rms_norm(x: torch.Tensor, gate: torch.Tensor, weight: torch.Tensor, group_size: int,
                   eps: float) -> torch.Tensor:
    """x and gate (..., C), weight (C,): groups of `group_size` channels normalized apart."""
    h = x.float() * F.silu(gate.float())
    shape = h.shape
    grouped = h.reshape(*shape[:-1], shape[-1] // group_size, group_size)
    grouped = grouped * torch.rsqrt(grouped.pow(2).mean(-1, keepdim=True) + eps)
    return weight * grouped.reshape(shape).to(x.dtype)


@gated_rms_norm.register_fake
def _gated_rms_norm_fake(x, gate, weight, group_size, eps):
    return x.new_empty(x.shape, dtype=torch.promote_types(x.dtype, weight.dtype))


@torch.library.custom_op("tensor_cast::mamba1_conv", mutates_args=())
def mamba1_conv(x: torch.Tensor, conv_weight: torch.Tensor, conv_bias: torch.Tensor | None) -> torch.Tensor:
    """x (B, S, D), conv_weight (D, 1, K): SiLU of the causal depthwise conv, (B, S, D)."""
    seq, channels, kernel = x.shape[1], x.shape[2], conv_weight.shape[-1]
    bias = conv_bias.float() if conv_bias is not None else None
    conv = F.conv1d(x.float().transpose(1, 2), conv_weight.float(), bias, padding=kernel - 1, groups=channels)
    return F.silu(conv[..., :seq]).transpose(1, 2).to(x.dtype)


@mamba1_conv.register_fake
def _mamba1_conv_fake(x, conv_weight, conv_bias):
    return torch.empty_like(x)


@torch.library.custom_op("tensor_cast::mamba1_scan", mutates_args=())
def mamba1_scan(x: torch.Tensor, dt: torch.Tensor, A_log: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                D: torch.Tensor, z: torch.Tensor, dt_bias: torch.Tensor, state_dtype: torch.dtype,
                decode_query_len: int) -> torch.Tensor:
    """x, dt, z (B, S, D); A_log (D, N); B, C (B, S, N); D, dt_bias (D,): the gated scan output (B, S, D)."""
    step = F.softplus(dt.float() + dt_bias.float())  # (B, S, D)
    a = -A_log.float().exp()  # (D, N)
    xs, bs, cs = x.float(), B.float(), C.float()
    state = xs.new_zeros(x.shape[0], x.shape[2], A_log.shape[1])
    out = []
    for t in range(x.shape[1]):
        state = torch.exp(step[:, t, :, None] * a) * state + (step[:, t] * xs[:, t])[..., None] * bs[:, t, None, :]
        out.append((state * cs[:, t, None, :]).sum(-1) + D.float() * xs[:, t])
    y = torch.stack(out, dim=1) * F.silu(z.float())
    return y.to(x.dtype)


@mamba1_scan.register_fake
def _mamba1_scan_fake(x, dt, A_log, B, C, D, z, dt_bias, state_dtype, decode_query_len):
    return torch.empty_like(x)
