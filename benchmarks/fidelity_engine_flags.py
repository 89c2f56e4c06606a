"""The engine a measured serving row ran: its launch flags and the defaults of its release and benchmark source.

Part of `serving_fidelity.py`'s row mapping (the other clauses: `fidelity_mapping.py`, `fidelity_disagg.py`).
`engine_defaults` gives the engine_args every row of a source / engine / system takes (step budget, prefix
cache, SGLang's chunk, vLLM's host overlap); `inferencemax_flags` the launch flags of the InferenceMAX
script that ran an sa-bench agg row (`inferencemax_flags.py` reads the table), `trtllm_adp_balance` the one
setting of the scripts without a table entry.

- engine: backend column (vllm, sglang, trtllm) with each engine's defaults (engines.py), except
  - sa-bench agg rows on h100_sxm / b200_sxm: the launch flags of the InferenceMAX script that ran
    them (`benchmarks/data/inferencemax_agg_flags.csv`, README there: script path and commit per
    entry; `inferencemax_flags`): step budget, max_num_seqs, memory utilization, block size, the
    decode CUDA-graph sizes, piecewise prefill graphs (TensorRT-LLM: no eager context step), vLLM's
    FULL_DECODE_ONLY graphs, TensorRT-LLM batch waiting (`batch_wait_timeout_iters`,
    `batch_wait_max_tokens_ratio`: Llama-3.1-70B 1k/1k TP < 8 20 / 0.9, DeepSeek-R1 FP8 1k/1k from 64
    clients 40 / 0.8), SGLang's receive interval (`scheduler_recv_interval`: 10 or 30 on the
    DeepSeek-R1, Qwen3.5 and GLM-5 FP4 runs), the attention-DP balance of dp-attention runs
    (DeepSeek-R1 60 / 0, gpt-oss TensorRT-LLM's defaults 50 / 10) and an FP8 KV cache (engines.py
    for each knob's semantics). The scripts' stream interval, prefix-caching switch and kernel
    choices (MoE / attention backends, kernel environment variables) are recorded in the table, not
    simulated, except the MoE kernel of gpt-oss's experts (vLLM's VLLM_MXFP4_USE_MARLIN=1:
    mxfp4_marlin, fidelity_mapping.py, quantization) and TensorRT-LLM's post-processing workers
    (`num_postprocess_workers`, the Llama-3.1-70B FP8 and gpt-oss scripts: engines.py "Overheads"). Its lines apply by conditions on the harness's ISL / OSL, the run's TP / EP /
    dp-attn and the concurrency, in file order, later lines overriding. The agg MTP twins (fidelity_mapping.py)
    take their `_mtp.sh` scripts' own lines (`mtp` true). TensorRT-LLM: max_batch_size = CONC, or
    CONC / 8 (FP8) / CONC / 4 (FP4) per rank under dp-attn, max_num_tokens = (1 + drafts) x
    max_batch_size + ISL rounded up to 64, no batch waiting, the FP8 script's piecewise graphs.
    SGLang (FP8, TP8): chunked-prefill-size 16384, max-running-requests and cuda-graph-max-bs 512.
  - other sa-bench agg rows (no entry: b300_sxm, gb200, gb300): the attention-DP balance above for
    TensorRT-LLM DeepSeek-R1 / gpt-oss dp-attention runs (`trtllm_adp_balance`).
  - vLLM's host overlap (engines.py "Host overlap"): rows of a vLLM released before async
    scheduling became the default (vllm-project/vllm#27614, late December 2025) run with
    `host_overlap` off, their overhead added to every step as it was fitted (`vllm_scheduling`):
    a backend_version below 0.14, or no version and measured before 2026 (the Llama-3.1-70B runs of
    October 2025, whose H100 script passes the then-experimental `--async-scheduling`, show the
    added overhead as much as the 0.12.0 Qwen3-32B runs: both are the fit rows). Versions 0.14 on
    (0.15.1, 0.17.0, 0.18.0, 0.19.0, nightlies) keep the profile's overlap.
  - the prefix cache (engines.py "Preemption and the prefix cache": what a vLLM request preempted by
    recompute finds still cached): off on the `aic-eval` rows (AIConfigurator's generator sets
    `disable_prefix_cache` unless the workload has a shared prefix, `rule_plugin/benchmark/*.rule`,
    mapped to `--no-enable-prefix-caching` / `--disable-radix-cache` / `enable_block_reuse: false` by
    `config/backend_config_mapping.yaml`) and where an InferenceMAX script turns it off; the engine's
    default (on) elsewhere.
  - SGLang's chunked_prefill_size follows its GPU-memory tiers (8192 on H100, 16384 on the
    Blackwell parts: B200, B300, GB200, GB300) unless the table sets it.
  - the step budget of the `aic-eval` agg rows (serving_fidelity.py, protocol) on vLLM and TensorRT-LLM, which
    AIConfigurator's generator set for the engines it launched: max_num_tokens = max_batch_size +
    isl + 1500 (generator/rule_plugin/benchmark/{vllm,trtllm}.rule; max_batch_size = the row's
    batch_size). Other TensorRT-LLM rows without a table budget get max(8192, isl + concurrency):
    without context chunking a smaller budget admits a prompt only when no decode is running (every
    request waits for the previous wave), which the measured TTFTs rule out.
"""

from __future__ import annotations

import re
from typing import Any

import inferencemax_flags as imx  # the InferenceMAX agg launch-flags table (benchmarks/data/)
from fidelity_mapping import Unsupported, _int, benchmark_source, concurrency, family, inferencemax_layout

# the first vLLM release with async scheduling on by default (vllm-project/vllm#27614; docstring, engine)
VLLM_ASYNC_DEFAULT = (0, 14)


def vllm_scheduling(row: dict[str, str]) -> dict[str, Any]:
    """engine_args of a vLLM row measured on a release before async scheduling was the default: its
    host overhead adds to each step (`host_overlap` off; docstring, engine); {} otherwise."""
    if row["backend"] != "vllm":
        return {}
    version = row.get("backend_version", "")
    release = re.match(r"(\d+)\.(\d+)", version)
    if release:
        old = (int(release.group(1)), int(release.group(2))) < VLLM_ASYNC_DEFAULT
    elif version:  # nightly builds of 2026
        old = False
    else:
        measured = re.search(r"measured=(\d{4})-", row["silicon_data_source"])
        old = measured is not None and int(measured.group(1)) < 2026
    return {"host_overlap": False} if old else {}


def engine_defaults(row: dict[str, str], range_ratio: float = 0.0, isl: int | None = None) -> dict[str, Any]:
    """engine_args of a row's release, benchmark source and system (docstring): vLLM's host overlap, SGLang's
    chunk on Blackwell, the prefix cache of the `aic-eval` rows and the step budget of the `aic-eval` agg
    rows' vLLM / TensorRT-LLM (their generator's) or of TensorRT-LLM without context chunking."""
    engine_args = vllm_scheduling(row)
    if row["backend"] == "sglang" and row["system"] != "h100_sxm":
        engine_args["max_num_batched_tokens"] = 16384
    if benchmark_source(row) == "aic-eval":  # AIConfigurator's generator disables it without a shared prefix
        engine_args["prefix_caching"] = False
    if benchmark_source(row) == "aic-eval" and row["backend"] in ("vllm", "trtllm") and row["mode"] == "agg":
        # AIConfigurator's generator sized the budget of the engines it launched (docstring)
        engine_args["max_num_batched_tokens"] = _int(row["batch_size"]) + int(row["isl"]) + 1500
    elif row["backend"] == "trtllm":  # no context chunking: a step must hold a whole prompt beside the decodes
        prompt = int(row["isl"]) if isl is None else isl  # the simulated centre length
        longest = round(prompt * (1 + range_ratio)) + 1
        engine_args["max_num_batched_tokens"] = max(8192, longest + concurrency(row))
    return engine_args


# Rows of sa-bench agg runs without an entry in the flags table (systems other than h100_sxm / b200_sxm)
# keep the one InferenceMAX setting taken before the table existed: the TensorRT-LLM scripts with
# dp-attention turn the attention-DP balance on, DeepSeek-R1 with timeout_iters 60, batching_wait_iters 0,
# gpt-oss with TensorRT-LLM's defaults 50 and 10 (docstring)
IMX_TRTLLM_ADP_BALANCE = {"DeepSeek": (60, 0), "gpt-oss": (50, 10)}


def trtllm_adp_balance(row: dict[str, str], deployment: dict[str, Any]) -> dict[str, Any]:
    """engine_args of TensorRT-LLM's attention-DP balance where an InferenceMAX (sa-bench) TensorRT-LLM
    agg row ran with attention DP (dp > 1, experts spanning the replicas) and its model's script
    turned the balance on, else {}."""
    knobs = IMX_TRTLLM_ADP_BALANCE.get(family(row["model_path"]))
    if not (knobs and row["backend"] == "trtllm" and row["mode"] == "agg" and benchmark_source(row) == "sa-bench"
            and deployment.get("dp", 1) > 1 and (deployment.get("ep", 1) > 1 or deployment.get("moe_tp", 1) > 1)):
        return {}
    return {"adp_balance_timeout_iters": knobs[0], "adp_batching_wait_iters": knobs[1]}


# the measured CSV's model -> InferenceMAX's model prefix (DeepSeek-V3 rows are DeepSeek-R1 runs, docstring)
IMX_MODEL = {"meta-llama/Llama-3.1-70B": "70b", "deepseek-ai/DeepSeek-R1": "dsr1", "deepseek-ai/DeepSeek-V3": "dsr1",
             "openai/gpt-oss-120b": "gptoss", "Qwen/Qwen3.5-397B-A17B": "qwen3.5", "zhipuai/GLM-5": "glm5",
             "MiniMaxAI/MiniMax-M2.5": "minimaxm2.5", "moonshotai/Kimi-K2.5": "kimik2.5"}


def imx_variables(row: dict[str, str], mtp: bool = False) -> dict[str, Any]:
    """The script variables of an sa-bench agg row: the harness's CONC, ISL, OSL (the nominal lengths),
    the run's TP, EP and DP_ATTN (`inferencemax_layout`, else the row's columns), MAX_MODEL_LEN,
    the harness's max-model-len (ISL + OSL + 200: 2,248 at 1k/1k), and MTP: 1 for the run of an
    `_mtp.sh` script (an agg MTP twin, fidelity_mapping.py docstring), whose table lines are its own, and VERSION, the engine
    version the row ran (its `backend_version`), for the lines of a later script version."""
    layout = inferencemax_layout(row)
    if layout is None:
        layout = (_int(row["tp_size"]), max(1, _int(row["moe_ep_size"])), _int(row["attention_dp_size"]) > 1)
    isl, osl = int(row["isl"]), int(row["osl"])
    return {"CONC": concurrency(row), "ISL": isl, "OSL": osl, "TP": layout[0], "EP": layout[1],
            "DP_ATTN": int(layout[2]), "MAX_MODEL_LEN": isl + osl + 200, "MTP": int(mtp),
            "VERSION": row.get("backend_version", "")}


def inferencemax_flags(row: dict[str, str], mtp: bool = False) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(engine_args, deployment keys) of the launch flags of the InferenceMAX script that ran an
    sa-bench agg row (docstring; `inferencemax_flags.py` and the table's README), None where
    the table has no entry for its model, system, engine and precision."""
    model = IMX_MODEL.get(row["model_path"])
    if model is None or row["mode"] != "agg" or benchmark_source(row) != "sa-bench":
        return None
    variables = imx_variables(row, mtp)
    flags = imx.entry((model, row["system"], row["backend"], row["precision"]), variables)
    if flags is None:
        return None
    try:
        return imx.engine_knobs(flags, variables, row["backend"])
    except imx.Undetermined as exc:
        raise Unsupported(str(exc)) from None
