"""Linear attention as one op each: the gated DeltaNet token mixer (Qwen3-Next, Qwen3.5) and
Kimi Delta Attention (Kimi-Linear).

`gated_delta_net(mixed_qkv, a, b, conv_weight, A_log, dt_bias, num_k_heads, head_k_dim,
num_v_heads, head_v_dim, decode_query_len) -> (B, S, Hv, dv)` covers what serving engines run
between the input projections and the gated output norm:

1. the short causal depthwise conv1d (kernel K) over the concatenated q/k/v channels, with SiLU;
2. the gating: g = -exp(A_log)·softplus(a + dt_bias) (per-token decay), beta = sigmoid(b);
3. the gated delta rule over a recurrent state of Hv·dk·dv values per sequence (q and k
   L2-normalized, key heads shared by Hv/Hk value heads):
   S ← exp(g)·S;  S ← S + k·(beta·(v − Sᵀk))ᵀ;  o = Sᵀq·dk^-½.

The state is the layer's whole memory of the past: no KV cache grows with the context.
`decode_query_len` is the largest step (tokens per sequence) engines run with the recurrent
kernel; longer steps use the chunked (WY) form. It changes the cost, not the result.

`kimi_delta_attention(q, k, v, g, b, conv_weight, A_log, dt_bias, num_heads, head_dim,
decode_query_len) -> (B, S, H, d)` is Kimi Delta Attention (KDA), the gated delta rule with a
*per-channel* decay: q, k, v (B, S, H·d each, from three projections) run the same short conv
(one depthwise kernel per channel of their concatenation) with SiLU, q and k are L2-normalized,
g = -exp(A_log)·softplus(g + dt_bias) is one decay per head *and key channel* (the low-rank forget
gate's output, H·d per token), beta = sigmoid(b) per head, and the state update decays each row of
S by its own channel: S ← diag(exp(g))·S; S ← S + k·(beta·(v − Sᵀk))ᵀ; o = Sᵀq·d^-½ (transformers'
`recurrent_kimi_delta_attention`, flash-linear-attention's `fused_recurrent_kda` / `chunk_kda`).

The reference implementations run the recurrence token by token from a zero state (the cached
state is modelled by the cost rules, not materialized).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.library.custom_op("tensor_cast::gated_delta_net", mutates_args=())
def gated_delta_net(
    mixed_qkv: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    conv_weight: torch.Tensor,
    A_log: torch.Tensor,
    dt_bias: torch.Tensor,
    num_k_heads: int,
    head_k_dim: int,
    num_v_heads: int,
    head_v_dim: int,
    decode_query_len: int,
) -> torch.Tensor:
    """mixed_qkv (B, S, 2·Hk·dk + Hv·dv), a and b (B, S, Hv), conv_weight (channels, 1, K)."""
    batch, seq, _ = mixed_qkv.shape
    x = _short_conv(mixed_qkv, conv_weight)
    key_dim = num_k_heads * head_k_dim
    q, k, v = x.split([key_dim, key_dim, num_v_heads * head_v_dim], dim=-1)
    rep = num_v_heads // num_k_heads
    q = F.normalize(q.reshape(batch, seq, num_k_heads, head_k_dim), dim=-1).repeat_interleave(rep, dim=2)
    k = F.normalize(k.reshape(batch, seq, num_k_heads, head_k_dim), dim=-1).repeat_interleave(rep, dim=2)
    v = v.reshape(batch, seq, num_v_heads, head_v_dim)
    g = -A_log.float().exp() * F.softplus(a.float() + dt_bias.float())
    return _delta_rule(q, k, v, g.unsqueeze(-1), torch.sigmoid(b.float())).to(mixed_qkv.dtype)


def _short_conv(mixed: torch.Tensor, conv_weight: torch.Tensor) -> torch.Tensor:
    """The causal depthwise conv1d (kernel K, one per channel) over (B, S, C) and SiLU, in float32."""
    seq, channels, kernel = mixed.shape[1], mixed.shape[2], conv_weight.shape[-1]
    x = F.conv1d(mixed.float().transpose(1, 2), conv_weight.float(), padding=kernel - 1, groups=channels)
    return F.silu(x[..., :seq]).transpose(1, 2)


def _delta_rule(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, decay: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """The gated delta rule token by token from a zero state: q, k (B, S, H, dk), v (B, S, H, dv), the
    log-decay (B, S, H, 1) per head or (B, S, H, dk) per key channel, beta (B, S, H) -> (B, S, H, dv)."""
    batch, seq, heads, dk = k.shape
    state = q.new_zeros(batch, heads, dk, v.shape[-1])
    out = []
    for t in range(seq):
        state = state * decay[:, t].exp()[..., None]  # row i of S (key channel i) by its decay
        delta = (v[:, t] - torch.einsum("bhkv,bhk->bhv", state, k[:, t])) * beta[:, t, :, None]
        state = state + torch.einsum("bhk,bhv->bhkv", k[:, t], delta)
        out.append(torch.einsum("bhkv,bhk->bhv", state, q[:, t] * dk**-0.5))
    return torch.stack(out, dim=1)


@gated_delta_net.register_fake
def _gated_delta_net_fake(mixed_qkv, a, b, conv_weight, A_log, dt_bias, num_k_heads, head_k_dim, num_v_heads,
                          head_v_dim, decode_query_len):
    batch, seq, _ = mixed_qkv.shape
    return mixed_qkv.new_empty((batch, seq, num_v_heads, head_v_dim))


@torch.library.custom_op("tensor_cast::kimi_delta_attention", mutates_args=())
def kimi_delta_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    b: torch.Tensor,
    conv_weight: torch.Tensor,
    A_log: torch.Tensor,
    dt_bias: torch.Tensor,
    num_heads: int,
    head_dim: int,
    decode_query_len: int,
) -> torch.Tensor:
    """q, k, v and g (B, S, H·d), b (B, S, H), conv_weight (3·H·d, 1, K) over cat(q, k, v)."""
    batch, seq, width = q.shape
    x = _short_conv(torch.cat([q, k, v], dim=-1), conv_weight)
    shape = (batch, seq, num_heads, head_dim)
    qs, ks, vs = (t.reshape(shape) for t in x.split([width] * 3, dim=-1))
    qs, ks = F.normalize(qs, dim=-1), F.normalize(ks, dim=-1)
    decay = -A_log.float().reshape(1, 1, num_heads, 1).exp() * F.softplus(
        g.float().reshape(shape) + dt_bias.float().reshape(num_heads, head_dim))
    return _delta_rule(qs, ks, vs, decay, torch.sigmoid(b.float())).to(q.dtype)


@kimi_delta_attention.register_fake
def _kimi_delta_attention_fake(q, k, v, g, b, conv_weight, A_log, dt_bias, num_heads, head_dim, decode_query_len):
    batch, seq, _ = q.shape
    return q.new_empty((batch, seq, num_heads, head_dim))
