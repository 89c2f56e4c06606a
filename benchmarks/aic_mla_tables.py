"""AIConfigurator's MLA and DSA attention-module tables -> calibration cases (one attention layer per row).

Column meanings, checked against the data (see `aic_tables.py` for the other tables):
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
"""

from __future__ import annotations

from pathlib import Path

import torch
from aic_engine_kernels import VLLM, EngineKernels
from aic_table_rows import FP8, HOST_TIMED, NOT_FITTED, _row, aten, engine_for, read_table, sample, tc
from calibration_cases import IN_GRAPH, Case, Op, _rms_norm_eager, meta, meta_op

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

