"""The attention shape models: how close an attention-kind kernel of a given shape gets to the peaks.

Owns `attention_efficiency(base, counts, profile)`, which `efficiency.SHAPE_MODELS` calls for every
op of kind `attention`: FlashAttention prefill and decode over `AttentionShape` (FlashAttention-3's
tiles, split-KV, window blocks and the cache append's block rounds: `attention_tiles.py`,
`attention_append.py`), and the variants that carry another shape — MLA on the latent
(`MLAShape`), DeepSeek sparse attention and its indexer (`IndexerShape`), gated DeltaNet
(`DeltaNetShape`). The keys it reads (`attention_*`, `mla_*`, `dsa_*`, `gdn_*`), their bounds,
defaults and what each means are in `efficiency.py`'s key table and docstring, which stay the
one place a profile's `[efficiency]` table is validated against; this module holds the models
that read them (split out of `efficiency.py` when the section passed ~390 lines).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import sympy

from ..sizes import cdiv, smax, smin
from .attention_append import append_rounds
from .attention_tiles import (
    FA3_MAX_SPLIT_BATCH,
    decode_tiles,
    fa3_one_wg,
    fa3_prefill_tile,
    fa3_runs,
    prefill_tiles,
    split_gate,
)
from .counts import Counts
from .efficiency import TENSOR_PRECISIONS, Efficiency, param
from .kernels import AttentionShape, DeltaNetShape, IndexerShape, MLAShape

if TYPE_CHECKING:
    from .device import DeviceProfile

KV_SPLIT_BLOCK = 128  # keys per split-KV block of a decode kernel (FlashAttention-3's n-block at d <= 128)


def _kv_key(shape: AttentionShape, table: Mapping[str, Any], name: str, default: Any) -> Any:
    """attention_fp8kv_<name> for a kernel reading an 8-bit KV cache when the section has it, else
    attention_<name>."""
    if shape.kv_itemsize == 1 and f"attention_fp8kv_{name}" in table:
        return table[f"attention_fp8kv_{name}"]
    return table.get(f"attention_{name}", default)


def _kv_variant(base: Efficiency, shape: AttentionShape, table: Mapping[str, Any]) -> Efficiency:
    """An 8-bit KV cache runs a different kernel path (dequantizing K/V in the main loop): its own
    compute / memory fractions and latencies where the section calibrates them."""
    if shape.kv_itemsize != 1 or not any(k.startswith("attention_fp8kv_") for k in table):
        return base
    compute = _kv_key(shape, table, "compute", base.compute)
    return replace(base, compute=compute, memory=_kv_key(shape, table, "memory", base.memory),
                   by_precision=MappingProxyType({p: compute for p in base.by_precision}),
                   latency_s=_kv_key(shape, table, "latency_us", base.latency_s * 1e6) * 1e-6,
                   memory_latency_s=_kv_key(shape, table, "memory_latency_us", base.memory_latency_s * 1e6) * 1e-6)


def attention_efficiency(base: Efficiency, counts: Counts, profile: DeviceProfile) -> Efficiency:
    """FlashAttention over (B, H, S, D) queries (`AttentionShape`); other attention-kind kernels
    (MLA on the latent, gated DeltaNet, the DSA indexer) return no shape and keep the kind's base.

    The Graham tail of the longest CTA (`attention_tail`) and, where the section has it, the
    minimum time of a CTA (`attention_cta_us`): W work items (one per sequence, KV head and
    q-block; GQA heads share a KV head's item) on the SMs run at least ceil(W / SMs) of them one
    after another, so the memory path takes at least that long (applied as a lower bandwidth
    fraction)."""
    shape = counts.kernel
    if isinstance(shape, MLAShape):
        return _mla_efficiency(base, shape, profile.efficiency)
    if isinstance(shape, DeltaNetShape):
        return _gdn_efficiency(base, counts, shape, profile)
    if isinstance(shape, IndexerShape):
        return _indexer_efficiency(base, counts, shape, profile)
    if not isinstance(shape, AttentionShape):
        return base
    base = _kv_variant(base, shape, profile.efficiency)
    if "attention_prefill_compute" in profile.efficiency:
        decode = _flash_efficiency(base, counts, shape, profile)
        prefill = smin(1, shape.q_len - 1)  # 0 for one query per sequence (the decode kernel), else 1
        if isinstance(prefill, int) and prefill == 0:
            return decode
        tiled = _prefill_efficiency(base, counts, shape, profile)
        if isinstance(prefill, int):
            return tiled
        return _blend(decode, tiled, prefill)
    return _flash_efficiency(base, counts, shape, profile)


def _mla_key(shape: MLAShape, table: Mapping[str, Any], name: str, default: Any) -> Any:
    """attention_fp8kv_mla_<name> for an 8-bit latent cache when the section has it, else attention_mla_<name>."""
    if shape.kv_itemsize == 1 and f"attention_fp8kv_mla_{name}" in table:
        return table[f"attention_fp8kv_mla_{name}"]
    return table.get(f"attention_mla_{name}", default)


def _dsa_key(shape: MLAShape, table: Mapping[str, Any], name: str, default: Any) -> Any:
    """attention_fp8kv_dsa_<name> for an 8-bit latent cache when the section has it, else attention_dsa_<name>."""
    if shape.kv_itemsize == 1 and f"attention_fp8kv_dsa_{name}" in table:
        return table[f"attention_fp8kv_dsa_{name}"]
    return table.get(f"attention_dsa_{name}", default)


def _dsa_efficiency(base: Efficiency, shape: MLAShape, table: Mapping[str, Any]) -> Efficiency:
    """Sparse MLA (DeepSeek sparse attention over the indexer's top-k, absorbed at every step length)
    as an engine runs it, in a section with `attention_dsa_*` keys: the core at
    `attention_dsa_{compute,memory}`, plus per call `attention_dsa_latency_us`, per new token
    `attention_dsa_token_ns` and per new token and local head `attention_dsa_head_token_ns` (the
    absorb GEMMs and the kernel's walk over the top-k slots: FlashMLA's fp8 sparse decode visits
    every slot, filled or not). A prefill step (more tokens per sequence than a decode) has its own
    `attention_dsa_prefill_{compute,latency_us,token_ns,head_token_ns}` (FlashMLA's sparse prefill
    kernel; with an 8-bit cache vLLM first gathers and dequantizes the top-k latents), each
    falling back to the decode value; `attention_fp8kv_dsa_*` override them for an 8-bit latent
    cache. A symbolic step length blends the two field by field.

    Kernel constraints the engine works around (vLLM's FlashMLA sparse backend): the kernels take
    whole tiles of query heads, so the local heads are padded up to a multiple of
    `attention_dsa_head_pad` (64 on Hopper, 128 on Blackwell for the bf16 kernel; the fp8 decode
    kernel takes 64 or 128) from `attention_dsa_pad_min_heads` local heads on (below it another
    backend without padding runs: FlashInfer's sparse MLA on Blackwell): the core runs at
    heads / padded of its fraction and the per-head cost counts the padded heads. With an 8-bit
    cache, a prefill with fewer than `attention_fp8kv_dsa_prefill_min_heads` local heads runs the
    fp8 decode kernel over all its tokens (vLLM's mixed-batch mode, MIN_HEADS_FOR_BF16_PREFILL),
    i.e. the decode values."""
    heads = shape.heads
    pad = _dsa_key(shape, table, "head_pad", 0)
    padded = cdiv(heads, int(pad)) * int(pad) if pad and heads >= _dsa_key(shape, table, "pad_min_heads", 0) else heads

    def form(prefix: str) -> Efficiency:
        def get(name: str, default: Any) -> Any:
            return _dsa_key(shape, table, f"{prefix}{name}", _dsa_key(shape, table, name, default))

        compute = get("compute", base.compute) * heads / padded
        latency_us = (get("latency_us", base.latency_s * 1e6) + get("token_ns", 0.0) * 1e-3 * shape.tokens
                      + get("head_token_ns", 0.0) * 1e-3 * shape.tokens * padded)
        return replace(base, compute=compute, memory=_dsa_key(shape, table, "memory", base.memory),
                       by_precision=MappingProxyType({p: compute for p in base.by_precision}),
                       latency_s=latency_us * 1e-6)

    decode = form("")
    if shape.short_step in (True, sympy.true):
        return decode
    prefill = decode if heads < _dsa_key(shape, table, "prefill_min_heads", 0) else form("prefill_")
    if shape.short_step in (False, sympy.false):
        return prefill
    return _blend(decode, prefill, sympy.Piecewise((0, shape.short_step), (1, True)))


def _indexer_efficiency(base: Efficiency, counts: Counts, shape: IndexerShape, profile: DeviceProfile) -> Efficiency:
    """The DeepSeek sparse-attention indexer as an engine runs it (sections with
    `attention_dsa_indexer_*` keys; others keep the attention base): the logits GEMM at
    `attention_dsa_indexer_compute` of the peak; the bytes (queries, head weights, cached keys,
    logits written and read back by the top-k) at `attention_dsa_indexer_memory`, the cached keys
    counted at the engine's cache layout, `attention_dsa_indexer_key_bytes` per token (vLLM: 128
    fp8 values and one fp32 scale), instead of the traced cache dtype's (applied as the memory
    fraction of the counted bytes); plus `attention_dsa_indexer_latency_us` per call (the chain:
    RoPE, quantization, cache insert, logits, top-k) and `attention_dsa_indexer_token_ns` per new
    token (one top-k row each). `attention_dsa_indexer_call_floor_us`: an eagerly launched call
    takes at least this long (the host-side work of the indexer's launch path); a CUDA-graph
    replay does not pay it."""
    table = profile.efficiency
    if not any(k.startswith("attention_dsa_indexer_") for k in table):
        return base
    compute = table.get("attention_dsa_indexer_compute", base.compute)
    memory = table.get("attention_dsa_indexer_memory", base.memory)
    key_bytes = table.get("attention_dsa_indexer_key_bytes")
    if key_bytes and counts.bytes:
        engine_bytes = counts.bytes - shape.key_bytes + shape.cached_tokens * key_bytes
        memory = memory * counts.bytes / engine_bytes
    latency_us = (table.get("attention_dsa_indexer_latency_us", base.latency_s * 1e6)
                  + table.get("attention_dsa_indexer_token_ns", 0.0) * 1e-3 * shape.tokens)
    return replace(base, compute=compute, by_precision=MappingProxyType({p: compute for p in TENSOR_PRECISIONS}),
                   memory=memory, memory_latency_s=0, latency_s=latency_us * 1e-6,
                   call_floor_s=table.get("attention_dsa_indexer_call_floor_us", 0.0) * 1e-6)


def _mla_efficiency(base: Efficiency, shape: MLAShape, table: Mapping[str, Any]) -> Efficiency:
    """Multi-head latent attention as an engine runs it (sections with `attention_mla_*` keys; others
    keep the attention base). The absorbed form (the decode kernel over the latent) at
    `attention_mla_{compute,memory}` plus a fixed GPU cost per call (`attention_mla_latency_us`: the
    chain of small kernels around the core inside a CUDA graph), a cost per new token
    (`attention_mla_token_ns`: RoPE, the latent cache append, the query's copies and quantization)
    and per new token and local head (`attention_mla_head_token_ns`: the per-head batched GEMMs
    q_nope·W_UK / ·W_UV and the transposes around them). The expanded form (prefill: kv_b
    up-projection, key assembly, multi-head attention) has its own `attention_mla_prefill_{compute,
    latency_us,token_ns,head_token_ns}` (the per-head cost there: the up-projected keys and values
    written and read). `attention_fp8kv_mla_*` override them for an 8-bit latent cache. A symbolic
    form (a step of symbolic length) blends the two field by field."""
    if not any(k.startswith(("attention_mla_", "attention_fp8kv_mla_")) for k in table):
        return base
    if shape.sparse and shape.absorbed is True and any(
            k.startswith(("attention_dsa_", "attention_fp8kv_dsa_")) and not k.startswith("attention_dsa_indexer_")
            for k in table):
        return _dsa_efficiency(base, shape, table)

    def form(prefix: str, default_compute: Any) -> Efficiency:
        compute = _mla_key(shape, table, f"{prefix}compute", default_compute)
        latency_us = (_mla_key(shape, table, f"{prefix}latency_us", base.latency_s * 1e6)
                      + _mla_key(shape, table, f"{prefix}token_ns", 0.0) * 1e-3 * shape.tokens
                      + _mla_key(shape, table, f"{prefix}head_token_ns", 0.0) * 1e-3 * shape.tokens * shape.heads)
        return replace(base, compute=compute, memory=_mla_key(shape, table, "memory", base.memory),
                       by_precision=MappingProxyType({p: compute for p in base.by_precision}),
                       latency_s=latency_us * 1e-6)

    absorbed = form("", base.compute)
    if shape.absorbed in (True, sympy.true):
        return absorbed
    expanded = form("prefill_", absorbed.compute)
    if shape.absorbed in (False, sympy.false):
        return expanded
    return _blend(absorbed, expanded, sympy.Piecewise((0, shape.absorbed), (1, True)))


def _gdn_efficiency(base: Efficiency, counts: Counts, shape: DeltaNetShape, profile: DeviceProfile) -> Efficiency:
    """Gated DeltaNet as an engine runs it (sections with `attention_gdn_*` keys; others keep the
    attention base). The scan runs one CTA per (sequence, value head): W = B·Hv work items in
    ceil(W / SMs) waves.

    Chunked (prefill): a CTA walks its ceil(S / chunk) chunks one after another, each at
    `attention_gdn_chunk_compute` of one SM's share of the tensor-core peak, so the scan takes
    waves x chunks x chunk_flops x SMs / (peak x fraction) — applied as the compute fraction
    fraction x W / (waves x SMs), the share of the waves' SM slots that hold a CTA — plus
    `attention_gdn_chunk_cta_us` per wave (state load and store) and `attention_gdn_chunk_latency_us`
    per call. The conv and the scan's I/O stream `DeltaNetShape.fused_bytes` at
    `attention_gdn_chunk_memory` of HBM (applied as the memory fraction of the counted bytes, which
    are the unfused kernels') and add to the scan (overlap 1: the conv is its own kernel).
    Recurrent (decode): memory-bound on the state, the conv and the I/O (the counted bytes) at
    `attention_gdn_recurrent_memory`, at least `attention_gdn_recurrent_cta_us` per wave, plus
    `attention_gdn_recurrent_latency_us`. A symbolic form blends the two field by field."""
    table = profile.efficiency
    if not any(k.startswith("attention_gdn_") for k in table):
        return base
    sms = profile.compute_units
    items = shape.sequences * shape.v_heads
    waves = cdiv(items, sms)

    def chunked() -> Efficiency:
        compute = table.get("attention_gdn_chunk_compute", base.compute) * items / (waves * sms)
        memory = table.get("attention_gdn_chunk_memory", base.memory) * counts.bytes / shape.fused_bytes
        latency_us = table.get("attention_gdn_chunk_latency_us", 0.0) + table.get("attention_gdn_chunk_cta_us", 0.0) * waves
        return replace(base, compute=compute, by_precision=MappingProxyType({p: compute for p in TENSOR_PRECISIONS}),
                       memory=memory, memory_latency_s=0, latency_s=latency_us * 1e-6, overlap=1)

    def recurrent() -> Efficiency:
        memory = table.get("attention_gdn_recurrent_memory", base.memory)
        cta_us = table.get("attention_gdn_recurrent_cta_us", 0.0)
        if cta_us and counts.bytes:
            streaming = counts.bytes / (profile.memory_bandwidth_gbps * 1e9 * memory)
            memory = memory * streaming / smax(streaming, cta_us * 1e-6 * waves)
        return replace(base, memory=memory, memory_latency_s=0, overlap=0,
                       latency_s=table.get("attention_gdn_recurrent_latency_us", 0.0) * 1e-6)

    if shape.recurrent in (True, sympy.true):
        return recurrent()
    if shape.recurrent in (False, sympy.false):
        return chunked()
    return _blend(recurrent(), chunked(), sympy.Piecewise((0, shape.recurrent), (1, True)))


def _blend(decode: Efficiency, prefill: Efficiency, weight: Any) -> Efficiency:
    """decode · (1 - weight) + prefill · weight, field by field (weight 0 or 1 at every integer size)."""
    def mix(a: Any, b: Any) -> Any:
        return a * (1 - weight) + b * weight

    return replace(decode, compute=mix(decode.compute, prefill.compute), memory=mix(decode.memory, prefill.memory),
                   latency_s=mix(decode.latency_s, prefill.latency_s),
                   memory_latency_s=mix(decode.memory_latency_s, prefill.memory_latency_s),
                   overlap=decode.overlap if decode.overlap == prefill.overlap else mix(decode.overlap, prefill.overlap),
                   by_precision=MappingProxyType({p: mix(v, prefill.by_precision.get(p, v))
                                                  for p, v in decode.by_precision.items()}))


def _window_cta_us(shape: AttentionShape, table: Mapping[str, Any], name: str) -> Any:
    """The extra time of a CTA of FlashAttention's sliding-window (local) kernel, which runs only while
    the keys outnumber the window (FA3's flash_api.cpp drops a window >= seqlen_k): 0 otherwise."""
    extra = _kv_key(shape, table, name, 0.0)
    if shape.window <= 0 or not extra:
        return 0.0
    return extra * smin(1, smax(0, shape.keys - shape.window))


def window_runs(shape: AttentionShape) -> Any:
    """1 when the sliding-window (local) kernel runs, 0 when it does not (symbolic-safe): FlashAttention
    drops a window that covers every key (FA3's flash_api.cpp: window_size_left >= max_seqlen_k - 1, with
    vLLM's window_size_left = W - 1) and runs its causal kernel, causal tile and all."""
    if shape.window <= 0:
        return 0
    return smin(1, smax(0, shape.keys - shape.window))


def _prefill_efficiency(base: Efficiency, counts: Counts, shape: AttentionShape, profile: DeviceProfile) -> Efficiency:
    """The prefill kernel FlashAttention runs for the shape: its local (sliding-window) kernel while the
    window is shorter than the keys, else its causal one over the whole prompt (`window_runs`); the causal
    one on FA3's one-MMA-warpgroup tile for a short prompt (`attention_tiles.fa3_one_wg`)."""
    local = window_runs(shape)
    causal = _causal_kernel(base, counts, replace(shape, window=0), profile)
    if isinstance(local, int):
        return _prefill_kernel(base, counts, shape, profile) if local else causal
    return _blend(causal, _prefill_kernel(base, counts, shape, profile), local)


def _causal_kernel(base: Efficiency, counts: Counts, shape: AttentionShape, profile: DeviceProfile) -> Efficiency:
    """The causal kernel, on FA3's one-MMA-warpgroup tile where it runs (symbolic-safe blend)."""
    table = profile.efficiency
    if not (table.get("attention_fa3_tiles", 0) and fa3_runs(shape)):
        return _prefill_kernel(base, counts, shape, profile)
    pack = bool(table.get("attention_prefill_pack_gqa", 0))
    one_wg = fa3_one_wg(shape, pack)
    if isinstance(one_wg, int):
        return _prefill_kernel(base, counts, shape, profile, one_wg=bool(one_wg))
    return _blend(_prefill_kernel(base, counts, shape, profile),
                  _prefill_kernel(base, counts, shape, profile, one_wg=True), one_wg)


def _append_rounds(shape: AttentionShape, table: Mapping[str, Any], sms: int) -> Any:
    """Rounds of the cache append's resident thread blocks (`attention_append.append_rounds`), 0 in a
    section without `attention_append_threads` (vLLM's block cap)."""
    cap = int(table.get("attention_append_threads", 0))
    if not cap:
        return 0
    return append_rounds(shape, sms, cap, int(table.get("attention_sm_threads", 2048)),
                         int(table.get("attention_sm_blocks", 32)))


def _prefill_kernel(base: Efficiency, counts: Counts, shape: AttentionShape, profile: DeviceProfile,
                    one_wg: bool = False) -> Efficiency:
    """The tiled prefill kernel: time = padded tiles (each with its unhidden softmax per score) + tail x
    the longest CTA at the prefill compute fraction, plus latency, a cost per CTA (over the SMs), per
    new token and KV head (the cache append) and per new token and query head (an 8-bit cache's query
    quantization); the kernel's own bytes, without the append's, at the prefill memory fraction. A
    shape with a window runs the local kernel, `one_wg` FA3's one-MMA-warpgroup tile (the caller decides
    whether they run)."""
    table = profile.efficiency
    block = block_n = int(table.get("attention_prefill_block", 128))
    serial = fa3 = False
    if table.get("attention_fa3_tiles", 0) and fa3_runs(shape):  # FA3's own tile for the head dim, dtype, window
        block, block_n, overlap = fa3_prefill_tile(max(shape.head_dim, shape.v_dim), shape.kv_itemsize,
                                                   shape.window > 0, one_wg)
        serial, fa3 = not overlap, True
    # FA3's local kernel starts a q-block's keys at its window's first key (attention_tiles.window_span_blocks)
    tiles = prefill_tiles(shape, block, bool(table.get("attention_prefill_pack_gqa", 0)), block_n, window_from_key=fa3)
    compute = _kv_key(shape, table, "prefill_compute", base.compute)
    tail = _kv_key(shape, table, "prefill_tail", 0.0)
    cta_us = _kv_key(shape, table, "prefill_cta_us", 0.0)
    work = sum((f for p, f in counts.flops.items() if p != "vector"), 0)
    sms = profile.compute_units
    # per score of a tile, the softmax work the MMAs do not hide, in tensor-FLOP equivalents
    score_flops = _kv_key(shape, table, "prefill_score_flops", 0.0)
    if serial:  # no intra-warpgroup overlap: the softmax the pipelining would hide runs between the MMAs
        score_flops = score_flops + _kv_key(shape, table, "prefill_serial_flops", 0.0)
    tile_flops = tiles.tile_flops + score_flops * block * block_n
    padded = (tiles.tiles + tail * sms * tiles.longest) * tile_flops
    factor = work / padded
    latency_us = (_kv_key(shape, table, "prefill_latency_us", base.latency_s * 1e6)
                  + cta_us * (tiles.ctas / sms + tail)
                  + _window_cta_us(shape, table, "prefill_window_cta_us") * tiles.ctas / sms
                  + _kv_key(shape, table, "prefill_kv_ns", 0.0) * 1e-3 * shape.batch * shape.q_len * shape.kv_heads
                  * shape.head_dim / 128
                  # the append launches one thread block per new token (vLLM cache_kernels.cu,
                  # reshape_and_cache_flash: grid(num_tokens)), whatever its K/V width
                  + _kv_key(shape, table, "prefill_token_ns", 0.0) * 1e-3 * shape.batch * shape.q_len
                  + _append_rounds(shape, table, sms) * _kv_key(shape, table, "prefill_append_block_us", 0.0)
                  + _kv_key(shape, table, "prefill_q_ns", 0.0) * 1e-3 * shape.batch * shape.q_len * shape.q_heads
                  * shape.head_dim / 128)
    memory = base.memory
    prefill_memory = _kv_key(shape, table, "prefill_memory", 0.0)
    if prefill_memory and counts.bytes:
        # the cache append (new K/V read, written into the cache) is its own kernel, costed by kv_ns:
        # the attention kernel streams the rest (Q, the cached K/V, O) at prefill_memory of HBM
        append = shape.batch * shape.q_len * shape.kv_heads * (shape.head_dim + shape.v_dim) * shape.kv_itemsize
        memory = prefill_memory * counts.bytes / smax(counts.bytes - 2 * append, 1)
    return replace(base, compute=compute * factor, latency_s=latency_us * 1e-6, memory=memory,
                   by_precision=MappingProxyType({p: compute * factor for p in base.by_precision}))


def _flash_efficiency(base: Efficiency, counts: Counts, shape: AttentionShape, profile: DeviceProfile) -> Efficiency:
    """The FlashAttention model of a decode (and, without a tiled prefill section, of a prefill)."""
    tail = param(profile, "attention_tail")
    cta_us = _kv_key(shape, profile.efficiency, "cta_us", 0.0)
    q_len, head_dim, v_dim, keys, window = shape.q_len, shape.head_dim, shape.v_dim, shape.keys, shape.window
    block = int(param(profile, "attention_block_q"))
    sm_gbps = _kv_key(shape, profile.efficiency, "sm_gbps", 0.0)
    if (cta_us or sm_gbps) and counts.bytes:
        # split-KV CTAs (FlashAttention-3's dynamic split, backends/attention_tiles.py), each its set-up
        # (cta_us) plus its key blocks streamed at sm_gbps: the memory path takes at least that long
        sms = profile.compute_units
        fa3 = bool(profile.efficiency.get("attention_fa3_tiles", 0)) and fa3_runs(shape)
        tiles = decode_tiles(shape, block, KV_SPLIT_BLOCK, sms, int(param(profile, "attention_max_splits")), fa3)
        per_cta_us = 0.0
        if cta_us:
            dim_share = _kv_key(shape, profile.efficiency, "cta_dim_share", 0.0)
            per_cta_us = cta_us * (1 - dim_share + dim_share * head_dim / 128) if dim_share else cta_us
        # FA3's local (sliding-window) kernel: its CTAs mask both ends of their key range
        per_cta_us = per_cta_us + _window_cta_us(shape, profile.efficiency, "window_cta_us")
        block_bytes = tiles.block_n * (head_dim + v_dim) * shape.kv_itemsize
        stream_us = tiles.per_cta * block_bytes / (sm_gbps * 1e3) if sm_gbps else 0
        # the CTAs' total time over the SMs, and at least one CTA's (Graham's lower bound of a list schedule)
        floor = smax(1, tiles.items * tiles.splits / sms) * (per_cta_us + stream_us) * 1e-6
        streaming = counts.bytes / (profile.memory_bandwidth_gbps * 1e9 * base.memory)
        base = replace(base, memory=base.memory * streaming / smax(streaming, floor))
        combine_ns = _kv_key(shape, profile.efficiency, "combine_ns", 0.0)
        if fa3 and combine_ns:
            # up to FA3_MAX_SPLIT_BATCH sequences vLLM's CUDA-graph decode runs FA3's Split kernel (num_splits
            # = 32 given): every (sequence, query head) row leaves an fp32 partial output per split, which
            # flash_fwd_combine reads back and reduces into O
            rows = shape.batch * shape.q_heads * q_len * tiles.splits * split_gate(shape.batch, FA3_MAX_SPLIT_BATCH)
            base = replace(base, latency_s=base.latency_s + combine_ns * 1e-9 * rows * v_dim / 128)
    if not tail:
        return base
    rows = smin(q_len, block)
    if window > 0:
        keys = smin(keys, window + rows)
    longest = 2 * (head_dim + v_dim) * rows * keys  # tensor FLOPs of the longest CTA
    work = sum((f for p, f in counts.flops.items() if p != "vector"), 0)
    if isinstance(work, int) and work == 0:
        return base
    # time = (W + tail · SMs · L) / R  ==  W / (R · W / (W + tail · SMs · L))
    factor = work / (work + tail * profile.compute_units * longest)
    return base.with_compute(lambda c: c * factor)
