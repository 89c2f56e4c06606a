"""The KV-cache append of a prefill as vLLM launches it: rounds of resident thread blocks on the SMs.

Owns the launch arithmetic of vLLM's `reshape_and_cache_flash` (csrc/cache_kernels.cu), the kernel
that writes a step's new keys and values into the paged cache before FlashAttention / FlashInfer
read it: `grid(num_tokens)`, `block(min(num_kv_heads * head_size, 512))`, one thread block per new
token whatever its K/V width. A block does little (a slot lookup, one row of K and V copied), so its
lifetime is mostly latency, and the kernel takes as many such lifetimes as there are rounds of blocks
resident on the SMs at once: min(blocks per SM, threads per SM / block threads) each (CUDA compute
capability 9.0 and 10.0: 32 blocks, 2,048 threads). A 512-thread block (8 KV heads of 64, 4 of 128 or
more) leaves 4 resident per SM, a 64-thread one 32: 8x the rounds for the same tokens. Which is why
the tables time 65,536 tokens of 32 query heads on 8 KV heads of 64 (window 128) at 1.05 ms and on 4
KV heads at 0.70 ms, while 8 -> 32 KV heads, the same 512 threads, adds 0.21 ms of bytes.

`backends/efficiency.py` turns the rounds into time (`attention_prefill_append_block_us` each); this
module reads no profile and produces no seconds.
"""

from __future__ import annotations

from typing import Any

import sympy

from ..sizes import as_expr, smin
from .kernels import AttentionShape


def append_threads(shape: AttentionShape, max_threads: int) -> Any:
    """Threads of one append block: min(KV heads x head_dim, max_threads) (vLLM's 512)."""
    return smin(shape.kv_heads * shape.head_dim, max_threads)


def append_resident(threads: Any, sm_threads: int, sm_blocks: int) -> Any:
    """Append blocks resident on one SM at once: min(sm_blocks, floor(sm_threads / threads))."""
    if isinstance(threads, int):
        return min(sm_blocks, sm_threads // threads)
    return smin(sm_blocks, sympy.floor(sm_threads / as_expr(threads)))


def append_rounds(shape: AttentionShape, sms: int, max_threads: int, sm_threads: int, sm_blocks: int) -> Any:
    """Rounds of resident append blocks the new tokens (B x S, one block each) take on `sms` SMs (a
    fractional count: the last round's share)."""
    if max_threads <= 0 or sm_threads <= 0 or sm_blocks <= 0 or sms <= 0:
        raise ValueError(f"append limits must be positive: max_threads {max_threads}, SM threads {sm_threads}, "
                         f"SM blocks {sm_blocks}, SMs {sms}")
    threads = append_threads(shape, max_threads)
    if isinstance(threads, int) and threads > sm_threads:
        raise ValueError(f"an append block of {threads} threads does not fit an SM of {sm_threads}")
    return shape.batch * shape.q_len / (sms * append_resident(threads, sm_threads, sm_blocks))
