"""How a measured serving row becomes a deployment: device, model, parallelism, quantization, replicas, agg MTP.

The row mapping of `serving_fidelity.py` (whose docstring says how the rows are run and scored), clause by
clause: each clause below is implemented by the functions of this module, which it names. The engine's launch
flags are `fidelity_engine_flags.py`'s, a disagg row's pools and worker counts `fidelity_disagg.py`'s.
Plain functions over the measured CSV's rows (dicts of strings); a row that cannot be mapped raises
`Unsupported` with the reason, which the fidelity run lists.

Mapping (decided from the CSV's README and the engines' launch flags):
- system: h100_sxm -> h100-sxm, b200_sxm -> b200, b300_sxm -> b300, gb200 -> gb200, gb300 -> gb300. Only
  H100 and B200 have measured kernel tables: the b300 / gb200 / gb300 profiles carry datasheet peaks and
  B200's transferred efficiency sections, so every row on them is held out (no fit has seen them).
- model: the HF id, or its registry twin with the same architecture: *-Instruct -> base,
  Qwen3-235B-A22B-FP8 -> Qwen3-235B-A22B + fp8_block (the checkpoint is fine-grained FP8, 128 x 128
  weight blocks, per its model card), MiniMax-M2.5 -> MiniMax-M2, Kimi-K2.5 ->
  Kimi-K2-Instruct (the text backbone), zhipuai/GLM-5 -> zai-org/GLM-5, nvidia/X-NVFP4 -> X + nvfp4.
- parallelism: the columns follow two conventions, told apart row by row.
  - AIConfigurator's own (its `aic-eval` rows and most others): tp = tp_size (attention TP), dp =
    attention_dp_size (empty = 1), and the routed experts split moe_tp_size x moe_ep_size over the
    tp x dp GPUs (TensorRT-LLM moe_tensor_parallel_size x moe_expert_parallel_size, whose product
    is its tp_size). Mapped as written: ep = moe_ep_size, moe_tp = moe_tp_size (tensor_cast's
    `moe_tp`; its default, tp x dp / ep, is left implicit), e.g. TensorRT-LLM Qwen3-235B on H100
    tp 4 with moe_tp 2 x moe_ep 2 -> tp=4, ep=2; moe_ep_size 1 with dp 1 -> tp (MoE TP).
  - InferenceMAX runs (`sa-bench`) written with tp_size x attention_dp_size = moe_tp_size x
    moe_ep_size, where moe_tp_size is the run's tp and moe_ep_size its ep: `..._tp8_ep8_920` is
    tp_size 64, moe 8 x 8 (and with dp-attn attention_dp_size 64); vLLM's dp-attn runs are
    written tp = dp = the run's tp, moe_ep = tp x dp (`_tp4_ep4_` -> 4, 4, 1, 16). InferenceMAX
    agg runs are single-node (runner `b200`, 8 GPUs; tp 64 cannot be; the 55 gb200 "agg" rows of
    2026-04-06.csv measured in November 2025 with tp 12-72 are not simulated: their tp is a multi-node
    run's GPU total, 20 = 4 + 16, 36, 52, ..., and the row does not say how it was split — when it was
    simulated as one TP64 engine, `..._c538_tp64_ep1_113` was predicted at a 110 ms TPOT against 10 ms
    measured: `IMX_AGG_MAX_GPUS`), the run's GPU count is its
    tp (`--tp_size=$TP --ep_size=$EP_SIZE`, SGLang `--tensor-parallel-size=$TP --ep-size $EP_SIZE`,
    vLLM dp-attn `--tensor-parallel-size=1 --data-parallel-size=$TP --enable-expert-parallel`;
    benchmarks/*.sh of SemiAnalysisAI/InferenceX), and the sample holds the same measurements
    twice: every b200 SGLang Qwen3.5 row written (16, 1, 4, 4) has a twin (4, 1, 1, 4) with
    identical TTFT and TPOT. So (tp, ep, dp-attn) comes from the run id (`_tp<T>_ep<E>_`), else
    from moe_tp_size = moe_ep_size > 1 with tp_size x dp = their product, else from the vLLM form
    (`inferencemax_layout`), and maps as: no dp-attn -> tp=T, ep=E (moe_tp = T / E); dp-attn ->
    tp=1, dp=T, ep=E (moe_tp = T / E; with E = 1 MoE TP across the T attention-DP ranks,
    moe_tp=T).
  pp = pp_size (no row of the visible sample has pp_size > 1, so pipeline parallelism is not
  checked here).
- quantization: gemm/moe quant modes fp8 -> fp8 (DeepSeek/Kimi/GLM/MiniMax/Qwen-FP8 checkpoints
  keep their own block-FP8), fp8_block -> fp8_block, nvfp4 -> nvfp4, int4_wo -> w4a16, empty ->
  the checkpoint's own (bf16, or MXFP4 for gpt-oss, also where a gpt-oss row says nvfp4: no FP4 on H100,
  and both engines serve gpt-oss's MXFP4 experts natively; TensorRT-LLM on Blackwell with MXFP8
  activations, w4a8_mxfp4_mxfp8, its default (the library's `quantization.ENGINE_SERVES`); on the b200_sxm
  sa-bench vLLM rows the same, as their script selects: `MXFP8_ACTIVATION_RUNS`; on the
  h100_sxm sa-bench vLLM rows on Marlin's MoE, mxfp4_marlin, as the script's VLLM_MXFP4_USE_MARLIN=1
  selects: inferencemax_flags.engine_knobs); the
  MoE mode wins when the two differ (the experts hold most weights). KV cache fp8 for nvfp4 rows (the NVFP4 recipes' setting), for
  sa-bench agg rows whose script sets it (fidelity_engine_flags.py) and for sa-bench disagg rows whose recipes set it
  (`recipe_fp8_kv`): every TensorRT-LLM one — TensorRT-LLM's disaggregated benchmark generator writes
  `kv_cache_config: dtype: fp8` into both the context and the generation servers'
  config (examples/disaggregated/slurm/benchmark/gen_yaml.py), and the srt-slurm TensorRT-LLM recipes
  keep it whatever the weights (recipes/trtllm/b200-fp8/1k1k/stp/ctx1_gen3_tp8_batch1024_eplb0_mtp0_4*.yaml,
  DeepSeek-R1 FP8); the H100 FP8 row at 4,916 clients (`ctx2_gen1_dep16_batch256`) could not run its
  measured 4,096 decodes (256 per rank; TTFT + 1,023 x TPOT = 144.8 s a cycle, 33.9 requests/s) with a
  bf16 cache, which needs 36.8 GB per rank beside 56 GB of weights on an 80 GB GPU — and SGLang's on
  Blackwell, whose recipes pair the trtllm_mla attention backend with `kv-cache-dtype: fp8_e4m3` in both
  pools (srt-slurm recipes/b200-fp8/1k1k.yaml, 8k1k.yaml, gb200-fp8/1k1k/max-tpt.yaml), while the H100
  SGLang recipes (flashinfer) leave it unset (recipes/h100/1k1k/stp/h100-fp8-2p4d-max-tp.yaml); and for
  AIConfigurator's own TensorRT-LLM runs with per-tensor FP8 weights (`aic_modelopt_fp8_kv`; not gpt-oss, whose
  MXFP4 checkpoint is no ModelOpt FP8 one): TensorRT-LLM takes
  per-tensor FP8 from a ModelOpt checkpoint, whose quantization config carries an FP8 KV cache that its
  `kv_cache_dtype: auto` (AIConfigurator's template default) follows — and the measurements need it: Qwen3-32B
  FP8 on one H100 at 64 clients of 4,096 + 128 tokens (`..._4096x128_c64_tp1_epnone_34`) holds 64 x 4,224
  tokens x 262,144 B = 70.9 GB of bf16 KV beside 32.8 GB of weights on an 80 GB GPU, which cannot be, while its
  measured TTFT, 1.63 s, shows no request waiting for memory (simulated with a bf16 cache: 10.3 s; with FP8,
  35 GB, every request fits). Else the model dtype.
- replicas: when silicon_concurrency is a multiple (> 1) of batch_size x attention DP, the run
  served several identical replicas; one replica is simulated with batch_size x attention DP clients.
- agg MTP (`agg_mtp_sources`): InferenceMAX runs DeepSeek-R1 on B200 at the same points with and
  without MTP (SGLang `dsr1_fp8_b200_mtp.sh` / `dsr1_fp4_b200_mtp.sh`: EAGLE, `--speculative-num-steps 2`,
  TP8 only; TensorRT-LLM `dsr1_fp8_b200_trt_mtp.sh` / `dsr1_fp4_b200_trt_mtp.sh`:
  `num_nextn_predict_layers` 3, 1 with attention DP), and the agg rows, like the disagg ones, do not
  say which run a row is. They show it: of the 544 sa-bench DeepSeek B200 agg rows, 185 share their
  configuration (engine, precision, isl/osl, tp / attention DP / moe_tp / moe_ep, concurrency) with a
  row measured at a second TPOT level, 1.3-2.2x apart on the same image and date (TRT-LLM FP8 TP8, 16
  clients, 1k/1k: 8.61 and 18.45 ms), while no gpt-oss, Kimi, GLM-5 or Qwen3.5 configuration (no MTP
  scripts) has two levels. Where a configuration has exactly two levels at least `MTP_TWIN_RATIO`
  apart, each within `LEVEL_SPREAD` (`two_levels`, which the disagg MTP twins share), the faster rows
  are the MTP run (simulated with the script's draft count, tensor_cast's default acceptance) and the
  slower ones the plain run; rows of a one-level configuration are simulated without MTP and
  reported apart ("agg, ..., MTP unknown"), as the disagg rows are.
- the 16-bit modules of NVIDIA's NVFP4 DeepSeek checkpoints (`nvfp4_deepseek_bf16`): the InferenceMAX FP4
  DeepSeek runs serve nvidia/DeepSeek-R1-0528-FP4-V2 (`.github/configs/nvidia-master.yaml`,
  `dsr1-fp4-b200-sglang` / `-trt`: `model: nvidia/DeepSeek-R1-0528-FP4-V2`), which keeps in BF16
  * the MTP layer: NVIDIA's FP4 DeepSeek-R1 checkpoints exclude "model.layers.61*" (nvidia/DeepSeek-R1-FP4
    hf_quant_config.json, quoted in vllm-project/vllm PR #25987), and SGLang runs this one's MTP MoE with
    "bfloat16 fused moe triton kernels" (sgl-project/sglang PR #13455);
  * the MLA projections q_a, q_b, kv_a and kv_b (o_proj is NVFP4): the one split of DeepSeek-R1's weights that
    gives the checkpoint's published size, 413,340,567,567 bytes in 350 files (384.95 GiB) and 394B stored
    elements (FP4 packed two to a byte, one FP8 scale per 16): NVFP4 routed, shared and dense-MLP experts
    (653.9B + 3.7B parameters x 0.5625 bytes), BF16 embedding and lm_head, routers, the whole MTP layer
    (13.5B with its own embedding and head) and those four projections (69.7M a layer) give 413.29 GB and
    393.6B elements (tensor_cast's own weight bytes for that layout, plus the MTP layer's copy of embedding and
    head that engines share, 413.31 GB: tested); all-FP4 attention gives 407.2 GB, all-BF16 attention 423.6 GB.
    TensorRT-LLM runs the unquantized fused q_a + kv_a projection with its own BF16 kernel at 1-16 tokens
    (`DeepseekV3Linear`, `dsv3_fused_a_gemm_op`) and the MTP layer unquantized ("The MTP layer in the nvfp4
    checkpoint is unquantized", tensorrt_llm/_torch/models/modeling_deepseekv3.py). SGLang's own code
    treats the checkpoint's q_b_proj as BF16 (`NVFP4_CKPT_FP8_ATTN_QUANT_MODULES`, an opt-in FP8 requant,
    sgl-project/sglang PR #10194 "Use fp8 instead of bf16 for gemm in attention for nvfp4 checkpoint").
  So a sa-bench nvfp4 DeepSeek row keeps those projections (and, run with MTP, `mtp.*`) in bf16
  (`keep_unquantized`); AIConfigurator's NVFP4 DeepSeek rows, whose checkpoint layout no source at hand gives,
  keep only the MTP block.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

SYSTEMS = {"h100_sxm": "h100-sxm", "b200_sxm": "b200", "b300_sxm": "b300", "gb200": "gb200", "gb300": "gb300"}
MODELS = {
    "meta-llama/Llama-3.1-8B-Instruct": ("meta-llama/Llama-3.1-8B", None),
    "meta-llama/Llama-3.1-70B": ("meta-llama/Llama-3.1-70B", None),
    "Qwen/Qwen3-32B": ("Qwen/Qwen3-32B", None),
    "Qwen/Qwen3-235B-A22B-FP8": ("Qwen/Qwen3-235B-A22B", "fp8_block"),
    "Qwen/Qwen3.5-397B-A17B": ("Qwen/Qwen3.5-397B-A17B", None),
    "deepseek-ai/DeepSeek-R1": ("deepseek-ai/DeepSeek-R1", None),
    "deepseek-ai/DeepSeek-V3": ("deepseek-ai/DeepSeek-V3", None),
    "openai/gpt-oss-120b": ("openai/gpt-oss-120b", None),
    "MiniMaxAI/MiniMax-M2.5": ("MiniMaxAI/MiniMax-M2", None),
    "moonshotai/Kimi-K2.5": ("moonshotai/Kimi-K2-Instruct", None),
    "zhipuai/GLM-5": ("zai-org/GLM-5", None),
    "nvidia/DeepSeek-R1-NVFP4": ("deepseek-ai/DeepSeek-R1", "nvfp4"),
    "nvidia/DeepSeek-V3.1-NVFP4": ("deepseek-ai/DeepSeek-V3", "nvfp4"),
    "nvidia/Qwen3-32B-NVFP4": ("Qwen/Qwen3-32B", "nvfp4"),
}
FAMILY = [("llama", "Llama"), ("qwen3.5", "Qwen3.5"), ("qwen3-235b", "Qwen3-MoE"), ("qwen3-32b", "Qwen3-dense"),
          ("deepseek", "DeepSeek"), ("gpt-oss", "gpt-oss"), ("minimax", "MiniMax"), ("kimi", "Kimi"), ("glm", "GLM")]
CHECKPOINT_FP8 = ("deepseek", "kimi", "glm", "minimax", "qwen3-235b-a22b-fp8")
# gpt-oss rows labelled nvfp4 ran the checkpoint's own MXFP4 experts: H100 has no FP4 tensor cores, and
# vLLM / TensorRT-LLM serve gpt-oss's MXFP4 weights natively (the AIC kernel tables time gpt-oss's MoE
# as w4a16_mxfp4: OAI Triton on Hopper, FlashInfer TRT-LLM mxfp4 on Blackwell)
CHECKPOINT_MXFP4 = ("gpt-oss",)
# ...except where InferenceMAX's B200 vLLM script selects the MXFP8-activation kernel for those MXFP4
# experts, `VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8=1` (benchmarks/gptoss_fp4_b200.sh): the same weights as
# w4a8_mxfp4_mxfp8 (quantization.SAME_WEIGHTS_AS keeps the checkpoint's 16-bit attention). TensorRT-LLM
# does so by default on every Blackwell device (quantization.ENGINE_SERVES, applied by the library to the
# checkpoint's scheme), so its rows need no entry.
MXFP8_ACTIVATION_RUNS = {("b200_sxm", "vllm")}
QUANT = {"fp8": "fp8", "fp8_block": "fp8_block", "nvfp4": "nvfp4", "int4_wo": "w4a16"}



class Unsupported(Exception):
    pass


def family(model_path: str) -> str:
    low = model_path.lower()
    return next((name for key, name in FAMILY if key in low), "other")


def _int(value: str, default: int = 1) -> int:
    return int(float(value)) if value not in ("", None) else default


def concurrency(row: dict[str, str]) -> int:
    m = re.search(r"silicon_concurrency=(\d+)", row["silicon_data_source"])
    if m:
        return int(m.group(1))
    if row["mode"] == "disagg":  # fidelity_disagg.py docstring, "disagg concurrency"
        raise Unsupported("disagg row without silicon_concurrency: its concurrency is not determined")
    return _int(row["batch_size"]) * _int(row["attention_dp_size"])


def _measured_clients(row: dict[str, str]) -> int:
    """The row's measured concurrency for `--max-concurrency`; a row that does not determine it passes
    (it is listed as not simulated later, with the reason)."""
    try:
        return concurrency(row)
    except Unsupported:
        return 0


# InferenceMAX's DeepSeek-R1 B200 MTP scripts: draft tokens by (engine, attention DP) (docstring, agg MTP)
IMX_AGG_MTP = {("sglang", False): 2, ("trtllm", False): 3, ("trtllm", True): 1}
MTP_TWIN_RATIO = 1.2  # below it two levels could be run-to-run noise, not an MTP / plain pair


LEVEL_SPREAD = 1.05  # the TPOTs of one level: the sample's repeated measurements of a run differ by <= 2 %


def two_levels(tpots: list[float]) -> float | None:
    """The boundary between the two TPOT levels of one configuration's measurements (docstring, agg MTP;
    `fidelity_disagg.py`, disagg MTP levels): None unless they form exactly two, each within `LEVEL_SPREAD`,
    the slower at least `MTP_TWIN_RATIO` x the faster."""
    v = sorted(tpots)
    if len(v) < 2:
        return None
    i = max(range(len(v) - 1), key=lambda j: v[j + 1] / v[j])
    if v[i + 1] < MTP_TWIN_RATIO * v[i] or v[i] > LEVEL_SPREAD * v[0] or v[-1] > LEVEL_SPREAD * v[i + 1]:
        return None
    return (v[i] + v[i + 1]) / 2


def agg_mtp_sources(rows: list[dict[str, str]]) -> dict[str, str]:
    """row id -> "MTP", "no MTP" or "MTP unknown" for the sa-bench DeepSeek-R1 agg rows on b200_sxm
    (docstring, agg MTP), from every row given (the whole file: a row's twin may not be sampled)."""
    levels: dict[tuple[Any, ...], list[tuple[float, str]]] = defaultdict(list)
    for r in rows:
        if (r["mode"] == "agg" and r["system"] == "b200_sxm" and family(r["model_path"]) == "DeepSeek"
                and benchmark_source(r) == "sa-bench"):
            # the same run appears in several source files, under either checkpoint name (R1 / R1-NVFP4) and
            # with empty or 1 parallel columns, its TPOT equal to ~1e-12 ms
            key = (r["backend"], r["precision"], r["isl"], r["osl"], concurrency(r),
                   *(_int(r[k]) for k in ("tp_size", "pp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size")))
            levels[key].append((float(r["silicon_tpot_ms"]), r["id"]))
    out: dict[str, str] = {}
    for members in levels.values():
        boundary = two_levels([tpot for tpot, _ in members])
        out.update((rid, "MTP unknown" if boundary is None else "MTP" if tpot < boundary else "no MTP")
                   for tpot, rid in members)
    return out


# the MLA projections NVIDIA's nvidia/DeepSeek-R1-0528-FP4-V2 stores in BF16 (docstring)
NVFP4_DEEPSEEK_BF16_ATTENTION = ("*.self_attn.q_a_proj", "*.self_attn.q_b_proj", "*.self_attn.kv_a_proj_with_mqa",
                                 "*.self_attn.kv_b_proj")


def nvfp4_deepseek_bf16(row: dict[str, str], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The modules an NVFP4 DeepSeek checkpoint keeps in bf16 (docstring), as `keep_unquantized`, or none."""
    if kwargs.get("quant") != "nvfp4" or family(row["model_path"]) != "DeepSeek":
        return {}
    patterns = NVFP4_DEEPSEEK_BF16_ATTENTION if benchmark_source(row) == "sa-bench" else ()
    if kwargs.get("mtp"):
        patterns = (*patterns, "mtp.*")
    return {"keep_unquantized": patterns} if patterns else {}


def agg_mtp(row: dict[str, str], deployment: dict[str, Any], source: str | None) -> int:
    """Draft tokens an agg row ran with: the InferenceMAX script's for an `MTP` row, else 0; an MTP
    row whose (engine, attention DP) has no MTP script is not simulated."""
    if source != "MTP":
        return 0
    key = (row["backend"], deployment.get("dp", 1) > 1)
    if key not in IMX_AGG_MTP:
        raise Unsupported(f"agg MTP twin on {key[0]} {'with' if key[1] else 'without'} attention DP: no InferenceMAX "
                          "MTP script gives its draft count")
    return IMX_AGG_MTP[key]


def per_replica_concurrency(row: dict[str, str]) -> int:
    """Clients one simulated replica serves: a few TensorRT-LLM rows measured many identical
    replicas behind one load balancer (silicon_concurrency a multiple of batch_size x attention
    DP, e.g. 416 = 32 x 13): one replica then sees batch_size x attention DP clients."""
    c = concurrency(row)
    if row["mode"] != "agg" or not row["batch_size"]:
        return c
    per = _int(row["batch_size"]) * _int(row["attention_dp_size"])
    return per if c > per and c % per == 0 else c


IMX_AGG_MAX_GPUS = 8  # one node of the InferenceMAX agg runners (docstring, parallelism)
IMX_ID = re.compile(r"_tp(\d+)_ep(\d+)_")  # InferenceMAX run ids: `..._tp8_ep8_920`


def inferencemax_layout(row: dict[str, str]) -> tuple[int, int, bool] | None:
    """The InferenceMAX matrix entry (tp, ep, dp-attn) an sa-bench agg row ran, where its columns
    were written in another convention (docstring, parallelism), else None."""
    if row["mode"] != "agg" or benchmark_source(row) != "sa-bench":
        return None
    tp, dp = _int(row["tp_size"]), _int(row["attention_dp_size"])
    mtp, mep = _int(row["moe_tp_size"]), _int(row["moe_ep_size"])
    m = IMX_ID.search(row.get("id", ""))
    if m:
        return int(m.group(1)), int(m.group(2)), dp > 1
    if mtp == mep > 1 and tp * dp == mtp * mep:  # tp x dp = InferenceMAX tp x ep
        return mtp, mep, dp > 1
    if dp > 1 and mtp <= 1 and tp == dp and mep == tp * dp:  # vLLM: tp = dp = InferenceMAX tp, ep = tp x dp
        return tp, tp, True
    return None


def imx_parallel(tp: int, ep: int, dp_attn: bool, moe: bool) -> dict[str, int]:
    """tensor_cast deployment keys of an InferenceMAX (tp, ep, dp-attn) on tp GPUs: with dp-attn,
    attention DP over the tp GPUs (vLLM `--tensor-parallel-size=1 --data-parallel-size=$TP`,
    SGLang `--enable-dp-attention`, TensorRT-LLM `enable_attention_dp`) and the experts split
    (tp / ep) x ep over them; without it TP attention and the same MoE split (TensorRT-LLM
    `--tp_size=$TP --ep_size=$EP_SIZE`, SGLang `--tensor-parallel-size=$TP --ep-size $EP_SIZE`)."""
    if not dp_attn or tp == 1:
        return {"tp": tp, "ep": ep} if ep > 1 else {"tp": tp}
    if ep > 1:
        return {"tp": 1, "dp": tp, "ep": ep}  # moe_tp = tp / ep, the default
    return {"tp": 1, "dp": tp, "moe_tp": tp} if moe else {"tp": 1, "dp": tp}


def parallel(row: dict[str, str], prefix: str = "") -> dict[str, int]:
    tp, dp = _int(row[prefix + "tp_size"]), _int(row[prefix + "attention_dp_size"])
    mtp, mep = _int(row[prefix + "moe_tp_size"]), _int(row[prefix + "moe_ep_size"])
    pp = {"pp": _int(row[prefix + "pp_size"])} if _int(row[prefix + "pp_size"]) > 1 else {}
    if dp == 0:  # 15 gb200 Qwen3-32B rows: "0" with batch_size = concurrency / 2, so not "no attention DP"
        raise Unsupported("attention_dp_size=0 (ambiguous: neither 1 nor concurrency / batch_size)")
    imx = None if prefix else inferencemax_layout(row)
    if imx is not None and imx[0] > IMX_AGG_MAX_GPUS:
        raise Unsupported(f"InferenceMAX agg run on more than {IMX_AGG_MAX_GPUS} GPUs: its agg runs are "
                          "single-node, so the row's tp is a multi-node (disaggregated) run's GPU total whose "
                          "prefill / decode split the row does not give")
    if imx is not None:
        return {**imx_parallel(*imx, moe=mtp > 1 or mep > 1), **pp}
    world = tp * dp
    if mep <= 1 and dp == 1:
        return {"tp": tp, **pp}
    if mep <= 1 and mtp == 1 and dp > 1 and tp == 1:
        return {"tp": 1, "dp": dp, **pp}  # dense model in attention-DP replicas
    if mtp >= 1 and mep >= 1 and mtp * mep == world:  # AIConfigurator's own: moe_tp x moe_ep = tp x dp
        return {"tp": tp, **({"dp": dp} if dp > 1 else {}), **({"ep": mep} if mep > 1 else {}),
                **({"moe_tp": mtp} if mtp != (world // mep if mep > 1 else tp) else {}), **pp}
    raise Unsupported(f"MoE split moe_tp={mtp} x moe_ep={mep} over tp={tp} x attention_dp={dp}")


def quant(row: dict[str, str], model_path: str, forced: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    mode = row["moe_quant_mode"] or row["gemm_quant_mode"]
    mxfp4_checkpoint = any(k in model_path.lower() for k in CHECKPOINT_MXFP4)
    if forced:
        out["quant"] = forced
    elif mode:
        if mode not in QUANT:
            raise Unsupported(f"quant mode {mode}")
        if not (mode == "fp8" and any(k in model_path.lower() for k in CHECKPOINT_FP8)) and not (
                mode == "nvfp4" and mxfp4_checkpoint):
            out["quant"] = QUANT[mode]
    if (not forced and mxfp4_checkpoint and (row["system"], row["backend"]) in MXFP8_ACTIVATION_RUNS
            and benchmark_source(row) == "sa-bench"):
        out["quant"] = "w4a8_mxfp4_mxfp8"
    if (mode == "nvfp4" or forced == "nvfp4" or recipe_fp8_kv(row)
            or (aic_modelopt_fp8_kv(row, out.get("quant")) and not mxfp4_checkpoint)):
        out["kv_cache_dtype"] = "fp8"
    return out


def aic_modelopt_fp8_kv(row: dict[str, str], weights: str | None) -> bool:
    """Whether one of AIConfigurator's own TensorRT-LLM runs served per-tensor FP8 weights, i.e. a ModelOpt
    checkpoint, whose FP8 KV cache its `kv_cache_dtype: auto` follows (docstring, quantization)."""
    return weights == "fp8" and row["backend"] == "trtllm" and benchmark_source(row) == "aic-eval"


# Systems whose SGLang disaggregated recipes run the trtllm_mla attention backend on an fp8_e4m3 KV cache
SGLANG_FP8_KV_DISAGG_SYSTEMS = ("b200_sxm", "b300_sxm", "gb200", "gb300")


def recipe_fp8_kv(row: dict[str, str]) -> bool:
    """Whether an InferenceMAX (sa-bench) disaggregated row's recipe ran an FP8 KV cache whatever the
    weights (docstring, quantization): every TensorRT-LLM one, and SGLang's on Blackwell systems."""
    if row.get("mode") != "disagg" or benchmark_source(row) != "sa-bench":
        return False
    return row["backend"] == "trtllm" or (row["backend"] == "sglang" and row["system"] in SGLANG_FP8_KV_DISAGG_SYSTEMS)


def benchmark_source(row: dict[str, str]) -> str:
    """`aic-eval` (AIConfigurator's genai-perf / AIPerf runs) or `sa-bench` (the InferenceMAX
    grid's benchmark_serving runs), from the row's `silicon_data_source` (serving_fidelity.py docstring,
    protocol)."""
    source = row["silicon_data_source"]
    if "aic-auto-gap-analysis" in source:
        return "aic-eval"
    if re.match(r"(source_file=(\d{4}-\d{2}-\d{2}|[\w.-]+-gap-analysis)\.csv|db-dump/)", source):
        return "sa-bench"
    raise Unsupported(f"unknown benchmark source {source[:60]!r}")
