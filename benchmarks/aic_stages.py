"""The stages of the engine fit: which efficiency parameters each AIConfigurator kernel table informs.

Owns `STAGES` (and its parts: `MLA_STAGES`, `DSA_STAGES`, `GDN_STAGES`, `MOE_STAGES`, the stage
builders and the constants they fix): per stage, the parameters of `backends/efficiency.py` /
`backends/communication.py` it fits, with bounds and the note that says what each means — the
specification `aic_fit.py`'s fit, held-out rule and error tables are read against. Which table rows a
stage reads and which structural switches of an engine's kernels it fixes is `aic_engine_kernels.py`'s.
Moved out of `aic_fit.py` (as its docstring planned) when that file passed 600 lines; `aic_fit`
re-exports these names, so its importers are unchanged.

It must not fit or read tables itself.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aic_engine_kernels as aek
import calibration_fit as cf

from tensor_cast.backends.communication import CUSTOM_MAX_KEY

P = cf.Param
CUSTOM_MAX_MIB = aek.VLLM.custom_max_mib  # vLLM's CustomAllreduce max_size default: 8192 * 1024 bytes


def gemm_stage(variant: str, tile_n: int, note: str, extra: tuple[cf.Param, ...] = (),
               fixed: Mapping[str, float] | None = None, max_latency_us: float = 60.0,
               loss: str = "linear", loss_scale: float = 1.0) -> cf.Stage:
    g = f"efficiency.gemm_{variant}"
    fixed = {f"{g}_tile_m": 128, f"{g}_tile_n": tile_n, f"{g}_splitk_tile_n": 64, **(fixed or {})}
    params = (*extra,
        P(f"{g}_compute", 0.8, 0.2, 1.0, "tensor-core fraction of the datasheet peak at K = 8192"),
        P(f"{g}_memory", 0.85, 0.2, 1.0, "weight-streaming bandwidth fraction of HBM"),
        P(f"{g}_latency_us", 3.0, 0.0, max_latency_us, "fixed cost per call beyond the graph floor"),
        P(f"{g}_overlap", 0.1, 0.0, 1.0, "share of min(compute, memory) not overlapped"),
        P(f"{g}_k_overhead", 150.0, 0.0, 5000.0, "per-tile prologue/epilogue, in steps of K"),
        P(f"{g}_wave_quantization", 0.3, 0.0, 1.0, "share of the last wave's idle SMs lost"),
        P(f"{g}_splitk_us", 2.0, 0.0, 60.0, "cost when the output tiles cannot fill the SMs"),
    )
    # a parameter given in `fixed` is set, not fitted
    return cf.Stage(f"gemm {variant}", tuple(p for p in params if p.key not in fixed), fixed=fixed, note=note,
                    loss=loss, loss_scale=loss_scale)


def collective_stage(name: str, key: str, note: str, extra: tuple[cf.Param, ...] = ()) -> cf.Stage:
    c = f"efficiency.{key}"
    return cf.Stage(name, (*extra,
        P(f"{c}_latency_us", 5.0, 0.0, 100.0, "fixed cost of a call (launch, barrier)"),
        P(f"{c}_step_us", 0.5, 0.0, 10.0, "synchronisation per algorithm step"),
        P(f"{c}_ll_bandwidth", 0.3, 0.01, 1.0, "low-latency protocol (LL/LL128): fraction of the NVLink peak"),
        P(f"{c}_simple_us", 15.0, 0.0, 500.0, "bulk protocol's extra start-up"),
        P(f"{c}_simple_bandwidth", 0.7, 0.05, 1.0, "bulk protocol (Simple/NVLS): fraction of the NVLink peak"),
    ), note=note)


# PackGQA and FlashAttention-3's tiles by architecture are per engine: `EngineKernels.pack_gqa` / `.fa3_tiles`.
PREFILL_BLOCK = 128  # q- and k-block rows of the prefill kernels (FA3 d<=128 causal: 128 x 128)
# vLLM caps FlashAttention's split-KV at VLLM_FLASH_ATTN_MAX_NUM_SPLITS_FOR_CUDA_GRAPH (default 32,
# vllm/envs.py) for decodes captured in CUDA graphs, as every decode step of a serving run is.
MAX_SPLITS = aek.VLLM.max_splits  # per engine: EngineKernels.max_splits


# The cache append's launch (vLLM csrc/cache_kernels.cu, reshape_and_cache_flash: grid(num_tokens),
# block(min(num_heads * head_size, 512))) and the SM limits it runs under (CUDA compute capability 9.0 and
# 10.0: at most 2,048 resident threads and 32 resident blocks per SM).
APPEND_LIMITS = {"efficiency.attention_append_threads": 512, "efficiency.attention_sm_threads": 2048,
                 "efficiency.attention_sm_blocks": 32}


def prefill_stage(name: str, kv: str, note: str, extra: tuple[cf.Param, ...] = ()) -> cf.Stage:
    a = f"efficiency.attention{kv}_prefill"
    return cf.Stage(name, (
        P(f"{a}_compute", 0.6, 0.1, 1.0, "tensor-core fraction of the bf16 peak on full 128x128 tiles"),
        P(f"{a}_latency_us", 8.0, 0.0, 50.0, "fixed cost per call (launch, scheduler, cache append)"),
        P(f"{a}_cta_us", 2.0, 0.0, 20.0, "cost per CTA (Q load, epilogue), spread over the SMs"),
        P(f"{a}_tail", 0.5, 0.0, 4.0, "idle share while the longest CTA finishes (1 = Graham's bound)"),
        P(f"{a}_kv_ns", 0.5, 0.0, 10.0, "per new token and KV head (x d/128): K/V staging, cache append"),
        P(f"{a}_token_ns", 1.0, 0.0, 50.0, "per new token: the cache append's thread block (reshape_and_cache_flash "
                                           "launches one per token, whatever the K/V width)"),
        P(f"{a}_memory", 0.8, 0.1, 1.0, "HBM fraction the attention kernel streams Q, the cached K/V and O at (the "
                                        "cache append is kv_ns's)"),
        P(f"{a}_score_flops", 64.0, 0.0, 2048.0, "softmax work per score of a tile the MMAs do not hide (exp, max, "
                                                 "rescale), in tensor-FLOP equivalents (QK^T and PV: 4 x d per score)"),
        P(f"{a}_window_cta_us", 2.0, 0.0, 50.0, "extra time of a CTA of the sliding-window (local) kernel, while "
                                                "the prompt is longer than the window, spread over the SMs"),
        P(f"{a}_serial_flops", 256.0, 0.0, 4096.0, "softmax work per score of a tile of an FA3 kernel without "
                                                   "intra-warpgroup overlap (bf16 d <= 64 with a window, fp8 d = 256 "
                                                   "on paged KV), which runs between the MMAs, in tensor-FLOP "
                                                   "equivalents"),
        P(f"{a}_append_block_us", 2.0, 0.0, 50.0, "lifetime of one cache-append thread block (one new token) on "
                                                  "an SM, paid once per round of resident blocks"),
        *extra,
    ), fixed={"efficiency.attention_prefill_block": PREFILL_BLOCK, **APPEND_LIMITS},
        note=f"tiled prefill kernel ({note}): FlashAttention-3's kBlockM x kBlockN by head dim, cache dtype and "
             f"window with PackGQA on Hopper (hopper/tile_size.h), 128 x 128 unpacked on Blackwell (TRT-LLM FMHA); "
             f"a window as long as the prompt dropped (hopper/flash_api.cpp); the cache append one block of "
             f"min(KV heads x d, 512) threads per new token (vLLM csrc/cache_kernels.cu, reshape_and_cache_flash), at "
             f"most 2,048 threads and 32 blocks resident per SM (CUDA compute capability 9.0 / 10.0)")


def mla_stage(name: str, kv: str, note: str) -> cf.Stage:
    a = f"efficiency.attention{kv}_mla"
    return cf.Stage(name, (
        P(f"{a}_compute", 0.5, 0.05, 1.0, "tensor-core fraction of the absorbed (decode) MLA core"),
        P(f"{a}_memory", 0.7, 0.1, 1.0, "latent-cache read bandwidth fraction of the MLA core"),
        P(f"{a}_latency_us", 20.0, 0.0, 150.0, "fixed GPU cost per MLA layer call in a CUDA graph (the small "
                                               "kernels around the attention core)"),
        P(f"{a}_token_ns", 20.0, 0.0, 2000.0, "per new token: RoPE, latent cache append, query copies/quantization"),
        P(f"{a}_head_token_ns", 0.5, 0.0, 50.0, "per new token and local head: the per-head absorb GEMMs "
                                                "(q_nope x W_UK, x W_UV) and their transposes"),
        P(f"{a}_prefill_compute", 0.5, 0.05, 1.0, "tensor-core fraction of the expanded (prefill) MLA core: kv_b "
                                                  "up-projection and multi-head attention, the softmax's vector "
                                                  "time charged on top (1.0: the kernel hides it under the MMAs)"),
        P(f"{a}_prefill_latency_us", 20.0, 0.0, 150.0, "fixed GPU cost per expanded (prefill) MLA call"),
        P(f"{a}_prefill_token_ns", 20.0, 0.0, 2000.0, "per new token, expanded form: RoPE, cache append"),
        P(f"{a}_prefill_head_token_ns", 0.5, 0.0, 50.0, "per new token and local head, expanded form: the "
                                                        "up-projected keys and values assembled, written, read"),
    ), note=f"DeepSeek-V3 MLA layer as vLLM runs it ({note}); the H100 tables' unfused RMSNorm chain is costed "
             f"as such (aic_mla_tables.NATIVE_NORM_DEVICES), not fitted into these")


MLA_STAGES = (mla_stage("mla", "", "bf16 latent cache"), mla_stage("mla fp8kv", "_fp8kv", "fp8 latent cache"))
def dsa_stage(name: str, kv: str, note: str, indexer: bool) -> cf.Stage:
    a = f"efficiency.attention{kv}_dsa"
    i = "efficiency.attention_dsa_indexer"
    indexer_params = (
        P(f"{i}_compute", 0.3, 0.01, 1.0, "tensor-core fraction of the indexer's logits (and the top-k over them)"),
        P(f"{i}_memory", 0.6, 0.05, 1.0, "bandwidth fraction of the indexer's keys (at the engine's cache layout), "
                                         "queries, head weights and fp32 logits"),
        P(f"{i}_latency_us", 20.0, 0.0, 300.0, "fixed GPU cost per indexer call in a CUDA graph (RoPE, fp8 "
                                               "quantization, key-cache insert, logits, top-k)"),
        P(f"{i}_token_ns", 20.0, 0.0, 5000.0, "per new token: one top-k row, its quantization and cache insert"),
        P(f"{i}_call_floor_us", 1000.0, 0.0, 5000.0, "host-side floor of an eagerly launched indexer call (the "
                                                     "sparse prefill path's launches and synchronizations); not paid "
                                                     "in a CUDA graph"),
    ) if indexer else ()
    return cf.Stage(name, (*indexer_params,
        P(f"{a}_compute", 0.5, 0.05, 1.0, "tensor-core fraction of the sparse (top-k) absorbed MLA core"),
        P(f"{a}_memory", 0.7, 0.05, 1.0, "bandwidth fraction of the top-k latent reads"),
        P(f"{a}_latency_us", 20.0, 0.0, 300.0, "fixed GPU cost per sparse MLA call in a CUDA graph (the small "
                                               "kernels around the attention core)"),
        P(f"{a}_token_ns", 20.0, 0.0, 5000.0, "per new token: RoPE, latent cache append, query copies"),
        P(f"{a}_head_token_ns", 0.5, 0.0, 100.0, "per new token and local head: the absorb GEMMs and the sparse "
                                                 "kernel's work over the top-k slots whether filled or not"),
        P(f"{a}_prefill_compute", 0.5, 0.05, 1.0, "tensor-core fraction of the sparse prefill kernel's core"),
        P(f"{a}_prefill_latency_us", 20.0, 0.0, 300.0, "fixed GPU cost per sparse MLA call of a prefill step"),
        P(f"{a}_prefill_token_ns", 20.0, 0.0, 5000.0, "per new token of a prefill step: RoPE, cache append (and "
                                                      "with an 8-bit cache the top-k latents gathered and "
                                                      "dequantized)"),
        P(f"{a}_prefill_head_token_ns", 0.5, 0.0, 100.0, "per new token and local head of a prefill step"),
    ), fixed={f"{i}_key_bytes": INDEXER_KEY_BYTES} if indexer else {},
        note=f"DeepSeek sparse attention layer as vLLM runs it ({note}); head padding, the fp8 mixed-batch switch and "
             f"the FlashInfer backend switch are vLLM 0.24's FlashMLA sparse backend's (aic_fit.DSA_KERNEL_SWITCHES, by "
             f"architecture), the indexer's key cache 128 fp8 values and one fp32 scale a token; the H100 tables' "
             f"unfused RMSNorm chain is costed as such")


# vLLM 0.24's FlashMLA sparse backend (v1/attention/backends/mla/flashmla_sparse.py) by architecture: the bf16
# kernel pads the local heads to a multiple of 64 on Hopper, 128 on Blackwell (`prefill_padding`); the fp8 decode
# kernel takes 64 or 128 heads (`_compute_fp8_decode_padded_heads`); with an fp8 cache and fewer than 32 local heads
# prefill runs the fp8 decode kernel too (MIN_HEADS_FOR_BF16_PREFILL). On Blackwell vLLM runs FlashInfer's sparse MLA
# instead for a bf16 cache at <= 16 local heads and for every fp8 cache (the tables' kernel_source): no padding there.
DSA_KERNEL_SWITCHES = {arch: dict(v) for arch, v in aek.VLLM.dsa_kernel_switches.items()}  # per engine
# vLLM's indexer key cache per token: 128 fp8 values and one fp32 scale (whatever the KV cache dtype)
INDEXER_KEY_BYTES = 132
DSA_STAGES = (dsa_stage("dsa", "", "bf16 latent cache", indexer=True),
              dsa_stage("dsa fp8kv", "_fp8kv", "fp8 latent cache", indexer=False))
GDN_STAGES = (
    cf.Stage("gdn chunked", (
        P("efficiency.attention_gdn_chunk_compute", 0.5, 0.05, 1.0, "tensor-core fraction of one SM's share of the "
                                                                     "peak that a chunked-scan CTA (one sequence and "
                                                                     "value head) sustains, chunk after chunk"),
        P("efficiency.attention_gdn_chunk_cta_us", 5.0, 0.0, 100.0, "per wave of scan CTAs: state load and store, "
                                                                    "chunk-independent set-up"),
        P("efficiency.attention_gdn_chunk_latency_us", 3.0, 0.0, 100.0, "fixed cost per layer call (the conv and "
                                                                        "scan kernels' launches in a graph)"),
        P("efficiency.attention_gdn_chunk_memory", 0.7, 0.05, 1.0, "bandwidth fraction of the conv's and the fused "
                                                                   "scan's I/O"),
    ), note="causal_conv1d_fn + FlashInfer's chunked gated delta rule (vLLM's prefill path on SM90 / SM100)"),
    cf.Stage("gdn recurrent", (
        P("efficiency.attention_gdn_recurrent_memory", 0.5, 0.05, 1.0, "bandwidth fraction of the recurrent decode "
                                                                       "(state read and written, conv state, I/O)"),
        P("efficiency.attention_gdn_recurrent_cta_us", 2.0, 0.0, 50.0, "minimum time of a wave of (sequence, value "
                                                                       "head) CTAs"),
        P("efficiency.attention_gdn_recurrent_latency_us", 4.0, 0.0, 50.0, "fixed cost per layer call (conv update + "
                                                                           "packed recurrent decode, in a graph)"),
    ), note="causal_conv1d_update + vLLM's packed fused-recurrent gated delta rule (decode)"),
)
def moe_stage(variant: str, note: str) -> cf.Stage:
    m = f"efficiency.moe_{variant}"
    return cf.Stage(f"moe {variant}", (
        P(f"{m}_compute", 0.5, 0.05, 1.0, "tensor-core fraction of the grouped GEMMs' MMAs, padded rows included"),
        P(f"{m}_memory", 0.7, 0.1, 1.0, "bandwidth fraction of the hit experts' weights and the routed rows"),
        P(f"{m}_latency_us", 20.0, 0.0, 300.0, "fixed cost per MoE layer (routing, align/sort, the GEMM launches)"),
        P(f"{m}_overlap", 0.3, 0.0, 1.0, "share of min(compute, memory) not overlapped"),
        P(f"{m}_k_overhead", 100.0, 0.0, 5000.0, "per-tile prologue/epilogue of the grouped GEMMs, in steps of K"),
        P(f"{m}_memory_latency_us", 2.0, 0.0, 50.0, "bandwidth ramp of the expert-weight reads"),
        P(f"{m}_reread", 0.3, 0.0, 1.0, "share of an expert's weights read again from HBM by each of its M tiles "
                                        "beyond the first"),
        P(f"{m}_pad_penalty", 0.2, 0.0, 8.0, "cost of a padded row of a partly filled M tile beyond its MMAs, as a "
                                             "share of a filled row's"),
        P(f"{m}_pair_ns", 0.5, 0.0, 50.0, "per (token, expert) pair the kernel routes, local or not (routing, "
                                          "permutation, grid slots of the worst-case padded rows)"),
        P(f"{m}_ep_latency_us", 5.0, 0.0, 100.0, "fixed cost of an expert-parallel rank's call beyond a TP one "
                                                 "(not identified: the expert map's handling is one candidate)"),
        P(f"{m}_routing_us", 5.0, 0.0, 50.0, "TRT-LLM-gen routing beyond its single-block kernel: the 8-CTA "
                                             "cluster or histogram + offsets path above 16 tokens "
                                             "(moe_tiles.routing_path_s)"),
        P(f"{m}_l2_gbps", 20000.0, 1000.0, 100000.0, "rate at which a replayed call reads the expert weights "
                                                     "still in L2 (the tables' harness replays one layer; "
                                                     "moe_tiles.l2_resident_share)"),
    ), fixed={f"{m}_tile_switch": 1},
        note=f"{note}; each hit expert's rows padded to the kernel's M tile (backends/moe_tiles.py)")


# One stage per expert scheme: vLLM runs a different fused-MoE kernel for each (backends/moe_tiles.py).
MOE_STAGES = tuple(moe_stage(v, note) for v, note in (
    ("bf16", "unquantized fused MoE (Triton on Hopper, FlashInfer TRT-LLM on Blackwell)"),
    ("fp8_block", "block-fp8 fused MoE (Triton on Hopper, FlashInfer TRT-LLM on Blackwell)"),
    ("fp8", "per-tensor fp8 fused MoE (FlashInfer CUTLASS on Hopper, TRT-LLM on Blackwell)"),
    ("mxfp4", "MXFP4 weights, 16-bit activations (OAI Triton on Hopper, FlashInfer TRT-LLM on Blackwell)"),
    ("w4a8_mxfp4_mxfp8", "MXFP4 weights, MXFP8 activations (FlashInfer TRT-LLM, Blackwell)"),
    ("w4a16", "int4 weight-only (Marlin MoE)"),
    ("nvfp4", "NVFP4 weights and activations (FlashInfer TRT-LLM, Blackwell)"),
))
# The K one cuBLAS split-K slice covers (`gemm_bf16_splitk_k`): read from the tables, where the time
# of a narrow small-M GEMM (N <= 512, M <= 256) grows linearly with K up to K ~ 2-4k and then
# levels off (B200: 4.6 us at K = 2048 and 8192 alike, M = 1, N = 32); chosen among 2,048 / 4,096 /
# 8,192 on the fitted families (B200 bf16 held-in error 10.5 / 9.4 / 10.1%).
SPLITK_K = 4096


# vLLM 0.24's dynamic per-tensor fp8 quantization (csrc/quantization/w8a8/fp8/common.cu,
# dynamic_scaled_fp8_quant): two kernels of grid = rows x 256 threads, each block walking its row in
# 16-byte vectors (8 bf16), 2,048 elements per iteration. The B200 tables show the steps: at
# N <= 128 (the GEMM a few us) the time per row at M = 8k-32k is 6.3-6.6 ns for every K <= 2,048,
# 10.2-10.5 ns at K = 2,560-4,096, 14.0-14.3 at 5,120-6,144, 17.3-18.5 at 7,168-8,192, 123 at
# 65,536: one step of ~3.8 ns (10 KB moved at ~2.7 TB/s) per 2,048 of K.
QUANT_ROW_ELEMENTS = 2048


# B200's CUTLASS fp8 table holds glitch rows the isolated-row rule (aic_tables.ISOLATED: off BOTH
# M neighbours) cannot flag, because they come in adjacent pairs or sit 1.5x off: N = 5,120,
# K = 4,096 takes 10.0 us at M = 10 and 13 but 19.5 / 19.7 us at M = 11 / 12; N = 2,048, K = 4,096
# 10.4 us at M = 193 and 256 but 19.3 / 19.2 us at 224 / 225; N = 1,024, K = 51,200 440 / 466 us at
# M = 3,329 / 3,585 but 699 us at 3,584. Each adds about 2.3-2.4 ns per element of K up to K = 16k
# whatever M and N (+7-10 us at K = 3-4k, +25 us at 10k, +40 us at 16k; +250-320 us at 64k): not a
# shape effect.
# Squared log residuals let them pull the fit, so the fp8 stage fits a robust loss (soft L1: a
# residual beyond ~10 % pulls linearly, not squared). Refitted on the B200 sample with each loss,
# same model (before the epilogue overlap): held out 10.9 -> 10.5 %, fitted on 10.2 -> 10.0 %.
FP8_LOSS, FP8_LOSS_SCALE = "soft_l1", 0.1


# DeepGEMM's block-FP8 GEMM in a CUDA graph: its fixed GPU cost per call (see the fp8_block stage)
FP8_BLOCK_GPU_LATENCY_US = 1.0


def cta_gbps(variant: str) -> cf.Param:
    """The small-M cap of a GEMM variant: one CTA's operand stream (also added by `aic_fit.fit_engine`)."""
    return P(f"efficiency.gemm_{variant}_cta_gbps", 300.0, 10.0, 3000.0,
             "operand bandwidth one CTA's K loop streams (GB/s): caps a small-M GEMM of few output tiles")


STAGES: tuple[cf.Stage, ...] = (
    gemm_stage("bf16", 256, "tiles 128x256 (cuBLAS Hopper bf16), 64-wide columns for small-M kernels, one "
               f"split-K slice per {SPLITK_K} of K", extra=(cta_gbps("bf16"),),
               fixed={"efficiency.gemm_bf16_splitk_k": SPLITK_K}),
    gemm_stage("fp8", 128, "CUTLASS fp8 scaled-mm: tile and cluster by M and N from vLLM's dispatch table "
               "(backends/gemm_tiles.py); dynamic per-tensor activation quantization in front; no split-K "
               "(each output tile's CTA streams all of K)", extra=(
                   P("efficiency.gemm_fp8_sm_gbps", 100.0, 10.0, 2000.0, "operand bandwidth one SM sustains (GB/s)"),
                   P("efficiency.gemm_fp8_epilogue_overlap", 0.8, 0.0, 1.0, "share of the shorter of a tile's K loop "
                     "and its per-tile work (k_overhead) hidden under the other: the persistent kernel stores one "
                     "tile's output while it computes the next"),
                   cta_gbps("fp8"),
                   P("efficiency.quant_atomic_ns", 5.0, 0.0, 50.0, "per row of a dynamic per-tensor scale: its "
                                                                       "block's reduction and atomic max"),
                   P("efficiency.quant_per_tensor_memory", 0.5, 0.05, 1.0, "bandwidth fraction of the dynamic "
                                                                            "per-tensor quantization's two kernels"),
               ), fixed={"efficiency.gemm_fp8_tile_switch": 1, "efficiency.gemm_fp8_pad_rows": 1,
                         "efficiency.quant_row_elements": QUANT_ROW_ELEMENTS},
               loss=FP8_LOSS, loss_scale=FP8_LOSS_SCALE),
    gemm_stage("fp8_block", 128, "tiles 128x128 (DeepGEMM block-scaled fp8: 128-wide scale blocks); in a CUDA graph "
               f"{FP8_BLOCK_GPU_LATENCY_US:g} us fixed GPU cost and no split-K (DeepGEMM has none), set from DeepGEMM's "
               "in-isolation H800 timings (README, Feb 2025): the tables' small-M rows are host-bound", extra=(
        P("efficiency.quant_memory", 0.5, 0.05, 1.0, "bandwidth fraction of the one-pass per-token-group "
                                                     "activation quantization in front"),
        P("efficiency.gemm_fp8_block_call_floor_us", 80.0, 0.0, 500.0, "host-side floor of an eager call (DeepGEMM's "
                                                                         "launcher); not paid in a CUDA graph"),
        P("efficiency.gemm_fp8_block_unaligned_floor_us", 10.0, 0.0, 200.0, "extra floor of an eager call whose M is "
                                                                               "not a multiple of 4 (the fp32 scales' rows "
                                                                               "miss TMA's 16-byte alignment and are "
                                                                               "re-laid out first)"),),
               # The GPU-side fixed costs are set, not fitted: every small-M row of these tables sits on the
               # eager host floor (~80 us on H100, ~175 us on B200), so they cannot identify what a CUDA-graph
               # replay pays. DeepGEMM's dense kernel has no split-K (one CTA per output block over all of K,
               # block_n chosen to fill the SMs): splitk_us 0. Its in-isolation timings on H800 (H100's
               # die and HBM; DeepGEMM README, Feb 2025: M x N x K 64x2112x7168 206 TFLOPS, 128x2112x7168
               # 352, 128x4096x7168 533, 128x7168x2048 510, i.e. 9.4 / 11.0 / 14.1 / 7.4 us) come out
               # 0.96-1.28x with no fixed cost at all, so it is at most the ~1 us of a graph-replayed launch.
               fixed={"efficiency.gemm_fp8_block_latency_us": FP8_BLOCK_GPU_LATENCY_US,
                      "efficiency.gemm_fp8_block_splitk_us": 0.0}),
    # SGLang's B200 tables (vLLM's have no FP4 GEMM rows): FlashInfer's FP4 GEMM with the activation's NVFP4
    # quantization in front (AIConfigurator's collector/sglang/collect_gemm.py: fp4_quantize + mm_fp4, CUTLASS),
    # CUDA-graph replays
    gemm_stage("nvfp4", 128, "tiles 128x128 (FlashInfer / CUTLASS block-scaled FP4, 16-element scale blocks); "
               "NVFP4 activation quantization in front", extra=(cta_gbps("nvfp4"),)),
    cf.Stage("attention decode", (
        P("efficiency.attention_memory", 0.85, 0.2, 1.0, "decode KV-read bandwidth fraction"),
        P("efficiency.attention_memory_latency_us", 1.0, 0.0, 50.0, "decode split-KV combine"),
        P("efficiency.attention_latency_us", 8.0, 0.0, 50.0, "fixed cost per call (attention + cache append)"),
        P("efficiency.attention_cta_us", 2.5, 0.0, 20.0, "set-up time of one split-KV CTA (sequence x KV head x "
                                                          "split) at head_dim 128, before its key blocks stream"),
        P("efficiency.attention_cta_dim_share", 0.3, 0.0, 1.0, "share of the CTA's minimum time that scales with "
                                                              "head_dim / 128 (Q load, output store)"),
        P("efficiency.attention_sm_gbps", 40.0, 2.0, 500.0, "KV bandwidth one split-KV CTA streams its 128-key blocks "
                                                            "at after its set-up (GB/s)"),
        P("efficiency.attention_window_cta_us", 0.5, 0.0, 20.0, "extra time of a split-KV CTA of the sliding-window "
                                                                "kernel (masks both ends of its keys), while the cache "
                                                                "is longer than the window"),
        P("efficiency.attention_combine_ns", 0.5, 0.0, 20.0, "per (sequence, query head, split) partial row at dv 128: "
                                                             "FA3's Split kernel's fp32 partial output, read back and "
                                                             "reduced by flash_fwd_combine (up to 992 sequences)"),
    ), fixed={"efficiency.attention_block_q": 128, "efficiency.attention_max_splits": MAX_SPLITS},
        note="FlashAttention-3 decode: split-KV with FA3's dynamic split count (flash_prepare_scheduler.cu: "
             "ceil(n / ceil(1.1 x items x n / SMs)) CTAs per item, at most 32), CTAs in waves over the SMs; q-block "
             "128 rows; on Hopper FA3's own k-block by head dim, cache dtype and window (hopper/tile_size.h), the "
             "window's blocks from floor((keys - W) / N) and no split above 992 sequences (hopper/flash_api.cpp)"),
    cf.Stage("attention decode fp8kv", (
        P("efficiency.attention_fp8kv_memory", 0.6, 0.1, 1.0, "decode fp8 KV-read bandwidth fraction"),
        P("efficiency.attention_fp8kv_latency_us", 8.0, 0.0, 50.0, "fixed cost per call, fp8 KV cache"),
        P("efficiency.attention_fp8kv_cta_us", 2.5, 0.0, 20.0, "set-up time of one split-KV CTA, fp8 KV cache"),
        P("efficiency.attention_fp8kv_cta_dim_share", 0.3, 0.0, 1.0, "share of the CTA's minimum time that scales "
                                                                     "with head_dim / 128, fp8 KV cache"),
        P("efficiency.attention_fp8kv_sm_gbps", 40.0, 2.0, 500.0, "KV bandwidth one split-KV CTA streams its key "
                                                                  "blocks at after its set-up (GB/s), fp8 KV cache"),
        P("efficiency.attention_fp8kv_window_cta_us", 0.5, 0.0, 20.0, "extra time of a split-KV CTA of the "
                                                                      "sliding-window kernel, fp8 KV cache"),
    ), note="FlashAttention-3 decode reading an fp8 KV cache (vLLM kv_cache_dtype=fp8)"),
    prefill_stage("attention prefill", "", "bf16 KV cache"),
    prefill_stage("attention prefill fp8kv", "_fp8kv", "fp8 KV cache (vLLM kv_cache_dtype=fp8)", extra=(
        P("efficiency.attention_fp8kv_prefill_q_ns", 0.1, 0.0, 5.0, "per new token and query head (x d/128): the "
                                                                    "query's static fp8 quantization before the fp8 "
                                                                    "kernel (vLLM's scaled_fp8_quant, 3 bytes an "
                                                                    "element)"),)),
    *MOE_STAGES,
    collective_stage("nccl all_reduce", "all_reduce", "NCCL 2.29, bf16"),
    collective_stage("nccl all_gather", "all_gather", "NCCL 2.29"),
    collective_stage("nccl reduce_scatter", "reduce_scatter", "NCCL 2.29"),
    collective_stage("nccl all_to_all", "all_to_all", "NCCL 2.29", extra=(
        P("efficiency.all_to_all_self_share", 0.5, 0.0, 1.0, "what the rank's own slice costs, as a share of a "
                                                             "peer's (NCCL sends it to itself in the same kernel)"),)),
    replace(collective_stage("custom all_reduce", "custom_all_reduce", "vLLM custom all-reduce in CUDA graphs"),
            fixed={f"efficiency.{CUSTOM_MAX_KEY}": CUSTOM_MAX_MIB}),
    *MLA_STAGES,  # after the GEMM stages: a module row also runs GEMMs and norms the earlier stages fix
    *DSA_STAGES,
    *GDN_STAGES,
)
