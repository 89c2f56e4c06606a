"""Manifold-constrained hyper-connections (mHC, DeepSeek-V4) as two ops.

The residual stream is N = `hc_mult` parallel streams per token, (B, S, N, D). Around each
attention and MLP block:

- `hc_pre(streams, fn, base, scale, norm_eps, hc_eps, iters) -> (post, comb, collapsed)`: the N
  streams, flattened and RMS-normalized (no weight), go through one small GEMM to (2 + N)·N mixing
  logits; `pre` = sigmoid(·) + eps collapses the streams into the block's input (B, S, D), `post`
  = 2·sigmoid(·) (B, S, N) spreads the block's output back over them, and `comb` (B, S, N, N) —
  a softmax made doubly stochastic by `iters` Sinkhorn-Knopp normalizations — mixes the streams
  into each other;
- `hc_post(out, post, comb, streams) -> streams'`: post·out + combᵀ·streams, (B, S, N, D).

As transformers' `DeepseekV4HyperConnection` and `DeepseekV4DecoderLayer` compute them (the mixing
in float32); engines run each as one fused kernel (DeepSeek's TileLang `mhc_pre` / `mhc_post`), which
is how the cost rules count them (backends/formulas/hyper_connection.py).
"""

from __future__ import annotations

import torch


@torch.library.custom_op("tensor_cast::hc_pre", mutates_args=())
def hc_pre(streams: torch.Tensor, fn: torch.Tensor, base: torch.Tensor, scale: torch.Tensor, norm_eps: float,
           hc_eps: float, iters: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """streams (B, S, N, D), fn ((2 + N)·N, N·D), base ((2 + N)·N,), scale (3,)."""
    batch, seq, n, _ = streams.shape
    flat = streams.reshape(batch, seq, -1).float()
    flat = flat * torch.rsqrt(flat.pow(2).mean(-1, keepdim=True) + norm_eps)
    mixes = torch.nn.functional.linear(flat, fn.float())
    pre_w, post_w, comb_w = mixes.split([n, n, n * n], dim=-1)
    pre_b, post_b, comb_b = base.float().split([n, n, n * n])
    pre_s, post_s, comb_s = scale.float().unbind(0)
    pre = torch.sigmoid(pre_w * pre_s + pre_b) + hc_eps
    post = 2 * torch.sigmoid(post_w * post_s + post_b)
    comb = torch.softmax(comb_w.view(batch, seq, n, n) * comb_s + comb_b.view(n, n), dim=-1) + hc_eps
    comb = comb / (comb.sum(dim=-2, keepdim=True) + hc_eps)
    for _ in range(iters - 1):
        comb = comb / (comb.sum(dim=-1, keepdim=True) + hc_eps)
        comb = comb / (comb.sum(dim=-2, keepdim=True) + hc_eps)
    collapsed = (pre.unsqueeze(-1) * streams).sum(dim=2).to(streams.dtype)
    return post, comb, collapsed


@hc_pre.register_fake
def _hc_pre_fake(streams, fn, base, scale, norm_eps, hc_eps, iters):
    batch, seq, n, dim = streams.shape
    post = streams.new_empty((batch, seq, n), dtype=torch.float32)
    comb = streams.new_empty((batch, seq, n, n), dtype=torch.float32)
    return post, comb, streams.new_empty((batch, seq, dim))


@torch.library.custom_op("tensor_cast::hc_post", mutates_args=())
def hc_post(out: torch.Tensor, post: torch.Tensor, comb: torch.Tensor, streams: torch.Tensor) -> torch.Tensor:
    """out (B, S, D), post (B, S, N), comb (B, S, N, N), streams (B, S, N, D) -> (B, S, N, D)."""
    dtype = streams.dtype
    return post.to(dtype).unsqueeze(-1) * out.unsqueeze(-2) + torch.matmul(comb.to(dtype).transpose(-1, -2), streams)


@hc_post.register_fake
def _hc_post_fake(out, post, comb, streams):
    return torch.empty_like(streams)
