"""Serving fidelity: simulated TTFT / TPOT vs measured serving runs (AIConfigurator silicon sample).

    python benchmarks/serving_fidelity.py --data ../shared/serving/silicon_sample_visible.csv \
        [--sample N] [--devices h100_sxm,b200_sxm,b300_sxm,gb200,gb300] [--out rows.csv]
        [--exclude earlier.csv ...]   (a fresh sample: leave out rows an earlier run simulated, and their twins)
        [--distinct --skipped-out skipped.csv]   (every measured run once; the rows not simulated, with the reason)

Every agg and disagg row on a system with a tensor_cast device profile is mapped to a
deployment and simulated as the benchmark ran it: a closed loop of `silicon_concurrency`
clients (all starting together), fixed isl/osl, `--requests-per-client` requests each. Rows
that cannot be mapped are listed with the reason. Prints a markdown table of mean absolute
relative error of TTFT and TPOT per device x engine x model family, with coverage.

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
  sa-bench agg rows whose script sets it (see engine) and for sa-bench disagg rows whose recipes set it
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
    mxfp4_marlin, see quantization above) and TensorRT-LLM's post-processing workers
    (`num_postprocess_workers`, the Llama-3.1-70B FP8 and gpt-oss scripts: engines.py "Overheads"). Its lines apply by conditions on the harness's ISL / OSL, the run's TP / EP /
    dp-attn and the concurrency, in file order, later lines overriding. The agg MTP twins (below)
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
  - the step budget of the `aic-eval` agg rows (see protocol) on vLLM and TensorRT-LLM, which
    AIConfigurator's generator set for the engines it launched: max_num_tokens = max_batch_size +
    isl + 1500 (generator/rule_plugin/benchmark/{vllm,trtllm}.rule; max_batch_size = the row's
    batch_size). Other TensorRT-LLM rows without a table budget get max(8192, isl + concurrency):
    without context chunking a smaller budget admits a prompt only when no decode is running (every
    request waits for the previous wave), which the measured TTFTs rule out.
- replicas: when silicon_concurrency is a multiple (> 1) of batch_size x attention DP, the run
  served several identical replicas; one replica is simulated with batch_size x attention DP clients.
- disagg worker counts, MTP and attention DP (`disagg_deployment`): 1,172 of the 1,418 disagg rows
  (393 of 465 on h100_sxm / b200_sxm) leave `prefill_num_workers` / `decode_num_workers` empty. They
  are InferenceMAX multinode runs (`source_file=2026-03-25.csv` / `2026-04-06.csv`), whose own
  result records carry prefill/decode workers, tp, ep and dp-attn (InferenceMAX
  utils/process_result.py); the CSV kept one tp per pool, wrote the prefill pool's EP into both
  pools (decode tp 8 with moe_tp 2 x moe_ep 4 beside prefill tp4/ep4: moe_tp = tp / that EP), and
  dropped the worker counts, dp-attn and the speculative-decoding setting. Every such run is one
  entry of InferenceMAX's benchmark matrix, `.github/configs/nvidia-master.yaml` (per entry: its
  concurrencies, MTP or not, and each pool's num-worker / tp / ep / dp-attn; the CONFIG_FILE recipe
  name carries the MTP draft count, e.g. `ctx1_gen5_dep8_batch16_eplb0_mtp2`). Those entries are
  transcribed in `benchmarks/data/inferencemax_disagg_recipes.csv` (README there: source commit,
  what was transcribed). A row takes the recipe that matches its model (DeepSeek-R1 / -V3 rows take
  the `dsr1` entries, gpt-oss the `gptoss` ones; no other model has entries), system, engine, precision,
  isl/osl, concurrency, prefill tp, prefill EP and decode tp; the match is exact (the recipes'
  concurrencies are odd numbers such as 1214 or 10860, found verbatim in the rows). Where nothing
  matches, or recipes with different worker counts / parallelism match, the counts are not
  determined: the row is not simulated and is listed with that reason (no rule guesses them).
  Where the matching recipes agree on the deployment but not on MTP (InferenceMAX runs most
  points both with and without MTP, and the CSV does not say which row is which), the row is
  simulated without MTP and reported apart ("disagg, recipe, MTP unknown"). Rows that give the
  counts take MTP from a recipe when exactly one matches them (counts, concurrency, decode GPUs),
  and the decode batch cap below when every matching recipe gives the same one (the MTP and
  non-MTP twins of a layout do: `..._batch1_eplb0_mtp3` / `_mtp0`).
  The TensorRT-LLM recipe names also give the decode servers' max_batch_size per attention-DP
  rank (`_batch64_`), simulated as the decode pool's `bs` (max_num_seqs of each rank): InferenceMAX
  runs these recipes at 1.05-1.4x that capacity (e.g. 1214 clients on 2 x DEP8 x 64), so the cap
  decides the decode batch, and the excess clients queue (TTFT). A pool's recipe parallelism maps as: dp-attn with ep = tp -> tp 1, dp = tp, ep = tp (attention
  DP + wide EP); no dp-attn -> tp, ep (TP attention, experts moe_tp = tp / ep x ep; ep 1: MoE
  TP); dp-attn with ep < tp -> tp 1, dp = tp, ep, moe_tp = tp / ep (MoE TP across the
  attention-DP ranks, `imx_parallel`). Rows that give their counts keep their own pool columns,
  except a pool written as attention DP with moe_ep 1 and moe_tp = dp (every such h100_sxm /
  b200_sxm row's matching InferenceMAX entries run that prefill pool as DEP8, ep = tp: the column
  is the decode pool's EP): the entries' layout is taken when they agree, else the row is listed
  (`given_pool`). SGLang pools take their recipe's `--chunked-prefill-size` (`tok`, divided among
  the pool's attention-DP ranks by the engine) and `--max-running-requests` // dp (`bs`, per rank)
  where `benchmarks/data/sglang_disagg_recipe_flags.csv` transcribes the recipe (`sglang_pool_flags`,
  `sglang_recipe_tables.py`;
  a few srt-slurm recipes so far), else the engine's defaults; and an attention-DP pool's MoE
  exchange from its recipe's `moe-a2a-backend` (`a2a` in the spec for deepep; without one the
  all-gather, SGLang's default; `sglang_pool_exchange`, `benchmarks/data/sglang_disagg_recipe_a2a.csv`, every SGLang
  recipe of the recipes table), the engine's default (all-gather) where the table has no line. TensorRT-LLM
  pools take the engine's default exchange (deployment/moe_exchange.py: its NVLink all-to-all within one
  NVLink domain, AllGatherReduceScatter across nodes). MTP acceptance is tensor_cast's default (`speculative.DEFAULT_ACCEPTANCE`, per
  draft): no public figure for DeepSeek-R1 on sa-bench's random prompts was found (docs/serving_accuracy.md, "MTP
  acceptance"); `--mtp-acceptance A` is the what-if.
- agg MTP (`agg_mtp_sources`): InferenceMAX runs DeepSeek-R1 on B200 at the same points with and
  without MTP (SGLang `dsr1_fp8_b200_mtp.sh` / `dsr1_fp4_b200_mtp.sh`: EAGLE, `--speculative-num-steps 2`,
  TP8 only; TensorRT-LLM `dsr1_fp8_b200_trt_mtp.sh` / `dsr1_fp4_b200_trt_mtp.sh`:
  `num_nextn_predict_layers` 3, 1 with attention DP), and the agg rows, like the disagg ones, do not
  say which run a row is. They show it: of the 544 sa-bench DeepSeek B200 agg rows, 185 share their
  configuration (engine, precision, isl/osl, tp / attention DP / moe_tp / moe_ep, concurrency) with a
  row measured at a second TPOT level, 1.3-2.2x apart on the same image and date (TRT-LLM FP8 TP8, 16
  clients, 1k/1k: 8.61 and 18.45 ms), while no gpt-oss, Kimi, GLM-5 or Qwen3.5 configuration (no MTP
  scripts) has two levels. Where a configuration has exactly two levels at least `MTP_TWIN_RATIO`
  apart, the faster rows are the MTP run (simulated with the script's draft count, tensor_cast's
  default acceptance) and the slower ones the plain run; rows of a one-level configuration are
  simulated without MTP and reported apart ("agg, ..., MTP unknown"), as the disagg rows are.
- disagg concurrency: `silicon_concurrency`. The 7 AIConfigurator-eval disagg rows (Qwen3 on
  H100) do not carry it, and their decode_batch_size is not it: on the 239 disagg rows that carry
  both, silicon_concurrency = decode_batch_size x decode_num_workers x decode_attention_dp_size,
  but on these 7 that product cannot be the load (a Qwen3-32B row's 2 TP4 decode workers x 224
  requests of ~4,500 tokens would read >= 33 GB of FP8 KV cache per GPU per step, >= 10 ms on an
  H100, against 8.7 ms measured TPOT). They are listed as not determined; before, they ran one
  client each (batch_size is empty).
- protocol: closed loop, all clients start together, `--requests-per-client` requests each
  (default 10). Which benchmark client measured a row follows from its `silicon_data_source`
  (`benchmark_source`), and the two clients differ in the lengths they send:
  - `sa-bench` (3,548 rows: `source_file=<date>.csv`, `db-dump/...; workflow_run_id=...`,
    `*-gap-analysis.csv`; the InferenceMAX grid: isl/osl 1k/1k, 1k/8k, 8k/1k, concurrency 4-256,
    public engine images): SemiAnalysis' benchmark_serving run with `--num-prompts CONC*10
    --max-concurrency CONC --random-range-ratio 0.8`, and that client draws every prompt and
    output length uniformly in [0.8 L, L] (the older vLLM benchmark_serving convention: lower
    bound int(L * ratio)). Simulated as lengths centred on 0.9 L with range ratio 1/9, i.e.
    [0.8 L, L] (to the token); the clients desynchronize by themselves.
  - `aic-eval` (706 rows: `aic-auto-gap-analysis`, Dynamo runtime images; isl 1k-4k, osl
    128-512): AIConfigurator's own eval runners — genai-perf / AIPerf with
    `--synthetic-input-tokens-stddev 0 --output-tokens-stddev 0 ignore_eos`, `--request-count
    v*10`, `--warmup-request-count v*2` (eval/benchmarks/genai_perf_runner.py; AIPerf waits for
    every warm-up response before the measured phase, so that phase again starts with all clients
    at once and its first wave counts). Fixed lengths; a closed loop of fixed lengths runs in
    lock-step waves, which the SGLang and TensorRT-LLM rows of this source show (TTFT of a
    wave's prefill) and the vLLM rows do not (their clients desynchronize), so a small length
    jitter stands for the run's timing noise: lengths in [L(1-r), L(1+r)] with r per engine
    (`LENGTH_JITTER`: 0 for SGLang and TensorRT-LLM, 0.1 for vLLM, chosen between 0 and 0.1 on the
    overhead fit's split with overheads off, when every row was simulated this way).
  `--range-ratio r` simulates every row with lengths in [L(1-r), L(1+r)] instead; `--warmup`
  leaves the first wave (one request per client) out of the latency statistics (neither client
  does that, see above).
- overhead: the engines' per-step and per-sequence overheads (engines.py; fitted by
  `benchmarks/serving_overhead_fit.py` on H100 dense-model agg rows only). `--overhead none`
  zeroes them (the simulator before they existed; the 10 ms front end, `request_overhead_s`, stays:
  a measurement, not fitted). Every result row says whether it belongs to
  that fit's population (`split` = fit) or not (held-out), and the table reports the two apart.
- kernels: `--kernels torch` costs every step with the device profile's `torch` section (the
  PyTorch-harness fit) instead of the serving engine's own (`simulate(kernels=...)`): the
  comparison issue 10 asks for (run both with `--overhead none`, since the overheads were
  fitted on the engine sections).
- samples: `--sample N` takes at most N rows per device x engine x family; `--ids FILE` only the rows
  a file names and `--exclude FILE ...` every row but those and their twins (both read by `read_ids`:
  an --out CSV's id column or one id per line) — e.g. a fresh sample beside a development one.

Why one file of ~950 lines (about 215 of them this docstring): the docstring above is the specification of
how a measured row becomes a deployment and a workload, and the functions below implement it clause by
clause (system, model, parallelism, quantization, engine flags, replicas, disagg recipes, protocol); read
apart, a clause and its code would drift. What is not the mapping lives elsewhere: which rows a run takes
(twins, id files: `fidelity_rows.py`), the recipe and launch-flags tables under `benchmarks/data/` with
their readers (`inferencemax_flags.py`, `sglang_recipe_tables.py`), the summary tables
(`serving_fidelity_summary.py`); moving the row mapping into a module of its own is the split to make when
another dataset needs it.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
import time
from collections import defaultdict
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import inferencemax_flags as imx  # the InferenceMAX agg launch-flags table (benchmarks/data/)
from fidelity_rows import distinct, excluded, read_ids  # which measured rows a run takes (twins, id files)
from sglang_recipe_tables import sglang_pool_exchange, sglang_pool_flags  # SGLang recipe flag tables (data/)

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


FIT_SYSTEMS = ("h100_sxm",)  # the overhead fit's population: H100 agg rows of dense models
FIT_FAMILIES = ("Llama", "Qwen3-dense")
LENGTH_JITTER = {"sglang": 0.0, "trtllm": 0.0, "vllm": 0.1}  # chosen on the fit split (docstring)
ZERO_OVERHEAD = {"step_overhead_s": 0.0, "seq_overhead_s": 0.0}


class Unsupported(Exception):
    pass


def split(row: dict[str, str]) -> str:
    """`fit` for a row of the overhead fit's population, else `held-out`."""
    fit = row["mode"] == "agg" and row["system"] in FIT_SYSTEMS and family(row["model_path"]) in FIT_FAMILIES
    return "fit" if fit else "held-out"


def family(model_path: str) -> str:
    low = model_path.lower()
    return next((name for key, name in FAMILY if key in low), "other")


def _int(value: str, default: int = 1) -> int:
    return int(float(value)) if value not in ("", None) else default


def concurrency(row: dict[str, str]) -> int:
    m = re.search(r"silicon_concurrency=(\d+)", row["silicon_data_source"])
    if m:
        return int(m.group(1))
    if row["mode"] == "disagg":  # docstring, "disagg concurrency"
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


def agg_mtp_sources(rows: list[dict[str, str]]) -> dict[str, str]:
    """row id -> "MTP", "no MTP" or "MTP unknown" for the sa-bench DeepSeek-R1 agg rows on b200_sxm
    (docstring, agg MTP), from every row given (the whole file: a row's twin may not be sampled)."""
    levels: dict[tuple[str, ...], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if (r["mode"] == "agg" and r["system"] == "b200_sxm" and family(r["model_path"]) == "DeepSeek"
                and benchmark_source(r) == "sa-bench"):
            # the same run appears in several source files, under either checkpoint name (R1 / R1-NVFP4) and
            # with empty or 1 parallel columns, its TPOT equal to ~1e-12 ms
            key = (r["backend"], r["precision"], r["isl"], r["osl"], concurrency(r),
                   *(_int(r[k]) for k in ("tp_size", "pp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size")))
            levels[key][f"{float(r['silicon_tpot_ms']):.4f}"].append(r["id"])
    out: dict[str, str] = {}
    for by_tpot in levels.values():
        tpots = sorted(by_tpot, key=float)
        twins = len(tpots) == 2 and float(tpots[1]) >= MTP_TWIN_RATIO * float(tpots[0])
        for tpot, ids in by_tpot.items():
            label = ("MTP" if tpot == tpots[0] else "no MTP") if twins else "MTP unknown"
            out.update(dict.fromkeys(ids, label))
    return out


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


SA_BENCH_RATIO = 0.8  # sa-bench --random-range-ratio: lengths uniform in [0.8 L, L]


def benchmark_source(row: dict[str, str]) -> str:
    """`aic-eval` (AIConfigurator's genai-perf / AIPerf runs) or `sa-bench` (the InferenceMAX
    grid's benchmark_serving runs), from the row's `silicon_data_source` (docstring, protocol)."""
    source = row["silicon_data_source"]
    if "aic-auto-gap-analysis" in source:
        return "aic-eval"
    if re.match(r"(source_file=(\d{4}-\d{2}-\d{2}|[\w.-]+-gap-analysis)\.csv|db-dump/)", source):
        return "sa-bench"
    raise Unsupported(f"unknown benchmark source {source[:60]!r}")


def lengths(row: dict[str, str], override: float | None) -> tuple[int, int, float]:
    """(isl, osl, range ratio) to simulate: lengths uniform in [L(1-r), L(1+r)] around them."""
    isl, osl = int(row["isl"]), int(row["osl"])
    if override is not None:
        return isl, osl, override
    if benchmark_source(row) == "sa-bench":  # [0.8 L, L] = centre 0.9 L, half-width 0.1 L = 1/9 of it
        centre = (1 + SA_BENCH_RATIO) / 2
        return round(isl * centre), round(osl * centre), (1 - SA_BENCH_RATIO) / (1 + SA_BENCH_RATIO)
    return isl, osl, LENGTH_JITTER[row["backend"]]


def workers_given(row: dict[str, str]) -> bool:
    return bool(row["prefill_num_workers"] and row["decode_num_workers"])


RECIPES_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "inferencemax_disagg_recipes.csv")
ROLES = ("prefill", "decode")
RECIPE_MODELS = {"DeepSeek": "dsr1", "gpt-oss": "gptoss"}  # family -> the recipes' InferenceMAX model prefix


def load_recipes(path: str = RECIPES_PATH) -> list[dict[str, Any]]:
    """InferenceMAX disagg matrix entries (docstring, disagg), one per recipe and concurrency list."""
    out = []
    with open(path, newline="") as fh:
        for rec in csv.DictReader(fh):
            ints = {k: int(v) for k, v in rec.items() if k not in ("model", "system", "backend", "precision",
                                                                  "concurrency", "recipe")}
            mtp = re.search(r"mtp(\d*)", rec["recipe"])
            out.append({**rec, **ints, "concurrency": {int(c) for c in rec["concurrency"].split()},
                        "mtp": (int(mtp.group(1)) if mtp.group(1) else None) if mtp else 0})
    return out


_RECIPES: list[dict[str, Any]] = []


def recipes() -> list[dict[str, Any]]:
    if not _RECIPES:
        _RECIPES.extend(load_recipes())
    return _RECIPES


def recipe_parallel(tp: int, ep: int, dp_attn: bool) -> dict[str, int]:
    """tensor_cast deployment keys of one pool's InferenceMAX (tp, ep, dp-attn) (docstring, disagg);
    the recipes are all of MoE models (DeepSeek-R1, gpt-oss)."""
    return imx_parallel(tp, ep, dp_attn, moe=True)


def _matching_recipes(row: dict[str, str], given: bool) -> list[dict[str, Any]]:
    c = concurrency(row)
    model = RECIPE_MODELS.get(family(row["model_path"]))
    found = [r for r in recipes() if r["model"] == model and r["system"] == row["system"] and r["backend"] == row["backend"]
             and r["precision"] == row["precision"] and r["isl"] == int(row["isl"]) and r["osl"] == int(row["osl"])
             and c in r["concurrency"]]
    if given:  # the row's own counts and decode GPUs per worker
        return [r for r in found if r["p_workers"] == _int(row["prefill_num_workers"])
                and r["d_workers"] == _int(row["decode_num_workers"])
                and r["d_tp"] == _int(row["decode_tp_size"]) * _int(row["decode_attention_dp_size"])]
    return [r for r in found if r["p_tp"] == _int(row["prefill_tp_size"]) and r["d_tp"] == _int(row["decode_tp_size"])
            and r["p_ep"] == _int(row["prefill_moe_ep_size"])]


def disagg_source(row: dict[str, str]) -> str:
    """How a disagg row's deployment was decided: `given`, `recipe` or `recipe, MTP unknown` (or
    Unsupported with the reason it is not determined)."""
    if workers_given(row):
        return "given"
    found = _matching_recipes(row, given=False)
    if not found:
        raise Unsupported("disagg worker counts not determined: no InferenceMAX recipe matches the row")
    layouts = {tuple(r[k] for k in ("p_workers", "p_tp", "p_ep", "p_dp_attn", "d_workers", "d_tp", "d_ep",
                                    "d_dp_attn")) for r in found}
    if len(layouts) > 1:
        raise Unsupported("disagg worker counts not determined: InferenceMAX recipes with different "
                          "worker counts / parallelism match the row")
    return "recipe" if len({r["mtp"] for r in found}) == 1 and found[0]["mtp"] is not None else "recipe, MTP unknown"


def decode_batch(recipe: dict[str, Any]) -> int | None:
    """The decode servers' max_batch_size (per attention-DP rank) of a TensorRT-LLM recipe, from its
    name (`..._dep8_batch64_...`); None where the name does not say (the SGLang recipes)."""
    m = re.search(r"_batch(\d+)_", recipe["recipe"])
    return int(m.group(1)) if m else None


def given_pool(row: dict[str, str], role: str, found: list[dict[str, Any]]) -> dict[str, int]:
    """One pool's deployment keys of a disagg row that gives its worker counts (docstring, disagg):
    its own columns, except a pool written as attention DP with MoE TP over the DP ranks (moe_ep 1,
    moe_tp = attention DP): on every such h100_sxm / b200_sxm row the InferenceMAX entries that match
    it run that pool with ep = tp (DEP), so the column is the other pool's EP; the entries' layout
    is taken when they agree, else the row is not simulated."""
    prefix = role + "_"
    dp, mtp, mep = (_int(row[prefix + k]) for k in ("attention_dp_size", "moe_tp_size", "moe_ep_size"))
    if not (dp > 1 and mep <= 1 and mtp == dp * _int(row[prefix + "tp_size"])):
        return parallel(row, prefix)
    r = role[0]
    layouts = {(rec[r + "_tp"], rec[r + "_ep"], rec[r + "_dp_attn"]) for rec in found}
    if len(layouts) != 1:
        raise Unsupported(f"{role} pool written as attention DP{dp} with MoE TP{mtp} (moe_ep 1), and no single "
                          "InferenceMAX entry gives its EP")
    tp, ep, dp_attn = layouts.pop()
    return recipe_parallel(tp, ep, bool(dp_attn))


def disagg_deployment(row: dict[str, str]) -> tuple[str, int]:
    """(disagg spec, MTP draft tokens) of a disagg row (docstring, disagg)."""
    source = disagg_source(row)
    if source == "given":
        found = _matching_recipes(row, given=True)
        pools = {role: given_pool(row, role, found) for role in ROLES}
        counts = {role: _int(row[role + "_num_workers"]) for role in ROLES}
        mtp = found[0]["mtp"] or 0 if len(found) == 1 else 0
        caps = {decode_batch(rec) for rec in found}  # the MTP twins of a layout share their batch cap
        if len(caps) == 1 and (cap := caps.pop()):
            pools["decode"]["bs"] = cap
    else:
        found = _matching_recipes(row, given=False)
        rec = found[0]
        pools = {role: recipe_parallel(rec[role[0] + "_tp"], rec[role[0] + "_ep"], bool(rec[role[0] + "_dp_attn"]))
                 for role in ROLES}
        counts = {role: rec[role[0] + "_workers"] for role in ROLES}
        mtp = rec["mtp"] if source == "recipe" else 0
        if decode_batch(rec):
            pools["decode"]["bs"] = decode_batch(rec)
    exchange: dict[str, str] = {}
    if row["backend"] == "sglang":
        for role in ROLES:
            pools[role].update(sglang_pool_flags(found, role, pools[role].get("dp", 1)))
            if sglang_pool_exchange(found, role) == "a2a" and pools[role].get("dp", 1) > 1:
                exchange[role] = "a2a"  # "allgather" is SGLang's default already
    spec = "; ".join(f"{role}: {counts[role]}x " + " ".join([*(f"{k.replace('_', '')}{v}" for k, v in pools[role].items()),
                                                              *([exchange[role]] if role in exchange else [])])
                     for role in ROLES)
    return spec, mtp


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


def setup(row: dict[str, str], range_ratio: float = 0.0, overhead: bool = True, isl: int | None = None,
          host_launch_s: float | None = None, mtp_source: str | None = None) -> dict[str, Any]:
    if row["system"] not in SYSTEMS:
        raise Unsupported(f"no device profile for {row['system']}")
    if row["model_path"] not in MODELS:
        raise Unsupported(f"model {row['model_path']} not in the registry")
    model, forced = MODELS[row["model_path"]]
    kwargs: dict[str, Any] = {"device": SYSTEMS[row["system"]], "engine": row["backend"],
                              **quant(row, row["model_path"], forced)}
    engine_args: dict[str, Any] = {} if overhead else dict(ZERO_OVERHEAD)
    if host_launch_s is not None:  # what-if: one host time per eager launch for every engine (0: off)
        engine_args["eager_launch_host_s"] = host_launch_s
    engine_args.update(vllm_scheduling(row))
    if row["backend"] == "sglang" and row["system"] != "h100_sxm":
        engine_args["max_num_batched_tokens"] = 16384
    if benchmark_source(row) == "aic-eval":  # AIConfigurator's generator disables it without a shared prefix
        engine_args["prefix_caching"] = False
    if benchmark_source(row) == "aic-eval" and row["backend"] in ("vllm", "trtllm") and row["mode"] == "agg":
        # AIConfigurator's generator sized the budget of the engines it launched (docstring, engine)
        engine_args["max_num_batched_tokens"] = _int(row["batch_size"]) + int(row["isl"]) + 1500
    elif row["backend"] == "trtllm":  # no context chunking: a step must hold a whole prompt beside the decodes
        prompt = int(row["isl"]) if isl is None else isl  # the simulated centre length
        longest = round(prompt * (1 + range_ratio)) + 1
        engine_args["max_num_batched_tokens"] = max(8192, longest + concurrency(row))
    if engine_args:
        kwargs["engine_args"] = engine_args
    if row["mode"] == "disagg":
        kwargs["disagg"], mtp = disagg_deployment(row)
        if mtp:
            kwargs["mtp"] = mtp
    else:
        kwargs.update(parallel(row))
        flags = inferencemax_flags(row, mtp=mtp_source == "MTP")
        if flags is None:  # no InferenceMAX entry (other systems, AIConfigurator's runs)
            flags = trtllm_adp_balance(row, kwargs), {}
        args, extra = flags
        if host_launch_s is not None:  # the what-if wins over a script's piecewise graphs
            args.pop("eager_launch_host_s", None)
        if args:
            kwargs["engine_args"] = {**kwargs.get("engine_args", {}), **args}
        kwargs.update(extra)
    return {"model": model, **kwargs}


# Rows of sa-bench agg runs without an entry in the flags table (systems other than h100_sxm / b200_sxm)
# keep the one InferenceMAX setting taken before the table existed: the TensorRT-LLM scripts with
# dp-attention turn the attention-DP balance on, DeepSeek-R1 with timeout_iters 60, batching_wait_iters 0,
# gpt-oss with TensorRT-LLM's defaults 50 and 10 (docstring, engine)
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
    `_mtp.sh` script (an agg MTP twin, docstring), whose table lines are its own, and VERSION, the engine
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
    sa-bench agg row (docstring, engine; `inferencemax_flags.py` and the table's README), None where
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


def group_label(r: dict[str, Any]) -> str:
    if r["mode"] == "disagg":
        return "disagg, workers given" if r["workers"] == "given" else f"disagg, {r['workers']}"
    return f"agg, {r['split']}" + (", MTP unknown" if r.get("mtp_source") == "MTP unknown" else "")


def mae(rows: list[dict[str, Any]], key: str) -> str:
    return f"{100 * sum(r[key] for r in rows) / len(rows):.1f}%" if rows else "-"


INTERNAL_ERROR = "internal error (a defect): "
SKIPPED_FIELDS = ["id", "system", "engine", "mode", "family", "reason"]


def skipped_row(row: dict[str, str], reason: str) -> dict[str, str]:
    """A --skipped-out line: the row's group and why it was not simulated."""
    return {"id": row["id"], "system": row["system"], "engine": row["backend"], "mode": row["mode"],
            "family": family(row["model_path"]), "reason": reason}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--sample", type=int, default=0, help="at most N rows per device x engine x family (0: all)")
    ap.add_argument("--requests-per-client", type=int, default=10)
    ap.add_argument("--warmup", action="store_true", help="leave the first request of every client out")
    ap.add_argument("--range-ratio", type=float, default=None,
                    help="simulate lengths uniform in [L(1-r), L(1+r)] (desynchronizes the closed loop); "
                         "default per engine (LENGTH_JITTER)")
    ap.add_argument("--devices", default=",".join(SYSTEMS))
    ap.add_argument("--engines", default="vllm,sglang,trtllm")
    ap.add_argument("--families", default="", help="comma-separated families (default: all)")
    ap.add_argument("--modes", default="agg,disagg")
    ap.add_argument("--overhead", choices=("profile", "none"), default="profile",
                    help="engine per-step/per-sequence overheads: the profiles' (fitted) or none")
    ap.add_argument("--kernels", default=None, choices=("vllm", "sglang", "trtllm", "torch"),
                    help="device-profile efficiency section for step costs (default: each row's engine)")
    ap.add_argument("--host-launch-us", type=float, default=None,
                    help="what-if: host time per kernel launch of steps run without CUDA graphs, for every "
                         "engine (eager_launch_host_s; 0 turns the floor off; default: each engine's own)")
    ap.add_argument("--moe-skew", type=float, default=0.0,
                    help="what-if: Zipf skew of MoE expert popularity in every step (analyze's moe_skew; 0: uniform "
                         "random routing, the default)")
    ap.add_argument("--mtp-acceptance", type=float, default=None,
                    help="what-if: per-draft MTP acceptance of every MTP row (simulate's mtp_acceptance; default "
                         "tensor_cast's DEFAULT_ACCEPTANCE, 0.85: no public figure for DeepSeek-R1 on sa-bench's random "
                         "prompts, docs/serving_accuracy.md 'MTP acceptance')")
    ap.add_argument("--no-agg-mtp", action="store_true",
                    help="simulate every agg row without MTP (ignore the DeepSeek B200 MTP twins: docstring, agg MTP)")
    ap.add_argument("--allreduce-fusion", choices=("auto", "on", "off"), default="auto",
                    help="TP all-reduce + residual add + RMSNorm fused (engine knob allreduce_fusion): auto = each "
                         "engine's default and the launch flags; on / off for every row (what-if)")
    ap.add_argument("--kv-cache-dtype", choices=("bf16", "fp8"), default=None,
                    help="what-if: this KV cache dtype for every row (default: each row's mapping, docstring)")
    ap.add_argument("--out", help="per-row CSV of predictions (written as rows finish)")
    ap.add_argument("--ids", help="only these row ids: a file with one id per line or an --out CSV (e.g. the "
                                  "rows a mapping change newly covers)")
    ap.add_argument("--exclude", nargs="+", default=[],
                    help="leave out these rows and their twins (the same measured TTFT and TPOT under another id): "
                         "files of ids, one per line, or --out CSVs (their id column); e.g. the development sample's "
                         "--out CSVs, to draw a fresh sample of rows no modelling change was checked on")
    ap.add_argument("--distinct", action="store_true",
                    help="one row per measured run: twins (the same measured TTFT and TPOT under another id) are "
                         "simulated once, under the first id in the file")
    ap.add_argument("--skipped-out",
                    help="CSV of the rows not simulated, with the reason (written as rows finish): the coverage "
                         "serving_fidelity_summary.py --skipped reports")
    ap.add_argument("--max-concurrency", type=int, default=0,
                    help="only rows measured at most this many clients (silicon_concurrency; 0: all; the others are "
                         "listed as not run): the little-queueing rows serving_ttft_signature.py --rows reads, or a "
                         "full run without the largest closed loops (10 requests x 16,384 clients take minutes)")
    args = ap.parse_args()

    import tensor_cast
    from tensor_cast.errors import TensorCastError

    wanted = read_ids(args.ids) if args.ids else None
    with open(args.data, newline="") as fh:
        every = list(csv.DictReader(fh))
    left_out = excluded(every, args.exclude)
    mtp_sources = {} if args.no_agg_mtp else agg_mtp_sources(every)
    if args.distinct:
        every = distinct(every)
    rows = [r for r in every if r["system"] in args.devices.split(",")
            and (wanted is None or r["id"] in wanted) and r["id"] not in left_out
            and r["mode"] in args.modes.split(",") and r["backend"] in args.engines.split(",")
            and (not args.families or family(r["model_path"]) in args.families.split(","))]
    groups: dict[tuple[str, str, str], list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        groups[(r["system"], r["backend"], family(r["model_path"]))].append(r)
    if args.sample:
        for key, members in groups.items():
            step = max(1, len(members) // args.sample)
            groups[key] = members[::step][: args.sample]
    results: list[dict[str, Any]] = []
    skipped: dict[str, list[str]] = defaultdict(list)
    start = time.time()
    todo = sorted((r for members in groups.values() for r in members),
                  key=lambda r: (r["model_path"], r["system"], r["backend"], r["mode"]))
    fields = ["id", "system", "engine", "mode", "family", "split", "workers", "mtp", "mtp_source", "concurrency",
              "deployment",
              "pred_ttft_s", "meas_ttft_s", "pred_tpot_s", "meas_tpot_s", "ttft_err", "tpot_err", "preemptions",
              "kv_peak_use"]
    with open(args.out or os.devnull, "w", newline="") as out, \
            open(args.skipped_out or os.devnull, "w", newline="") as skipped_out:
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        skip_writer = csv.DictWriter(skipped_out, fieldnames=SKIPPED_FIELDS)
        skip_writer.writeheader()

        def skip(row: dict[str, str], reason: str) -> None:
            skipped[reason].append(row["id"])
            skip_writer.writerow(skipped_row(row, reason))
            skipped_out.flush()

        for i, row in enumerate(todo):
            try:
                isl, osl, ratio = lengths(row, args.range_ratio)
                kwargs = setup(row, ratio, overhead=args.overhead == "profile", isl=isl,
                               host_launch_s=None if args.host_launch_us is None else args.host_launch_us * 1e-6,
                               mtp_source=mtp_sources.get(row["id"]))
                c = per_replica_concurrency(row)
                if args.max_concurrency and _measured_clients(row) > args.max_concurrency:  # mapped, not run
                    skip(row, f"not run: more than --max-concurrency {args.max_concurrency} clients")
                    continue
                if row["mode"] == "agg" and agg_mtp(row, kwargs, mtp_sources.get(row["id"])):
                    kwargs["mtp"] = agg_mtp(row, kwargs, mtp_sources.get(row["id"]))
                if args.moe_skew:
                    kwargs["moe_skew"] = args.moe_skew
                if args.mtp_acceptance is not None and kwargs.get("mtp"):
                    kwargs["mtp_acceptance"] = args.mtp_acceptance
                if args.kv_cache_dtype:
                    kwargs["kv_cache_dtype"] = args.kv_cache_dtype
                if args.allreduce_fusion != "auto":
                    kwargs["engine_args"] = {**kwargs.get("engine_args", {}),
                                             "allreduce_fusion": args.allreduce_fusion == "on"}
                report = tensor_cast.simulate(**kwargs, concurrency=c, num_requests=c * args.requests_per_client,
                                              isl=isl, osl=osl, range_ratio=ratio,
                                              warmup_requests=c if args.warmup else 0, kernels=args.kernels)
            except Unsupported as exc:
                skip(row, str(exc))
                continue
            except TensorCastError as exc:
                skip(row, f"{type(exc).__name__}: {str(exc)[:110]}")
                continue
            except Exception as exc:  # a defect, not a refusal: listed apart at the end, the long run goes on
                skip(row, f"{INTERNAL_ERROR}{type(exc).__name__}: {str(exc)[:110]}")
                continue
            ttft, tpot = float(row["silicon_ttft_ms"]) / 1e3, float(row["silicon_tpot_ms"]) / 1e3
            result = {"id": row["id"], "system": row["system"], "engine": row["backend"], "mode": row["mode"],
                      "family": family(row["model_path"]), "split": split(row),
                      "workers": disagg_source(row) if row["mode"] == "disagg" else "given",
                      "mtp": kwargs.get("mtp", 0),
                      "mtp_source": mtp_sources.get(row["id"], "given") if row["mode"] == "agg" else "",
                      "concurrency": c,
                      "deployment": report.deployment, "pred_ttft_s": report.mean_ttft_s, "meas_ttft_s": ttft,
                      "pred_tpot_s": report.mean_tpot_s, "meas_tpot_s": tpot,
                      "ttft_err": abs(report.mean_ttft_s - ttft) / ttft, "tpot_err": abs(report.mean_tpot_s - tpot) / tpot,
                      "preemptions": report.preemptions, "kv_peak_use": round(report.kv_peak_use, 4)}
            results.append(result)
            writer.writerow(result)
            out.flush()
            sys.stderr.write(f"{i + 1}/{len(todo)} rows, {time.time() - start:.0f} s\n")
    jitter_text = (f"in [L(1-r), L(1+r)], r = {args.range_ratio}" if args.range_ratio is not None else
                   f"sa-bench rows in [{SA_BENCH_RATIO} L, L], aic-eval rows jittered by {LENGTH_JITTER}")
    host_text = "the engine's own" if args.host_launch_us is None else f"{args.host_launch_us} us"
    print(f"protocol: {args.requests_per_client} requests per client, lengths {jitter_text}, "
          f"warm-up {'first wave excluded' if args.warmup else 'none'}, engine overheads {args.overhead}, "
          f"host time per eager launch {host_text}")
    print(f"\n{len(results)} rows simulated, {sum(len(v) for v in skipped.values())} not, of {len(todo)} "
          f"({'sampled ' + str(args.sample) + ' per group' if args.sample else 'all rows'}) in {time.time() - start:.0f} s\n")
    table: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        table[(r["system"], r["engine"], r["family"])].append(r)
    print("| device | engine | family | rows simulated / in group | split | TPOT MAE | TTFT MAE |")
    print("| --- | --- | --- | ---: | --- | ---: | ---: |")
    for key in sorted(groups):
        got = table.get(key, [])
        splits = "/".join(sorted({group_label(r).split(", ")[-1] for r in got})) or "-"
        print(f"| {key[0]} | {key[1]} | {key[2]} | {len(got)} / {len(groups[key])} | {splits} | "
              f"{mae(got, 'tpot_err')} | {mae(got, 'ttft_err')} |")
    labels = sorted({group_label(r) for r in results})
    for label in labels:
        sub = [r for r in results if group_label(r) == label]
        print(f"| all | | {label} | {len(sub)} | | {mae(sub, 'tpot_err')} | {mae(sub, 'ttft_err')} |")
    for system in sorted({r["system"] for r in results}):
        for mode in ("agg", "disagg"):
            sub = [r for r in results if r["system"] == system and r["mode"] == mode]
            if sub:
                print(f"| {system} | | {mode} | {len(sub)} | | {mae(sub, 'tpot_err')} | {mae(sub, 'ttft_err')} |")
    for mode in ("agg", "disagg"):
        sub = [r for r in results if r["mode"] == mode]
        if sub:
            print(f"| all | | {mode} | {len(sub)} | | {mae(sub, 'tpot_err')} | {mae(sub, 'ttft_err')} |")
    if results:
        low_tpot = sum(r["pred_tpot_s"] < r["meas_tpot_s"] for r in results)
        low_ttft = sum(r["pred_ttft_s"] < r["meas_ttft_s"] for r in results)
        print(f"| all | | all | {len(results)} | | {mae(results, 'tpot_err')} | {mae(results, 'ttft_err')} |")
        print(f"\npredicted below measured: TPOT in {low_tpot}, TTFT in {low_ttft} of {len(results)} rows")
    print("\nrows not simulated:")
    for reason, ids in sorted(skipped.items(), key=lambda kv: -len(kv[1])):
        print(f"- {len(ids)} rows: {reason} (e.g. {ids[0]})")
    defects = sum(len(ids) for reason, ids in skipped.items() if reason.startswith(INTERNAL_ERROR))
    if defects:
        print(f"\nerror: {defects} rows failed with an internal error (listed above): a defect to fix",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
