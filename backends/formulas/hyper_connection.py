"""Cost rules for DeepSeek-V4's manifold-constrained hyper-connections (`tensor_cast::hc_pre`, `hc_post`).

T = B·S tokens, N streams of D channels, M = (2 + N)·N mixing logits per token. Each op is one fused
kernel, as engines run them (DeepSeek's TileLang mHC kernels; vLLM's and SGLang's DeepSeek-V4 paths):

- `hc_pre`: the token's N·D stream values read once (RMS norm, the (N·D -> M) projection and the
  collapse all reuse them on chip), the float32 projection weights once per call; FLOPs: the
  projection 2·N·D·M per token (TF32, below), the norm and the collapse ~2·N·D vector FLOPs each,
  the mixing `SINKHORN_FLOPS` per comb element per Sinkhorn iteration (two normalizations, each a
  sum and a divide) plus the softmax and sigmoids; written: post (N) and comb (N²) in float32 and
  the collapsed block input (D).
- `hc_post`: the block output (D), post, comb and the N streams read once; post·out + combᵀ·streams,
  2·N·D·(N + 1) vector FLOPs; the N new streams written.

The projection runs on TF32 tensor cores: DeepGEMM's `hc_prenorm_gemm` (the RMS norm folded in,
bf16 streams against the float32 weights, N = (2 + N)·N = 24 columns; its test compares against
PyTorch with TF32 allowed), which is what serving engines call — DeepSeek's reference inference code
writes the same product as a float32 `F.linear`. The streams are the residual: T·N·D
elements each way per call, N = 4 times a plain residual add's traffic — which is what makes mHC
visible in prefill. Not modelled: engines that fuse one layer's `hc_post` with the next `hc_pre`
(SGLang's fused post+pre kernel) skip one write and read of the streams; counted here as two kernels.
"""

from __future__ import annotations

import torch

from ..counts import Counts
from .registry import OpCall, register

SINKHORN_FLOPS = 4  # per comb element per iteration: two sums and two divides (rows, then columns)
MIX_FLOPS = 8  # per logit: scale, bias, sigmoid / softmax
NORM_FLOPS = 2  # per stream element: square-accumulate; the collapse: multiply-accumulate
FLOAT32 = 4


@register(torch.ops.tensor_cast.hc_pre.default, kind="norm")
def hc_pre(call: OpCall) -> Counts:
    streams, fn = call.get("streams"), call.get("fn")
    batch, seq, n, dim = streams.shape
    tokens = batch * seq
    mixes = fn.shape[0]
    iters = int(call.get("iters"))
    vector = tokens * (2 * NORM_FLOPS * n * dim + MIX_FLOPS * mixes + SINKHORN_FLOPS * iters * n * n)
    return Counts(
        flops={"tf32": 2 * tokens * n * dim * mixes, "vector": vector},
        bytes_read=streams.nbytes + fn.nbytes + call.get("base").nbytes + call.get("scale").nbytes,
        bytes_written=call.out_bytes,
        launches=1,
    )


@register(torch.ops.tensor_cast.hc_post.default, kind="norm")
def hc_post(call: OpCall) -> Counts:
    streams = call.get("streams")
    batch, seq, n, dim = streams.shape
    return Counts(
        flops={"vector": 2 * batch * seq * n * dim * (n + 1)},
        bytes_read=call.in_bytes,
        bytes_written=call.out_bytes,
        launches=1,
    )
