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

The MLA and DSA module tables are read by `aic_mla_tables.py`, the harness's MoE routing is `aic_moe_routing.py`,
and the row conventions every builder shares (reading, sampling, held-out families) are `aic_table_rows.py`;
this module builds the GEMM, attention, MoE, gated DeltaNet and collective cases and `all_cases`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from aic_engine_kernels import VLLM, EngineKernels
from aic_mla_tables import dsa_cases, dsa_indexer_kernel_cases, mla_cases
from aic_moe_routing import GROUP_LIMITED_MOE, replayed_experts, routed_rows, zipf_skew_for
from aic_table_rows import (
    FP8,
    HOST_TIMED,
    NOT_FITTED,
    _row,
    aten,
    engine_for,
    read_table,
    sample,
    tc,
)
from calibration_cases import IN_GRAPH, Case, Op, meta, meta_op

from tensor_cast.deployment.quantization import PER_TENSOR

# Which kernel_source rows each engine's stages read, and how they were launched: aic_engine_kernels.py
# (`EngineKernels`, one entry per engine; the engine is the tables' `framework`). The vLLM names below
# are kept for importers.
GEMM_DTYPES = dict(VLLM.gemm_dtypes)
GEMM_KERNELS = dict(VLLM.gemm_kernels)
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
