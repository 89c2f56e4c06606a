"""NVIDIA AIConfigurator kernel tables (`shared/calibration/aic/<device>/*.csv.gz`) -> calibration cases.

Owns the reading of those tables (one row per measured kernel call of an engine, latency in ms)
and their meaning in tensor_cast's vocabulary: for every row, the op calls tensor_cast would
cost for that kernel (built with tensor_cast's own rules on meta tensors, as
`calibration_cases.py` does for the PyTorch harness), its op class, its shape family (the unit a
held-out check leaves out) and the fitting stage that uses it. It fits nothing
(`aic_fit.py`) and reads only the directory it is given.

Column meanings, checked against the data (latency against size, see `aic_fit.py --check`):
- gemm_perf `m, n, k`: y[m, n] = x[m, k] W[k, n]; bf16 peaks at 883 TFLOP/s on H100 (89% of the
  dense datasheet rate): the FLOPs are 2mnk, so the columns are what they say. fp8 rows time
  vLLM's whole linear layer: the dynamic activation quantization plus the scaled GEMM, which is
  what tensor_cast's quantize + quant_linear pair costs.
- nccl_perf `message_size`: ELEMENTS, not bytes. At the same message_size the `half` rows take
  1.5-2x the `int8` rows at large sizes (twice the bytes); read as bytes, an 8-GPU bf16
  all-reduce of 268M would sustain 890 GB/s bus bandwidth, twice NVLink4's 450 GB/s per
  direction; as elements it is 445 GB/s (NVLS). all_gather's size is the gathered output (as in
  nccl-tests), reduce_scatter's and alltoall's the input.
- custom_allreduce_perf `message_size`: elements of `allreduce_dtype` (bf16), the same convention
  (as bytes, 2 GPUs would reach only 167 GB/s at 1 GB, half of NCCL on the same link).
- context / generation attention: `isl` new tokens per sequence (prefill, causal) / `isl + step`
  cached tokens per sequence with one new token (decode); `window_size` 0 = full attention.
- mla_context_module_perf / mla_generation_module_perf: one DeepSeek-V3 MLA attention layer on
  one GPU, projections included (AIConfigurator's loader: "module-level attention profiling
  (complete self_attn forward)"; at B=1, one token, 128 heads the bf16 rows take ~210 us on H100:
  the layer's 187 M projection weights are ~374 MB, ~112 us of HBM at the datasheet rate; the
  attention core of one token is a few us). `num_heads` is the heads on this GPU (128 / TP;
  `tp_size` is always 1), `isl` the prompt (context: `batch_size` fresh prompts of `isl` tokens;
  generation: `isl` = 1, one new token over `isl + step` cached tokens), `gemm_type` the
  projections' dtype, `kv_cache_dtype` the latent cache's. Timed as a CUDA-graph replay of the
  module's forward (AIConfigurator's `collector/vllm/collect_mla_module.py`: `use_cuda_graph` for
  MLA context and both generation phases), so no host launch time is in the rows. `kernel_source`
  is the backend that ran the attention: on H100 the decode backend also takes short prompts
  (FLASH_ATTN_MLA, bf16 cache, up to 512 tokens; FLASHMLA, fp8 cache, up to 128), longer ones
  run FLASH_ATTN prefill; on B200 only one-token prompts go to FLASHINFER_MLA.
- dsa_context_module_perf / dsa_generation_module_perf: one DeepSeek sparse-attention layer on one
  GPU (`architecture` DeepseekV32ForCausalLM or GlmMoeDsaForCausalLM, each with its own dims), the
  MLA module above plus the lightning indexer and sparse MLA over its top-k (the same collector,
  `collect_mla_module.py`, attention type `dsa`). Context rows: `isl` new tokens per prompt over a
  cached prefix of `step` tokens (0 or 128), launched eagerly (the collector: the sparse prefill's
  scratch does not survive CUDA-graph capture; none takes less than ~1.1 ms on H100 at any size);
  generation rows: one new token over `isl + step - 1` cached, CUDA-graph replays. `num_heads` is
  the attention's local heads; the indexer is replicated (64 / 32 heads whatever `num_heads`).
  `kernel_source` FLASHMLA_SPARSE, or on B200 FLASHINFER_MLA_SPARSE for a bf16 cache at <= 16
  heads and every fp8 cache.
- gdn_perf: one gated DeltaNet layer's kernels on one GPU, by `phase` (AIConfigurator's
  `collector/vllm/collect_gdn.py`): `context` times the packed-QKV causal conv1d
  (`causal_conv1d_fn`, launched eagerly: vLLM 0.24's varlen conv cannot be captured) and the
  chunked scan (`chunk_gated_delta_rule_flashinfer`, vLLM's default backend on SM90 / SM100: q and
  k arrive L2-normalized, g and beta precomputed) of `batch_size` fresh prompts of `seq_len`
  tokens; `generation` times `causal_conv1d_update` and the packed recurrent decode
  (`fused_recurrent_gated_delta_rule_packed_decode`: gating and q/k norms inside) of one token
  per sequence. One row per kernel: a layer is the sum of its phase's two rows (`num_tokens` =
  batch x seq_len, checked). `num_k_heads` / `num_v_heads` are the heads on this GPU (the
  models' 16 / 32-64 heads over TP), head dims 128, conv width `d_conv`; `d_model` is the hidden
  size, which the two kernels never read. The scan's latency follows one CTA per (sequence,
  value head) running its chunks one after another: flat up to a wave of SMs, then stepping by
  whole waves (H100, 32 heads, 32768 tokens: 1.5 ms for 1-4 sequences, 3.5 ms for 8, 7.2 ms for
  16); the recurrent decode follows the state bytes (64 KB per sequence and head).
- moe_perf `num_tokens` tokens through one MoE layer (router + routed experts), `inter_size` the
  expert width before tensor parallelism (each rank holds inter_size / moe_tp_size).

Why one file of ~840 lines: every table's reader, case builder and held-out family rule share the
row conventions above (`_row`, `sample`, the kernel tables per dtype), and a table's section is
read top to bottom beside its column notes; the sections (GEMM, attention, MoE, MLA, DSA, gated
DeltaNet, collectives) are independent and would split into per-table modules when one grows.
"""

from __future__ import annotations

import csv
import gzip
import random
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import aic_engine_kernels as aek
import torch
from aic_engine_kernels import VLLM, EngineKernels
from calibration_cases import IN_GRAPH, Case, Op, Row, _rms_norm_eager, meta, meta_op

from tensor_cast.backends.roofline import ExecutionMode
from tensor_cast.deployment.quantization import PER_TENSOR

tc, aten = torch.ops.tensor_cast, torch.ops.aten
FP8 = torch.float8_e4m3fn
# Which kernel_source rows each engine's stages read, and how they were launched: aic_engine_kernels.py
# (`EngineKernels`, one entry per engine; the engine is the tables' `framework`). The vLLM names below
# are kept for importers.
GEMM_DTYPES = dict(VLLM.gemm_dtypes)
GEMM_KERNELS = dict(VLLM.gemm_kernels)
# DeepGEMM rows never take less than ~80 us (H100) / ~170 us (B200) per call, at any shape up to
# where the GPU time passes it (then latency follows the FLOPs: max(floor, GPU), not a sum): the
# launcher's host-side work per call is in them. They are costed as eager launches, which pay
# `gemm_fp8_block_call_floor_us`; a CUDA-graph replay does not.
HOST_TIMED = ExecutionMode(cuda_graphs="never")
HOST_TIMED_GEMMS = VLLM.host_timed_gemms
COLLECTIVES = {"all_reduce": "all_reduce", "all_gather": "all_gather", "reduce_scatter": "reduce_scatter",
               "alltoall": "all_to_all"}
ELEMENT_BYTES = {"half": 2, "bfloat16": 2, "int8": 1}
# The tables' MoE dtypes and the tensor_cast scheme of each (int4_wo: Marlin's int4 weight-only, group
# 128 -> w4a16; w4a16_mxfp4: MXFP4 weights with 16-bit activations -> mxfp4; w4a8_mxfp4_mxfp8: MXFP4
# weights with MXFP8 activations, two expert configurations on B200 -> w4a8_mxfp4_mxfp8).
MOE_DTYPES = {"bfloat16": "none", "fp8_block": "fp8_block", "fp8": "fp8", "w4a16_mxfp4": "mxfp4",
              "w4a8_mxfp4_mxfp8": "w4a8_mxfp4_mxfp8", "int4_wo": "w4a16", "nvfp4": "nvfp4"}
MOE_KERNELS = dict(VLLM.moe_kernels)  # per engine: EngineKernels.moe_kernels
FLAG_MOE_KERNELS = dict(VLLM.flag_moe_kernels)
ATTENTION_FALLBACK_KERNELS = VLLM.attention_excluded
NOT_FITTED = "not fitted: another kernel"  # classes evaluated only (the fit never sees them)
# An isolated GEMM row: more than ISOLATED_RATIO x off both of its M neighbours in the table (the
# next smaller and larger M of the same kernel, dtype, N and K; at an end of the sweep, the two
# nearest on its one side, so an end row beside a glitch is not taken for one). Latency is monotone in M within a tile regime and the tables step M by at most 2x (1 to
# 17 one by one, then pairs 32/33 ... 4352/4353, then 8192 ... 32768), so a row 1.8x off both
# sides is a measurement glitch, not a kernel effect: B200 fp8 at N = 768, K = 768 takes 19.3 us at
# M = 2048 and 22.9 us at 2560 but 10.4 us at 2304; N = 8192, K = 8192 takes 38 us at M = 16 and
# 18-19 us at 8 and 17; 305 of its 483 sweeps' M = 1 row (the first timed) is 2-4x its M = 2 and 3 rows. Such rows are
# marked (`Row.extra`), kept out of the fit and reported apart (`aic_fit.class_errors`).
ISOLATED_RATIO = 1.8
ISOLATED = "isolated: > 1.8x off both M neighbours"
# A custom all-reduce row larger than the engine's custom kernel takes (it runs NCCL there): not used
ABOVE_CUSTOM_LIMIT = "above the engine's custom all-reduce limit"
FA3_MAX_HEAD_DIM = VLLM.attention_max_head_dim  # FlashAttention-3 runs head_dim <= 256


def engine_for(folder: str | Path, engine: EngineKernels | None) -> EngineKernels:
    """`engine`, else the entry of the engine whose kernels the folder's tables timed."""
    return engine if engine is not None else aek.kernels(aek.engine_of(folder))


def read_table(folder: str | Path, name: str) -> list[dict[str, str]]:
    path = Path(folder) / f"{name}.csv.gz"
    if not path.is_file():
        return []
    with gzip.open(path, "rt", newline="") as handle:
        return list(csv.DictReader(handle))


def family_hash(key: Any, salt: str = "") -> float:
    """A stable number in [0, 1) for a shape family: held-out families are chosen by it."""
    return zlib.crc32(f"{salt}{key}".encode()) / 2**32


def sample(items: Sequence[Any], count: int, seed: int = 0) -> list[Any]:
    if len(items) <= count:
        return list(items)
    return random.Random(seed).sample(list(items), count)


def _row(section: str, name: str, params: dict[str, Any], dtype: str, latency_ms: str) -> Row:
    return Row(section=section, name=name, params=params, dtype=dtype, median_us=float(latency_ms) * 1e3)


# ---- GEMM -----------------------------------------------------------------------------------------
def gemm_ops(m: int, n: int, k: int, variant: str, dynamic: bool = True, fp8_group: int = PER_TENSOR) -> list[Op]:
    if variant == "bf16":
        return [meta_op(aten.linear.default, meta(m, k), meta(n, k))[0]]
    if variant == "nvfp4":  # FP4 activations quantized on the fly (one FP8 scale per 16), then the FP4 GEMM
        quant, (q, scale) = meta_op(tc.quantize.default, meta(m, k), "nvfp4", 16, True)
        linear, _ = meta_op(tc.quant_linear.default, q, scale, [meta(n, k)], [None], variant, torch.bfloat16)
        return [quant, linear]
    # vLLM's fp8 scheme quantizes activations dynamically per tensor (tensor_cast's "fp8" scheme),
    # SGLang's per token (`fp8_group` PER_TOKEN), TRT-LLM's with the checkpoint's static scale
    # (`dynamic` False); fp8_block per 1x128 group
    group = 128 if variant == "fp8_block" else fp8_group
    quant, (q, scale) = meta_op(tc.quantize.default, meta(m, k), "fp8", group, dynamic or variant == "fp8_block")
    linear, _ = meta_op(tc.quant_linear.default, q, scale, [meta(n, k, dtype=FP8)], [None], variant, torch.bfloat16)
    return [quant, linear]


def gemm_m_range(m: int) -> str:
    return "M<=16" if m <= 16 else ("M 17-256" if m <= 256 else "M>256")


def isolated_gemm_rows(rows: Iterable[dict[str, str]]) -> set[tuple[str, str, int, int, int]]:
    """(kernel, dtype, M, N, K) of the rows more than ISOLATED_RATIO x off both M neighbours."""
    latency: dict[tuple[str, str, int, int], dict[int, float]] = {}
    for r in rows:
        key = (r["kernel_source"], r["gemm_dtype"], int(r["n"]), int(r["k"]))
        latency.setdefault(key, {})[int(r["m"])] = float(r["latency"])
    out = set()
    for (kernel, dtype, n, k), by_m in latency.items():
        ms = sorted(by_m)
        for i, m in enumerate(ms):
            around = (i - 1, i + 1) if 0 < i < len(ms) - 1 else ((1, 2) if i == 0 else (i - 1, i - 2))
            neighbours = [by_m[ms[j]] for j in around if 0 <= j < len(ms)]
            t = by_m[m]
            if neighbours and all(max(t / x, x / t) > ISOLATED_RATIO for x in neighbours):
                out.add((kernel, dtype, m, n, k))
    return out


def gemm_cases(folder: str | Path, per_variant: int = 1000, seed: int = 0, engine: EngineKernels | None = None
               ) -> list[Case]:
    eng = engine_for(folder, engine)
    cases = []
    rows = read_table(folder, "gemm_perf")
    isolated = isolated_gemm_rows(rows)
    for table_dtype, variant in eng.gemm_dtypes.items():
        chosen = [r for r in rows if r["gemm_dtype"] == table_dtype and r["kernel_source"] in eng.gemm_kernels[variant]]
        for r in sample(chosen, per_variant, seed):
            m, n, k = int(r["m"]), int(r["n"]), int(r["k"])
            row = _row("gemm", r["kernel_source"], {"M": m, "N": n, "K": k}, variant, r["latency"])
            if (r["kernel_source"], table_dtype, m, n, k) in isolated:
                row = replace(row, extra=ISOLATED)
            cases.append(Case(row=row, cls=f"gemm {variant} {gemm_m_range(m)}", group=f"N{n} K{k}",
                              stage=f"gemm {variant}", ops=tuple(gemm_ops(m, n, k, variant, eng.fp8_dynamic_quant,
                                                                 eng.fp8_act_group)),
                              mode=HOST_TIMED if variant in eng.host_timed_gemms else IN_GRAPH))
    return cases + (quant_bound_cases(rows, isolated) if eng.quant_bound_rows else [])


# The CUTLASS fp8 rows whose time is the dynamic per-tensor quantization's: N <= 128 and M = 8,192
# or 16,384, where the GEMM is ~10% of the row (B200, M = 8,192, K = 65,536: 1,039 us at N = 32 and
# 1,041 us at N = 128; 127 ns a row). A 1,000-row sample holds a handful of them, so every such row
# of the table is reported as its own class, evaluation only (no stage fits them): they show the
# per-row and per-iteration costs of the quantization apart. B200's section puts 2.2 ns a row and
# 3.9 ns an iteration (fitted with the GEMMs, with the epilogue overlap: 6.6% on these rows; the
# section before it, 1.4 and 4.2 ns: 10.1%); these rows alone give 2.8 ns and 3.4 ns (3.3%). The
# M = 32,768 rows are left out: at K = 1,536-8,192 they take less per row than the table's own
# M = 32,768, K = 32 row (B200, N = 32: 3.0 ns a row at K = 1,536, 6.5 at K = 32).
QUANT_BOUND_N = 128
QUANT_BOUND_M = (8192, 16384)
QUANT_BOUND_CLASS = "quant per_tensor (fp8 GEMM rows, N<=128, M 8k-16k)"


def quant_bound_cases(rows: Sequence[dict[str, str]], isolated: set[tuple[str, str, int, int, int]]) -> list[Case]:
    """Every non-isolated CUTLASS per-tensor fp8 row with N <= QUANT_BOUND_N and M in QUANT_BOUND_M, as
    evaluation-only cases (stage NOT_FITTED) of the class QUANT_BOUND_CLASS."""
    cases = []
    for r in rows:
        if r["gemm_dtype"] != "fp8" or r["kernel_source"] not in GEMM_KERNELS["fp8"]:
            continue
        m, n, k = int(r["m"]), int(r["n"]), int(r["k"])
        if n > QUANT_BOUND_N or m not in QUANT_BOUND_M or (r["kernel_source"], "fp8", m, n, k) in isolated:
            continue
        row = _row("gemm", r["kernel_source"], {"M": m, "N": n, "K": k}, "fp8", r["latency"])
        cases.append(Case(row=row, cls=QUANT_BOUND_CLASS, group=f"N{n} K{k}", stage=NOT_FITTED,
                          ops=tuple(gemm_ops(m, n, k, "fp8")), mode=IN_GRAPH))
    return cases


# ---- attention ------------------------------------------------------------------------------------
def attention_ops(batch: int, heads: int, kv_heads: int, head_dim: int, q_len: int, context: int, window: int,
                  kv_dtype: str) -> list[Op]:
    kv = FP8 if kv_dtype == "fp8" else torch.bfloat16
    q = meta(batch, heads, q_len, head_dim)
    k = meta(batch, kv_heads, q_len, head_dim, dtype=kv)
    op, _ = meta_op(tc.attention.default, q, k, k, context, head_dim**-0.5, True, window, None)
    return [op]


def attention_cases(folder: str | Path, per_phase: int = 4000, seed: int = 0, engine: EngineKernels | None = None
                    ) -> list[Case]:
    eng = engine_for(folder, engine)
    cases = []
    for table, phase in (("context_attention_perf", "prefill"), ("generation_attention_perf", "decode")):
        rows = [r for r in read_table(folder, table) if r["attn_dtype"] in eng.attention_dtypes
                and r.get("beam_width", "1") == "1"
                and int(r["head_dim"]) <= eng.attention_max_head_dim and r["kernel_source"] not in eng.attention_excluded]
        for r in sample(rows, per_phase, seed):
            b, isl, h, hkv, d = (int(r[c]) for c in ("batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim"))
            window, step = int(r["window_size"]), int(r["step"])
            q_len, context = (isl, 0) if phase == "prefill" else (1, isl + step - 1)
            kv = "fp8" if r["kv_cache_dtype"] == "fp8" else "bf16"
            params = {"B": b, "isl": isl, "step": step, "hq": h, "hkv": hkv, "d": d, "window": window, "kv": kv}
            row = _row("attn", r["kernel_source"], params, "bf16", r["latency"])
            cls = f"attention {phase}" + (" fp8 KV" if kv == "fp8" else "") + (" window" if window else "")
            cases.append(Case(row=row, cls=cls, group=f"hq{h} hkv{hkv} d{d}", stage=f"attention {phase}",
                              ops=tuple(attention_ops(b, h, hkv, d, q_len, context, window, kv))))
    return cases


# ---- fused MoE ------------------------------------------------------------------------------------
# Expert configurations (hidden, inter, k, E) of NVIDIA Nemotron-3 MoE layers: squared-ReLU experts
# without a gate (one up projection of `inter` rows, not 2 x inter). Read as gated SwiGLU, the
# H100 bf16 (2688, 1856, 6, 128) rows would stream 3.8 GB of weights in 858 us, 4.5 TB/s, above
# H100's 3.35 TB/s; ungated, 2.6 GB at 3.0 TB/s.
UNGATED_MOE = {(2688, 1856, 6, 128), (1024, 2688, 22, 512), (2048, 5120, 22, 512)}


def moe_ops(tokens: int, hidden: int, inter: int, top_k: int, experts: int, tp: int, ep: int, scheme: str,
            ungated: bool = False) -> list[Op]:
    """One MoE layer as tensor_cast costs it from its shape alone (uniform random routing); `tokens`
    are routed over all E experts and this GPU holds E / ep of them (ep_dp 1: the tables' EP rows
    route `num_tokens` tokens in all, one rank timed). `ungated`: the row's kernel says so (TensorRT-LLM's
    `moe_torch_flow_nongated`), whatever UNGATED_MOE lists."""
    width = inter // tp
    gated = not ungated and (hidden, inter, top_k, experts) not in UNGATED_MOE
    op, _ = meta_op(tc.moe.default, meta(tokens, hidden), meta(experts, hidden), [],
                    meta(experts, (2 if gated else 1) * width, hidden), meta(experts, hidden, width), None, None, [],
                    [], top_k, "softmax", "silu" if gated else "relu", "concat" if gated else "none", False, scheme,
                    ep, 1)
    return [op]


def balanced_counts(tokens: int, experts: int, top_k: int) -> Any:
    """Rows per expert of AIConfigurator's `balanced_logits` (collector/helper.py): token i picks
    experts (i + j·stride) mod E, j < k, stride = ceil(E / k); with fewer tokens than the stride,
    (floor(i·stride / T) + j·stride) mod E (exact, no randomness)."""
    import numpy as np

    stride = -(-experts // top_k)
    i = np.arange(tokens)[:, None]
    j = np.arange(top_k)[None, :]
    if tokens >= stride:
        picks = (i + j * stride) % experts
    else:
        picks = np.floor(i * stride / tokens + j * stride).astype(np.int64) % experts
    return np.bincount(picks.ravel(), minlength=experts)


def power_law_counts(tokens: int, experts: int, top_k: int, ep: int, alpha: float, seed: int) -> Any:
    """Rows per expert of one draw of AIConfigurator's power-law generator (collector/helper.py
    `_generate_power_law_distribution`, facts only): E iid samples of a power law x^-alpha on [1,
    0.8 T] (on [0.01, 2] when T·k <= E), scaled to T·k rows and rounded (the remainder given to the
    largest / taken from the smallest, ties in random order), then the EP rank of largest load
    swapped to rank 0."""
    import numpy as np

    rng = np.random.default_rng(seed)
    low, high = (1.0, tokens * 0.8) if tokens * top_k > experts else (0.01, 2.0)
    u = rng.random(experts)
    a = 1 - alpha
    x = ((high ** a - low ** a) * u + low ** a) ** (1 / a)
    counts = np.round(x / x.sum() * tokens * top_k).astype(np.int64)
    delta = tokens * top_k - int(counts.sum())
    order = np.lexsort((rng.random(experts), -counts))  # largest first, ties in random order (torch.argsort's are unordered)
    for n in range(abs(delta)):
        if delta > 0:
            counts[order[n % experts]] += 1
        else:
            e = order[-(n % experts) - 1]
            counts[e if counts[e] > 0 else int(np.argmax(counts))] -= 1
    groups = counts.reshape(ep, experts // ep)
    top = int(np.argmax(groups.sum(axis=1)))
    groups[[0, top]] = groups[[top, 0]]
    return groups.reshape(-1)


# Expert configurations whose model routes group-limited (DeepSeek-V3's `n_group` 8, `topk_group` 4:
# a token picks its k experts only inside the 4 groups of E / 8 experts with the best top-2 scores),
# as the harness runs them: (H, I, k, E) -> (groups, groups kept). The tables show it in the balanced
# rows: DeepSeek-V3's layer (H 7,168, I 2,048, E 256) takes 832 us at 32 tokens on B200 (block fp8),
# which would stream all 256 experts at 13.6 TB/s (B200's HBM: 8 TB/s), and 0.53-0.62x the time of
# the same experts at H 6,144 from 8 to 64 tokens; costed with `group_limited_counts` its balanced
# rows up to 128 tokens come within -7 to +15% on B200 block fp8 and NVFP4 and on H100 block fp8 (was
# +36 to +125%). Kimi-K2 (E 384) and the E 256, k 6 configuration route plainly (n_group 1): costed
# group-limited they come out 20-50% fast.
GROUP_LIMITED_MOE = {(7168, 2048, 8, 256): (8, 4)}


def group_limited_counts(tokens: int, experts: int, top_k: int, groups: int, kept: int) -> Any:
    """Rows per expert of AIConfigurator's balanced logits (`balanced_counts`) under group-limited
    top-k routing. The logits are softmax(one-hot of the token's k balanced experts): every picked
    expert scores the same, every other one the same lower value. A group scores the sum of its top
    two; with stride E / k = E / groups every group holds one of the token's experts, so all groups
    tie and the `kept` lowest-indexed win; the token keeps its experts there and fills the k -
    `kept` other picks with the lowest-indexed remaining experts of those groups (ties broken by
    index, as the tables show: those few experts take every token's extra picks)."""
    import numpy as np

    per = experts // groups
    stride = -(-experts // top_k)
    counts = np.zeros(experts, dtype=np.int64)
    for i in range(tokens):
        if tokens >= stride:
            picks = [(i + j * stride) % experts for j in range(top_k)]
        else:
            picks = [int(i * stride / tokens + j * stride) % experts for j in range(top_k)]
        score = [0] * groups
        for e in picks:
            score[e // per] = min(2, score[e // per] + 1)
        chosen_groups = sorted(sorted(range(groups), key=lambda g: (-score[g], g))[:kept])
        chosen = [e for e in picks if e // per in chosen_groups][:top_k]
        taken = set(chosen)
        for g in chosen_groups:
            for e in range(g * per, (g + 1) * per):
                if len(chosen) == top_k:
                    break
                if e not in taken:
                    chosen.append(e)
                    taken.add(e)
        counts[chosen] += 1
    return counts


def routed_rows(distribution: str, tokens: int, experts: int, top_k: int, ep: int, seed: int,
                groups: tuple[int, int] | None = None) -> list[int]:
    """Rows per expert on the timed rank (its E / ep experts) for a table row's routing; an
    expert's rows are capped at the tokens (a token picks an expert once). `groups`: (groups, kept)
    of a group-limited model (`GROUP_LIMITED_MOE`), applied to the balanced rows."""
    if distribution == "balanced" and groups:
        counts = group_limited_counts(tokens, experts, top_k, *groups)
    elif distribution == "balanced":
        counts = balanced_counts(tokens, experts, top_k)
    elif distribution.startswith("power_law_"):
        counts = power_law_counts(tokens, experts, top_k, ep, float(distribution.removeprefix("power_law_")), seed)
    else:
        raise ValueError(f"unknown MoE routing distribution {distribution!r}; known: balanced, power_law_<alpha>")
    return [min(int(c), tokens) for c in counts[: experts // ep]]


# Routings one power-law row's CUDA graph cycles through (AIConfigurator collector/vllm/collect_moe.py:
# `num_iter = 5` power-law draws captured in one graph, its latency divided by 5; a balanced row
# replays its one routing).
POWER_LAW_DRAWS = 5


def replayed_experts(distribution: str, tokens: int, experts: int, top_k: int, ep: int, seed: int,
                     groups: tuple[int, int] | None = None) -> int:
    """Distinct experts of the timed rank whose weights the harness's replays touch. It replays the
    same weights back to back (`benchmark_with_power`: warm-up, then timed CUDA-graph replays, no L2
    flush), so what fits in L2 is read from it (`moe_tiles.l2_resident_share`). A balanced row: its
    hit experts. A power-law row cycles through `POWER_LAW_DRAWS` draws: with T·k <= E the
    generator's scaled loads all round to 0 rows and its remainder loop hands the T·k rows out
    round-robin over the ranks to the lowest-indexed experts (collector/helper.py
    `_generate_power_law_distribution`), the same experts every draw; above, every draw hits its own
    random experts: the union of the seeded draws `seed`, `seed + 1`, ... (the first is the one the
    row is costed with)."""
    draws = POWER_LAW_DRAWS if distribution.startswith("power_law_") and tokens * top_k > experts else 1
    hit: set[int] = set()
    for j in range(draws):
        rows = routed_rows(distribution, tokens, experts, top_k, ep, seed + j, groups)
        hit.update(e for e, r in enumerate(rows) if r)
    return len(hit)


def zipf_skew_for(distribution: str, tokens: int, experts: int, top_k: int) -> float:
    """The `moe_skew` (Zipf exponent of expert popularity, `CostKnobs.moe_skew`) whose hottest expert
    takes the same expected share of the rows as in AIConfigurator's routing `distribution`
    (0 for balanced). The generator's expert loads are iid power-law draws on [low, high]
    (`power_law_counts`), so its hottest expert is the top order statistic of E draws, expected at
    the quantile 1 - 1/(2E); Zipf(s) gives expert 1 the inclusion probability q_1(s) (capped at 1:
    a token picks an expert once). Solved for s by bisection. The two shapes differ below the top
    (a power law's loads fall off exponentially with rank, Zipf's as a power): see README."""
    from tensor_cast.backends.formulas.moe import inclusion_probabilities

    if distribution == "balanced":
        return 0.0
    alpha = float(distribution.removeprefix("power_law_"))
    low, high = (1.0, tokens * 0.8) if tokens * top_k > experts else (0.01, 2.0)
    a = 1 - alpha

    def quantile(u: float) -> float:
        return ((high ** a - low ** a) * u + low ** a) ** (1 / a)

    grid = 2000
    mean = sum(quantile((j + 0.5) / grid) for j in range(grid)) / grid
    share = min(1.0, quantile(1 - 0.5 / experts) / (experts * mean) * top_k)  # q_1: the hottest's per-token rate
    lo, hi = 0.0, 8.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if inclusion_probabilities(experts, top_k, round(mid, 6))[0] < share:
            lo = mid
        else:
            hi = mid
    return round((lo + hi) / 2, 3)


def moe_table_ops(tokens: int, hidden: int, inter: int, top_k: int, experts: int, tp: int, ep: int, scheme: str,
                  rows: Sequence[int], local_only: bool = False, replayed: int = 0, ungated: bool = False) -> list[Op]:
    """One MoE layer costed with the routing the table row measured: the rank's (token, expert)
    rows and the experts hit from `rows` (exact counts, `MoEShape.spread` 0) instead of tensor_cast's
    expectation under random routing. `local_only`: a FlashInfer kernel (`local_rows_only`), which
    permutes only this rank's experts' rows: no remote rows. `replayed`: distinct experts whose
    weights the harness's replays touch (`replayed_experts`), `MoEShape.replay_bytes` of them."""
    from tensor_cast.backends.formulas.moe import moe_dims, moe_shape, routed_expert_counts, router_counts

    op = moe_ops(tokens, hidden, inter, top_k, experts, tp, ep, scheme, ungated)[0]
    call, d = op.call, moe_dims(op.call)
    pairs, hit = sum(rows), sum(1 for r in rows if r)
    routed = routed_expert_counts(d, pairs=pairs, experts_hit=hit, act=call.get("hidden"), gate_up=call.get("gate_up"),
                                  down=call.get("down"), gate_up_bias=None, down_bias=None, out_tokens=tokens)
    by_rows: dict[int, int] = {}
    for r in rows:
        if r:
            by_rows[r] = by_rows.get(r, 0) + 1
    shape = replace(moe_shape(d, pairs, call.get("hidden"), call.get("gate_up"), call.get("down")),
                    bins=tuple((n, r / tokens) for r, n in sorted(by_rows.items(), reverse=True)), spread=0)
    shape = replace(shape, replay_bytes=replayed * shape.expert_bytes)
    counts = router_counts(call) + routed
    if ep > 1 and not local_only:  # vLLM's EP path (expert_map): every pair's rows still flow through the kernels
        counts = counts + remote_rows(d, tokens * top_k - pairs, call)
    return [replace(op, counts=replace(counts, kernel=shape))]


def local_rows_only(kernel_source: str, engine: EngineKernels = VLLM) -> bool:
    """Whether an EP rank's fused MoE permutes only the rows of its own experts: FlashInfer's kernels
    do (TRT-LLM's take `local_expert_offset` / `local_num_experts`; the CUTLASS one, vLLM's
    `FlashInferExperts`, takes `ep_size` / `ep_rank`, and its permute expands only the (token,
    expert) pairs of local experts), and so does gpt-oss's OAI Triton kernel (its routing data is
    built from the rank's experts only); vLLM's expert-map path (Triton `fused_experts`, Marlin) does
    not. The tables show it: H100 per-tensor fp8 (FlashInfer CUTLASS), Nemotron's E 512, k 22 at EP
    256 and 16,384 tokens takes 398 us for 2 local experts, where the 360k remote pairs'
    intermediate rows alone (I 2,688, bf16, written and read) would take ~1.3 ms (costed with them,
    EP 32-256 rows came out +56% to +214% on average, without them 5-7%); H100 gpt-oss MXFP4 (OAI
    Triton), E 128 at EP 128 and 16,384 tokens: 204 us for one local expert (with the remote rows
    +545%, without them -20%)."""
    return any(marker in kernel_source for marker in engine.local_rows_markers)


def remote_rows(d: Any, rows: int, call: Any) -> Any:
    """What the (token, expert) rows of other ranks' experts cost an EP rank in vLLM's modular fused
    MoE with an expert map (Triton, CUTLASS, Marlin; all tokens gathered to every rank,
    AIConfigurator's EP rows): no GEMM, but
    their intermediate rows are written (the Triton kernel's `write_zeros_to_output` for blocks of
    non-local experts), activated and summed like local ones."""
    from tensor_cast.backends.counts import Counts
    from tensor_cast.backends.formulas.moe import routed_expert_counts

    if rows <= 0:
        return Counts(launches=0)
    full = routed_expert_counts(d, pairs=rows, experts_hit=0, act=call.get("hidden"), gate_up=call.get("gate_up"),
                                down=call.get("down"), gate_up_bias=None, down_bias=None, out_tokens=0, in_tokens=0)
    return Counts(flops={"vector": full.flops.get("vector", 0)}, bytes_read=full.bytes_read,
                  bytes_written=full.bytes_written, launches=0)


def dtype_rows(table: Sequence[dict[str, str]], dtype: str, kernel_source: str) -> list[dict[str, str]]:
    return [r for r in table if r["moe_dtype"] == dtype and r["kernel_source"] == kernel_source]


def moe_cases(folder: str | Path, per_dtype: int = 300, seed: int = 0, engine: EngineKernels | None = None
              ) -> list[Case]:
    """MoE layers of every dtype with a scheme (`MOE_DTYPES`), each run by the kernel vLLM picks on
    the device (`MOE_KERNELS`), balanced and power-law routing, expert-parallel ranks included;
    fitting stage `moe <scheme>` (per kernel variant), shape family the expert configuration. Rows of
    a kernel a launch flag selects (`FLAG_MOE_KERNELS`) are costed with its scheme, evaluated only."""
    eng = engine_for(folder, engine)
    cases = []
    table = read_table(folder, "moe_perf")
    present = {r["kernel_source"] for r in table}
    kernel = {d: next((k for k in ks if k in present), "") for d, ks in eng.moe_kernels.items()}
    runs = [(dtype, scheme, (kernel.get(dtype, ""), *eng.moe_also.get(dtype, ())), f"moe {dtype}", False)
            for dtype, scheme in MOE_DTYPES.items()]
    runs += [(dtype, scheme, (next((k for k in sorted(present) if name in k and dtype_rows(table, dtype, k)), ""),),
              f"moe {dtype} on {name} ({scheme}; evaluated only)", True)
             for (dtype, name), scheme in eng.flag_moe_kernels.items()]
    for dtype, scheme, sources, cls, flag_kernel in runs:
        rows = [r for source in sources for r in dtype_rows(table, dtype, source)]
        for r in sample(rows, per_dtype, seed):
            t, h, i, k, e, tp, ep = (int(r[c]) for c in ("num_tokens", "hidden_size", "inter_size", "topk",
                                                          "num_experts", "moe_tp_size", "moe_ep_size"))
            dist = r["distribution"]
            params = {"T": t, "H": h, "I": i, "k": k, "E": e, "tp": tp, "ep": ep, "routing": dist}
            row = _row("moe", r["kernel_source"], params, dtype, r["latency"])
            draw = zlib.crc32(repr(params).encode())
            groups = GROUP_LIMITED_MOE.get((h, i, k, e)) if eng.group_limited_routing else None
            rows_per_expert = routed_rows(dist, t, e, k, ep, draw, groups)
            routing = "balanced" if dist == "balanced" else "power-law"
            variant = "bf16" if scheme == "none" else scheme
            group = f"E{e} k{k} H{h} I{i}"
            ungated = r["kernel_source"] in eng.ungated_moe_kernels
            cases.append(Case(row=row, cls=cls if flag_kernel else f"{cls} {routing}", group=group,
                              stage=NOT_FITTED if flag_kernel else f"moe {variant}",
                              ops=tuple(moe_table_ops(t, h, i, k, e, tp, ep, scheme, rows_per_expert,
                                                      local_only=local_rows_only(r["kernel_source"], eng),
                                                      replayed=replayed_experts(dist, t, e, k, ep, draw, groups),
                                                      ungated=ungated))))
            if routing == "power-law" and not flag_kernel:  # the same row as a user would cost it: random routing at a matched skew
                cases.append(Case(row=row, cls=f"moe {dtype} power-law via moe_skew (evaluated only)", group=group,
                                  stage=NOT_FITTED, ops=tuple(moe_skew_ops(t, h, i, k, e, tp, ep, scheme,
                                                                           zipf_skew_for(dist, t, e, k), ungated))))
    return cases


def moe_skew_ops(tokens: int, hidden: int, inter: int, top_k: int, experts: int, tp: int, ep: int, scheme: str,
                 skew: float, ungated: bool = False) -> list[Op]:
    """`moe_ops` costed with `CostKnobs.moe_skew` = skew (random routing over Zipf popularity)."""
    from tensor_cast.backends.formulas.moe import moe
    from tensor_cast.backends.formulas.registry import CostKnobs

    op = moe_ops(tokens, hidden, inter, top_k, experts, tp, ep, scheme, ungated)[0]
    call = replace(op.call, knobs=CostKnobs(moe_skew=skew))
    return [replace(op, call=call, counts=moe(call))]


# ---- MLA modules ---------------------------------------------------------------------------------
# DeepSeek-V3's MLA dimensions (config.json): hidden, q_lora_rank, kv_lora_rank, qk_nope/rope head
# dims, v head dim.
MLA_DIMS = {"hidden": 7168, "q_lora": 1536, "kv_lora": 512, "nope": 128, "rope": 64, "v": 128}
MLA_GEMM_TYPES = {"bfloat16": "bf16"}
# Tables whose harness ran vLLM's two MLA RMSNorms (q_a, kv_a) as the native eager chain (8 kernels
# each: fp32 upcast, pow, mean, +eps, rsqrt, mul, downcast, x weight), not the fused kernel a
# serving engine runs. AIConfigurator's collector/vllm/utils.py `enable_engine_fused_ops` says
# module collectors did so until it installed the fused `vllm_c` RMSNorm ("tens of us per call";
# B200 MLA generation module, 64 heads, fp8 cache, 8192 tokens: bs1 109.5 -> 78.6 us, bs16
# 143.7 -> 95.2 us). The B200 tables match the fused numbers (78.1 / 97.7 us), the H100 ones show
# its signature: a cost per prompt token (22 ns in a fit without the chain; 0 with it and on B200)
# and ~22 us more per call. The chain is costed as the eager kernels it is, so the fitted MLA
# parameters keep only what a serving engine also runs.
NATIVE_NORM_DEVICES = set(VLLM.native_norm_devices)  # per engine: EngineKernels.native_norm_devices


def mla_linear(tokens: int, n: int, k: int) -> Op:
    return meta_op(aten.linear.default, meta(tokens, k), meta(n, k))[0]


def mla_module_ops(batch: int, heads: int, q_len: int, context: int, kv_dtype: str,
                   native_norms: bool = False, dims: dict[str, int] | None = None) -> list[Op]:
    """What tensor_cast costs for one DeepSeek-V3 MLA attention layer on one GPU with `heads`
    local heads (vLLM's DeepseekV2MLAAttention forward): the fused q_a + kv_a projection
    (7168 -> 1536 + 576), the q_a and kv_a RMSNorms, q_b (1536 -> heads x 192), RoPE on the query
    and key rope parts, `mla_attention` over the latent (form `auto`: absorbed, FlashMLA-style, for
    one-token decode steps; expanded with kv_b for prefill, which also up-projects the latent) and
    o_proj (heads x 128 -> 7168). The cache append is inside the attention op's cost.

    `dims` with `index_heads`, `index_dim`, `topk` (a DSA model, `DSA_DIMS`): the layer also runs
    the lightning indexer as tensor_cast traces it (`models/dsa_attention.py`: wq_b from the q_a
    residual, wk and its LayerNorm, the head weights, one `dsa_indexer`) and attends its top-k
    (sparse MLA, absorbed at every step length)."""
    d = MLA_DIMS if dims is None else dims
    tokens = batch * q_len
    kv = FP8 if kv_dtype == "fp8" else torch.bfloat16
    if native_norms:  # the harness's unfused RMSNorm: 8 eager kernels each (see NATIVE_NORM_DEVICES)
        norms = _rms_norm_eager(tokens, d["q_lora"]) + _rms_norm_eager(tokens, d["kv_lora"])
    else:
        norms = [meta_op(tc.rms_norm.default, meta(tokens, width), meta(width), 1e-6)[0]
                 for width in (d["q_lora"], d["kv_lora"])]
    ops = [mla_linear(tokens, d["q_lora"] + d["kv_lora"] + d["rope"], d["hidden"]), *norms,
           mla_linear(tokens, heads * (d["nope"] + d["rope"]), d["q_lora"])]
    indices = None
    if "topk" in d:
        ops += dsa_indexer_ops(batch, q_len, context, kv, d)
        indices = meta(batch, q_len, d["topk"], dtype=torch.int32)
    q_nope, q_rope = meta(batch, heads, q_len, d["nope"]), meta(batch, heads, q_len, d["rope"])
    latent, k_rope = meta(batch, 1, q_len, d["kv_lora"], dtype=kv), meta(batch, 1, q_len, d["rope"], dtype=kv)
    kv_b = meta(heads * (d["nope"] + d["v"]), d["kv_lora"])
    ops.append(meta_op(tc.mla_attention.default, q_nope, q_rope, latent, k_rope, kv_b, context,
                       (d["nope"] + d["rope"]) ** -0.5, indices, 1)[0])
    ops.append(mla_linear(tokens, d["hidden"], heads * d["v"]))
    return ops


def dsa_indexer_ops(batch: int, q_len: int, context: int, kv: torch.dtype, d: dict[str, int]) -> list[Op]:
    """The lightning indexer of one DSA layer as tensor_cast traces it: wq_b (q_lora -> index heads x
    index dim, from the q_a residual), wk (hidden -> index dim) and its LayerNorm, weights_proj
    (hidden -> index heads), then `dsa_indexer` over the cached and new keys (the keys at the KV
    cache dtype). The indexer is replicated, not split by tensor parallelism: its heads are the
    model's whatever `heads` the attention has on the GPU."""
    tokens, heads, dim = batch * q_len, d["index_heads"], d["index_dim"]
    norm = meta_op(aten.layer_norm.default, meta(tokens, dim), [dim], meta(dim), meta(dim), 1e-6)[0]
    indexer = meta_op(tc.dsa_indexer.default, meta(batch, q_len, heads, dim), meta(batch, q_len, dim, dtype=kv),
                      meta(batch, q_len, heads), context, d["topk"])[0]
    return [mla_linear(tokens, heads * dim, d["q_lora"]), mla_linear(tokens, dim, d["hidden"]), norm,
            mla_linear(tokens, heads, d["hidden"]), indexer]


def mla_cases(folder: str | Path, per_phase: int = 1500, seed: int = 0, engine: EngineKernels | None = None
              ) -> list[Case]:
    """One DeepSeek-V3 MLA layer per row (bf16 projections), fitting stage `mla`; the shape family is
    the local head count (`aic_fit.held_out` keeps some head counts out of the fit)."""
    eng = engine_for(folder, engine)
    cases = []
    for table, phase in (("mla_context_module_perf", "prefill"), ("mla_generation_module_perf", "decode")):
        rows = [r for r in read_table(folder, table) if r["gemm_type"] in MLA_GEMM_TYPES
                and r["mla_dtype"] == "bfloat16" and r["tp_size"] == "1"]
        for r in sample(rows, per_phase, seed):
            b, h, isl, step = (int(r[c]) for c in ("batch_size", "num_heads", "isl", "step"))
            q_len, context = (isl, 0) if phase == "prefill" else (1, isl + step - 1)
            kv = "fp8" if r["kv_cache_dtype"] == "fp8" else "bf16"
            params = {"B": b, "isl": isl, "step": step, "heads": h, "kv": kv}
            row = _row("mla", r["kernel_source"], params, MLA_GEMM_TYPES[r["gemm_type"]], r["latency"])
            cls = f"mla {phase}" + (" fp8 KV" if kv == "fp8" else "")
            cases.append(Case(row=row, cls=cls, group=f"heads{h}", stage="mla",
                              ops=tuple(mla_module_ops(b, h, q_len, context, kv, r["device"] in eng.native_norm_devices))))
    return cases


# ---- DSA modules ---------------------------------------------------------------------------------
# The DSA models' attention dimensions (config.json), by the tables' `architecture`.
DSA_DIMS = {
    "DeepseekV32ForCausalLM": {"hidden": 7168, "q_lora": 1536, "kv_lora": 512, "nope": 128, "rope": 64, "v": 128,
                               "index_heads": 64, "index_dim": 128, "topk": 2048},
    "GlmMoeDsaForCausalLM": {"hidden": 6144, "q_lora": 2048, "kv_lora": 512, "nope": 192, "rope": 64, "v": 256,
                             "index_heads": 32, "index_dim": 128, "topk": 2048},
}
DSA_NAMES = {"DeepseekV32ForCausalLM": "V3.2", "GlmMoeDsaForCausalLM": "GLM-5"}


def dsa_cases(folder: str | Path, per_phase: int = 1200, seed: int = 0, engine: EngineKernels | None = None
              ) -> list[Case]:
    """One DSA attention layer per row (bf16 projections; DeepSeek-V3.2 and GLM-5), fitting stage
    `dsa`; the shape family is the model's head configuration on the GPU (`aic_fit.held_out`).
    Context rows were launched eagerly (AIConfigurator's collector: the sparse prefill's scratch
    does not survive CUDA-graph capture), generation rows replayed in a CUDA graph; context rows'
    `step` is the cached prefix, generation rows' the sequence length with the new token."""
    eng = engine_for(folder, engine)
    cases = []
    for table, phase in (("dsa_context_module_perf", "prefill"), ("dsa_generation_module_perf", "decode")):
        # `num_heads` is the heads on the GPU (SGLang's rows at tp_size 2-8 too: 64 / tp_size for GLM-5)
        rows = [r for r in read_table(folder, table) if r["gemm_type"] in MLA_GEMM_TYPES
                and r["mla_dtype"] == "bfloat16" and r["architecture"] in DSA_DIMS
                and not any(marker in r["kernel_source"] for marker in eng.dsa_excluded)]
        for r in sample(rows, per_phase, seed):
            b, h, isl, step = (int(r[c]) for c in ("batch_size", "num_heads", "isl", "step"))
            q_len, context = (isl, step) if phase == "prefill" else (1, isl + step - 1)
            kv = "fp8" if r["kv_cache_dtype"] == "fp8" else "bf16"
            model = DSA_NAMES[r["architecture"]]
            params = {"model": model, "B": b, "isl": isl, "step": step, "heads": h, "kv": kv}
            row = _row("dsa", r["kernel_source"], params, MLA_GEMM_TYPES[r["gemm_type"]], r["latency"])
            cls = f"dsa {phase}" + (" fp8 KV" if kv == "fp8" else "")
            ops = mla_module_ops(b, h, q_len, context, kv, r["device"] in eng.native_norm_devices,
                                 DSA_DIMS[r["architecture"]])
            cases.append(Case(row=row, cls=cls, group=f"{model} heads{h}", stage="dsa", ops=tuple(ops),
                              mode=HOST_TIMED if phase == "prefill" else IN_GRAPH))
    return cases


# SGLang's GLM-5 indexer kernels timed alone (AIConfigurator's collector/sglang/glm5_dsa_sparse_modules.py, CUDA-graph
# replays, synthetic inputs): DeepGEMM's fp8_mqa_logits over each request's causal key range and the fused top-2048
# (`score_mode` top_last: clear winners; the collector writes 0 where a request's keys are at most the top-k: nothing
# to select, no kernel). Their sum is the indexer's logits + top-k; the module rows also hold its RoPE, fp8
# quantization and key-cache insert, which these do not. Rows of one new token are left out: the collector times the
# ragged prefill kernel at those shapes too (one query's keys walked by one CTA: B200, 1 x 131,072 keys, 311 us), where
# SGLang's decode runs the paged kernel (fp8_paged_mqa_logits, split over the keys).
INDEXER_KERNEL_TABLES = ("glm5_mqa_logits_module_perf", "glm5_topk_module_perf")
INDEXER_KERNELS_CLASS = "dsa indexer kernels, GLM-5 (logits + top-k alone; evaluated only)"


def dsa_indexer_kernel_cases(folder: str | Path, count: int = 400, seed: int = 0,
                             engine: EngineKernels | None = None) -> list[Case]:
    """Evaluation-only cases: the `dsa_indexer` op of GLM-5 (fp8 keys) against the logits + top-k kernel rows
    of the same (batch, new tokens, cached tokens)."""
    logits = {(r["batch_size"], r["isl"], r["step"]): float(r["latency"])
              for r in read_table(folder, INDEXER_KERNEL_TABLES[0])}
    topk = {(r["batch_size"], r["isl"], r["step"]): float(r["latency"])
            for r in read_table(folder, INDEXER_KERNEL_TABLES[1]) if r["score_mode"] == "top_last"}
    d = DSA_DIMS["GlmMoeDsaForCausalLM"]
    cases = []
    for key in sample(sorted(k for k in set(logits) & set(topk) if int(k[1]) > 1), count, seed):
        b, isl, step = (int(v) for v in key)
        row = _row("dsa", "+".join(INDEXER_KERNEL_TABLES), {"model": "GLM-5", "B": b, "isl": isl, "step": step},
                   "fp8", str(logits[key] + topk[key]))
        indexer = dsa_indexer_ops(b, isl, step, FP8, d)[-1]
        cases.append(Case(row=row, cls=INDEXER_KERNELS_CLASS, group="GLM-5 indexer", stage=NOT_FITTED, ops=(indexer,)))
    return cases


# ---- gated DeltaNet --------------------------------------------------------------------------------
GDN_KERNELS = dict(VLLM.gdn_kernels)  # per engine: EngineKernels.gdn_kernels


def gdn_ops(batch: int, seq: int, k_heads: int, k_dim: int, v_heads: int, v_dim: int, conv: int,
            decode_query_len: int) -> list[Op]:
    """One `gated_delta_net` call (conv1d + gating + the delta rule) for `batch` sequences of `seq` new tokens."""
    channels = 2 * k_heads * k_dim + v_heads * v_dim
    gate = meta(batch, seq, v_heads)
    op, _ = meta_op(tc.gated_delta_net.default, meta(batch, seq, channels), gate, gate, meta(channels, 1, conv),
                    meta(v_heads, dtype="fp32"), meta(v_heads), k_heads, k_dim, v_heads, v_dim, decode_query_len)
    return [op]


def gdn_cases(folder: str | Path, engine: EngineKernels | None = None) -> list[Case]:
    """One gated DeltaNet layer per (phase, shape): the phase's two kernel rows summed (conv + scan).
    Context rows cost the chunked form (decode_query_len 0: vLLM's prefill path runs it even for one
    token), generation rows the recurrent one; the shape family is the (key heads, value heads) pair
    on the GPU (`aic_fit.held_out`)."""
    gdn_kernels = engine_for(folder, engine).gdn_kernels
    rows = read_table(folder, "gdn_perf")
    keys = ("phase", "batch_size", "seq_len", "num_k_heads", "head_k_dim", "num_v_heads", "head_v_dim", "d_conv")
    layers: dict[tuple[str, ...], dict[str, dict[str, str]]] = {}
    for r in rows:
        if r["kernel_source"] in gdn_kernels.get(r["phase"], ()):
            if int(r["num_tokens"]) != int(r["batch_size"]) * int(r["seq_len"]):
                raise ValueError(f"gdn_perf row with num_tokens != batch_size x seq_len: {r}")
            layers.setdefault(tuple(r[k] for k in keys), {})[r["kernel_source"]] = r
    cases = []
    for key, kernels in sorted(layers.items()):
        phase = key[0]
        if set(kernels) != set(gdn_kernels[phase]):
            continue  # a shape one of the kernels could not run (vLLM's recurrent grid-y limit)
        b, s, hk, dk, hv, dv, conv = (int(v) for v in key[1:])
        latency = sum(float(r["latency"]) for r in kernels.values())
        params = {"B": b, "S": s, "hk": hk, "hv": hv}
        form = "chunked" if phase == "context" else "recurrent"
        row = _row("gdn", "+".join(gdn_kernels[phase]), params, "bf16", str(latency))
        cases.append(Case(row=row, cls=f"gdn {form}", group=f"hk{hk} hv{hv}", stage=f"gdn {form}",
                          ops=tuple(gdn_ops(b, s, hk, dk, hv, dv, conv, 0 if phase == "context" else 1))))
    return cases


# ---- collectives ----------------------------------------------------------------------------------
def collective_ops(collective: str, n: int, elements: int, dtype: torch.dtype) -> list[Op]:
    x = meta(elements, dtype=dtype)
    if collective == "all_reduce":
        return [meta_op(tc.all_reduce.default, x, n, 1, "tp")[0]]
    if collective == "all_to_all":
        return [meta_op(tc.all_to_all.default, x, n, 1, "ep")[0]]
    if collective == "all_gather":  # the table's size is the gathered output
        return [meta_op(tc.all_gather.default, meta(max(1, elements // n), dtype=dtype), 0, n, 1, "tp")[0]]
    return [meta_op(tc.reduce_scatter.default, x, 0, n, 1, "tp")[0]]


def collective_cases(folder: str | Path, engine: EngineKernels | None = None) -> list[Case]:
    eng = engine_for(folder, engine)
    cases = []
    for r in read_table(folder, "nccl_perf"):
        collective, n = COLLECTIVES[r["op_name"]], int(r["num_gpus"])
        dtype = torch.bfloat16 if r["nccl_dtype"] == "half" else torch.int8
        elements = int(r["message_size"])
        row = _row("nccl", collective, {"n": n, "elements": elements}, r["nccl_dtype"], r["latency"])
        cases.append(Case(row=row, cls=f"nccl {collective}", group=f"n{n}", stage=f"nccl {collective}",
                          ops=tuple(collective_ops(collective, n, elements, dtype))))
    for r in read_table(folder, "custom_allreduce_perf"):
        if r["kernel_source"] != eng.custom_allreduce_kernel:
            continue
        n, elements = int(r["num_gpus"]), int(r["message_size"])
        row = _row("custom_ar", "custom_all_reduce", {"n": n, "elements": elements}, "bf16", r["latency"])
        if elements * 2 > eng.custom_max_mib * 2**20:  # the engine sends it to NCCL (aic_fit.usable)
            row = replace(row, extra=ABOVE_CUSTOM_LIMIT)
        cases.append(Case(row=row, cls="custom all_reduce", group=f"n{n}", stage="custom all_reduce",
                          ops=tuple(collective_ops("all_reduce", n, elements, torch.bfloat16))))
    return cases


BUILDERS: dict[str, Callable[..., list[Case]]] = {
    "gemm": gemm_cases, "attention": attention_cases, "moe": moe_cases, "collectives": collective_cases,
    "mla": mla_cases, "dsa": lambda folder, **kw: dsa_cases(folder, **kw) + dsa_indexer_kernel_cases(folder, **kw),
    "gdn": gdn_cases,
}


def all_cases(folder: str | Path, families: Iterable[str] = tuple(BUILDERS), engine: EngineKernels | None = None
              ) -> list[Case]:
    """Every family's cases, read as `engine`'s kernels (default: the engine the tables' `framework` names)."""
    eng = engine_for(folder, engine)
    out: list[Case] = []
    for family in families:
        out += BUILDERS[family](folder, engine=eng)
    return out
