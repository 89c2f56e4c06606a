"""The serving-fidelity benchmark's protocol mapping (benchmarks/serving_fidelity.py): which
benchmark client measured a row, and the request lengths it sent, against the clients' own rules
(sa-bench: lengths uniform in [int(0.8 L), L]; AIConfigurator's genai-perf runs: fixed lengths).
Rows are made up here; the measured CSV is never read."""

from __future__ import annotations

import numpy as np
import pytest
from benchmark_modules import benchmarks

from tensor_cast.serving.workload import make_workload

fidelity, engine_flags, imx, sglang_recipes = benchmarks("serving_fidelity", "fidelity_engine_flags", "inferencemax_flags",
                                                        "sglang_recipe_tables")


def row(source: str, isl: int = 1024, osl: int = 8192, backend: str = "trtllm") -> dict[str, str]:
    return {"silicon_data_source": source, "isl": str(isl), "osl": str(osl), "backend": backend}


SA_BENCH = ("source_file=2026-04-06.csv; model=Llama-3.1-70B; silicon_concurrency=16",
            "db-dump/2026-04-27; config_id=691; silicon_concurrency=256; workflow_run_id=799",
            "source_file=kimi-k2.5-gap-analysis.csv; silicon_concurrency=4")
AIC_EVAL = "source_file=/Users/x/aic-auto-gap-analysis/data/h100_sxm/trtllm/1.0.0rc3/m.csv; silicon_concurrency=8"


@pytest.mark.parametrize("source", SA_BENCH)
def test_inferencemax_grid_rows_draw_lengths_as_sa_bench_does(source):
    r = row(source)
    assert fidelity.benchmark_source(r) == "sa-bench"
    isl, osl, ratio = fidelity.lengths(r, None)
    workload = make_workload(concurrency=64, rate=None, trace=None, num_requests=20_000, isl=isl, osl=osl,
                             range_ratio=ratio, seed=5)
    lengths = np.array(workload.lengths())
    # sa-bench --random-range-ratio 0.8: uniform integers in [int(0.8 L), L]; L = 1024 -> [819, 1024],
    # L = 8192 -> [6553, 8192] (simulated to within one token at the lower end)
    for column, (low, high) in ((0, (819, 1024)), (1, (6553, 8192))):
        assert lengths[:, column].max() == high
        assert low <= lengths[:, column].min() <= low + 1
        assert lengths[:, column].mean() == pytest.approx((low + high) / 2, rel=2e-3)


@pytest.mark.parametrize("backend", ["vllm", "sglang", "trtllm"])
def test_aic_eval_rows_keep_fixed_lengths_with_the_engine_jitter(backend):
    r = row(AIC_EVAL, isl=2048, osl=256, backend=backend)
    assert fidelity.benchmark_source(r) == "aic-eval"
    assert fidelity.lengths(r, None) == (2048, 256, fidelity.LENGTH_JITTER[backend])
    assert fidelity.lengths(r, 0.3) == (2048, 256, 0.3)  # --range-ratio overrides every row
    assert fidelity.lengths(row(SA_BENCH[0]), 0.0) == (1024, 8192, 0.0)


def test_unknown_benchmark_source_is_listed_not_guessed():
    with pytest.raises(fidelity.Unsupported, match="unknown benchmark source"):
        fidelity.benchmark_source(row("measured by hand"))


def agg_row(source: str, backend: str) -> dict[str, str]:
    fields = dict.fromkeys(("gemm_quant_mode", "moe_quant_mode", "attention_dp_size", "moe_tp_size", "moe_ep_size"), "")
    return {**fields, "silicon_data_source": source, "backend": backend, "system": "h100_sxm", "mode": "agg",
            "model_path": "meta-llama/Llama-3.1-8B-Instruct", "isl": "4096", "osl": "512", "batch_size": "16",
            "tp_size": "1", "pp_size": "1"}


@pytest.mark.parametrize("backend", ["vllm", "trtllm"])
def test_aic_eval_agg_rows_get_the_generators_step_budget(backend):
    # AIConfigurator's generator rule: agg max_num_tokens = max_batch_size + isl + 1500 = 16 + 4096 + 1500
    kwargs = fidelity.setup(agg_row(AIC_EVAL, backend), 0.0)
    assert kwargs["engine_args"]["max_num_batched_tokens"] == 5612
    assert kwargs["tp"] == 1 and kwargs["engine"] == backend


def test_other_rows_keep_the_engine_budget():
    assert "engine_args" not in fidelity.setup(agg_row(SA_BENCH[0], "vllm"), 0.0)  # vLLM's own 8192
    # TensorRT-LLM without context chunking: the whole longest prompt beside every client's decode
    kwargs = fidelity.setup(agg_row(SA_BENCH[0], "trtllm"), 1 / 9, isl=3686)
    assert kwargs["engine_args"]["max_num_batched_tokens"] == max(8192, round(3686 * 10 / 9) + 1 + 16)


def moe_row(source: str, backend: str, tp: str, dp: str, moe_tp: str, moe_ep: str, run: str = "x") -> dict[str, str]:
    return {**agg_row(source, backend), "model_path": "deepseek-ai/DeepSeek-R1", "id": run, "tp_size": tp,
            "attention_dp_size": dp, "moe_tp_size": moe_tp, "moe_ep_size": moe_ep}


@pytest.mark.parametrize(("backend", "columns", "run", "expected"), [
    # InferenceMAX tp8 ep8 on one 8-GPU node, written tp_size 64 = moe_tp 8 x moe_ep 8
    ("trtllm", ("64", "1", "8", "8"), "dsr1_b200_trtllm_fp8_agg_8192x1024_c4_tp8_ep8_920", {"tp": 8, "ep": 8}),
    ("sglang", ("16", "1", "4", "4"), "qwen3_5_b200_sglang_fp8_agg_8192x1024_c64_cfg615", {"tp": 4, "ep": 4}),
    # the same with dp-attn: attention_dp_size 64 = 8 x 8
    ("trtllm", ("1", "64", "8", "8"), "r_tp8_ep8_937", {"tp": 1, "dp": 8, "ep": 8}),
    ("trtllm", ("1", "4", "2", "2"), "r_tp2_ep2_1741", {"tp": 1, "dp": 2, "ep": 2}),
    # dp-attn with ep 1: attention DP 4 with MoE TP 4 across the DP ranks
    ("trtllm", ("1", "4", "4", "1"), "r_tp4_ep1_296", {"tp": 1, "dp": 4, "moe_tp": 4}),
    # vLLM dp-attn written tp = dp = the run's tp, moe_ep = tp x dp (--data-parallel-size=$TP)
    ("vllm", ("4", "4", "1", "16"), "minimaxm2_5_b200_vllm_fp8_agg_1024x1024_c256_cfg691", {"tp": 1, "dp": 4, "ep": 4}),
    # the convention tensor_cast reads directly: tp4 with EP4 (moe_tp 1), TP4 MoE TP
    ("vllm", ("4", "1", "1", "4"), "r", {"tp": 4, "ep": 4}),
    ("sglang", ("4", "1", "4", "1"), "r", {"tp": 4}),
])
def test_inferencemax_rows_map_to_the_runs_own_layout(backend, columns, run, expected):
    assert fidelity.parallel(moe_row(SA_BENCH[1], backend, *columns, run=run)) == expected


@pytest.mark.parametrize(("columns", "run"), [
    (("64", "1", "64", "1"), "2026_04_06_deepseek_r1_gb200_trtllm_fp4_agg_8192x1024_c538_tp64_ep1_113"),
    (("36", "1", "36", "1"), "2026_04_06_deepseek_r1_gb200_trtllm_fp4_agg_1024x1024_c32_tp36_ep1_11"),
])
def test_inferencemax_agg_rows_beyond_one_node_are_listed_not_simulated(columns, run):
    # InferenceMAX agg runs are single-node: tp 64 (or 36, which 128 heads do not even divide) is a multi-node
    # run's GPU total, not a tensor-parallel width
    with pytest.raises(fidelity.Unsupported, match="agg run on more than 8 GPUs: its agg runs are single-node"):
        fidelity.parallel(moe_row(SA_BENCH[0], "trtllm", *columns, run=run))
    assert fidelity.parallel(moe_row(SA_BENCH[0], "trtllm", "8", "1", "8", "1", run="r_tp8_ep1_1")) == {"tp": 8}


def test_aic_eval_rows_map_mixed_moe_splits_as_written():
    # TensorRT-LLM moe_tp 2 x moe_ep 2 over tp 4 (moe_tp = tp / ep, the default), 2 x 4 over tp 8
    assert fidelity.parallel(moe_row(AIC_EVAL, "trtllm", "4", "", "2", "2")) == {"tp": 4, "ep": 2}
    assert fidelity.parallel(moe_row(AIC_EVAL, "trtllm", "8", "", "2", "4")) == {"tp": 8, "ep": 4}
    assert fidelity.parallel(moe_row(AIC_EVAL, "trtllm", "1", "4", "4", "1")) == {"tp": 1, "dp": 4, "moe_tp": 4}
    with pytest.raises(fidelity.Unsupported, match="MoE split moe_tp=2 x moe_ep=2 over tp=8"):
        fidelity.parallel(moe_row(AIC_EVAL, "trtllm", "8", "", "2", "2"))  # 4 != 8 GPUs


def test_inferencemax_sglang_deepseek_b200_rows_get_their_launch_flags():
    # benchmarks/dsr1_fp8_b200.sh, TP4 branch: --mem-fraction-static 0.95 --max-running-requests 32
    # --cuda-graph-max-bs 32 --chunked-prefill-size 8192 --kv-cache-dtype fp8_e4m3
    r = {**moe_row(SA_BENCH[1], "sglang", "4", "1", "4", "1"), "system": "b200_sxm", "precision": "fp8"}
    kwargs = fidelity.setup(r, 0.0)
    args = kwargs["engine_args"]
    assert (args["memory_utilization"], args["max_num_seqs"], args["max_num_batched_tokens"]) == (0.95, 32, 8192)
    assert max(args["cuda_graph_sizes"]) == 32 and kwargs["kv_cache_dtype"] == "fp8"
    assert "memory_utilization" not in fidelity.setup({**r, "backend": "vllm"}, 0.0).get("engine_args", {})


def test_inferencemax_trtllm_dp_attention_rows_get_the_attention_dp_balance():
    # dsr1_fp4_b200_trt.sh / dsr1_fp8_b200_trt.sh with DP_ATTENTION=true: attention_dp_config
    # {enable_balance: true, timeout_iters: 60, batching_wait_iters: 0}
    r = {**moe_row(SA_BENCH[1], "trtllm", "1", "64", "8", "8", run="r_tp8_ep8_937"), "system": "b200_sxm",
         "precision": "fp4"}
    args = fidelity.setup(r, 0.0)["engine_args"]
    assert (args["adp_balance_timeout_iters"], args["adp_batching_wait_iters"]) == (60, 0)
    # gptoss_fp4_b200_trt.sh sets enable_balance alone: TensorRT-LLM's AttentionDpConfig defaults 50 / 10
    gpt = {**r, "model_path": "openai/gpt-oss-120b"}
    args = fidelity.setup(gpt, 0.0)["engine_args"]
    assert (args["adp_balance_timeout_iters"], args["adp_batching_wait_iters"]) == (50, 10)
    # no attention DP (tp8 ep8), another engine, or AIConfigurator's own runs: no balance
    for other in ({**r, "id": "r_tp8_ep8_920", "tp_size": "64", "attention_dp_size": "1"}, {**r, "backend": "vllm"},
                  {**r, "silicon_data_source": AIC_EVAL}):
        assert "adp_balance_timeout_iters" not in fidelity.setup(other, 0.0).get("engine_args", {})


def test_qwen3_fp8_checkpoint_rows_run_block_fp8():
    # Qwen/Qwen3-235B-A22B-FP8 is fine-grained FP8 (128 x 128 weight blocks): its experts run vLLM's
    # block-FP8 MoE, not the per-tensor FlashInfer CUTLASS kernel (3-4x slower per layer on H100 at
    # decode batches in the kernel tables)
    path = "Qwen/Qwen3-235B-A22B-FP8"
    model, forced = fidelity.MODELS[path]
    r = {"gemm_quant_mode": "fp8", "moe_quant_mode": "fp8"}
    assert (model, fidelity.quant(r, path, forced)) == ("Qwen/Qwen3-235B-A22B", {"quant": "fp8_block"})


def test_aic_eval_trtllm_per_tensor_fp8_rows_run_the_modelopt_checkpoints_fp8_kv_cache():
    # TensorRT-LLM serves per-tensor FP8 from a ModelOpt checkpoint, whose FP8 KV cache kv_cache_dtype auto
    # follows (64 x 4,224 tokens of bf16 KV, 70.9 GB, beside 32.8 GB of weights cannot fit an 80 GB H100)
    row = {"gemm_quant_mode": "fp8", "moe_quant_mode": "fp8", "backend": "trtllm", "silicon_data_source": AIC_EVAL}
    assert fidelity.quant(row, "Qwen/Qwen3-32B", None) == {"quant": "fp8", "kv_cache_dtype": "fp8"}
    # vLLM's auto is the model dtype; InferenceMAX's runs say their cache in their scripts; gpt-oss is MXFP4
    assert fidelity.quant({**row, "backend": "vllm"}, "Qwen/Qwen3-32B", None) == {"quant": "fp8"}
    sa_bench = {**row, "silicon_data_source": SA_BENCH[0], "mode": "agg"}
    assert fidelity.quant(sa_bench, "Qwen/Qwen3-32B", None) == {"quant": "fp8"}
    assert "kv_cache_dtype" not in fidelity.quant({**row, "system": "h100_sxm"}, "openai/gpt-oss-120b", None)


def test_gpt_oss_b200_inferencemax_rows_run_mxfp8_activations():
    # InferenceMAX's B200 vLLM gpt-oss script selects FlashInfer's MXFP4 x MXFP8 MoE (an env var): the
    # checkpoint's MXFP4 experts costed as w4a8_mxfp4_mxfp8; TensorRT-LLM does so by default on Blackwell,
    # which the library applies to the checkpoint's scheme (no quant key here, test_deployment_config);
    # H100 rows, SGLang and AIConfigurator's own vLLM runs keep the checkpoint's scheme (no quant key)
    r = {"gemm_quant_mode": "", "moe_quant_mode": "nvfp4", "system": "b200_sxm", "silicon_data_source": SA_BENCH[0]}
    assert fidelity.quant({**r, "backend": "vllm"}, "openai/gpt-oss-120b", None)["quant"] == "w4a8_mxfp4_mxfp8"
    for other in ({**r, "backend": "trtllm"}, {**r, "backend": "vllm", "system": "h100_sxm"},
                  {**r, "backend": "sglang"}, {**r, "backend": "vllm", "silicon_data_source": AIC_EVAL}):
        assert "quant" not in fidelity.quant(other, "openai/gpt-oss-120b", None)
    assert fidelity.quant({**r, "backend": "vllm"}, "openai/gpt-oss-120b", "mxfp4")["quant"] == "mxfp4"


def imx_row(model: str, backend: str, precision: str, isl: int, osl: int, conc: int, run: str,
            system: str = "b200_sxm") -> dict[str, str]:
    """An sa-bench agg row of an InferenceMAX run `..._tp<T>_ep<E>_...` (TP attention, no dp-attn)."""
    return {**agg_row(f"source_file=2026-04-06.csv; silicon_concurrency={conc}", backend), "model_path": model,
            "system": system, "precision": precision, "isl": str(isl), "osl": str(osl), "id": run,
            "tp_size": run.split("_tp")[1].split("_")[0], "attention_dp_size": "1"}


LLAMA = "meta-llama/Llama-3.1-70B"


@pytest.mark.parametrize(("isl", "osl", "tp", "waits"), [(1024, 1024, 2, True), (1024, 1024, 8, False),
                                                        (8192, 1024, 2, False), (1024, 8192, 4, False)])
def test_llama_trtllm_b200_rows_get_the_scripts_batch_wait_and_budget(isl, osl, tp, waits):
    # 70b_fp8_b200_trt_slurm.sh: --max_num_tokens 16384, fp8 KV, CUDA graphs to 1024 with padding; at
    # 1k/1k with TP < 8 also batch_wait_timeout_iters 20, batch_wait_max_tokens_ratio 0.9
    kwargs = fidelity.setup(imx_row(LLAMA, "trtllm", "fp8", isl, osl, 8, f"r_tp{tp}_ep1_5"), 0.0)
    args = kwargs["engine_args"]
    assert args["max_num_batched_tokens"] == 16384 and kwargs["kv_cache_dtype"] == "fp8"
    assert args["cuda_graph_sizes"][-3:] == (256, 512, 1024) and 24 in args["cuda_graph_sizes"]
    expected = (20, 0.9) if waits else (None, None)
    assert (args.get("batch_wait_timeout_iters"), args.get("batch_wait_max_tokens_ratio")) == expected
    # the harness's max-model-len, a script variable: ISL + OSL + 200
    assert engine_flags.imx_variables(imx_row(LLAMA, "trtllm", "fp4", isl, osl, 8, f"r_tp{tp}_ep1_5"))["MAX_MODEL_LEN"] \
        == isl + osl + 200


def test_trtllm_scripts_postprocess_workers_reach_the_engine():
    # 70b_fp8_b200_trt_slurm.sh and gptoss_fp4_b200_trt.sh launch trtllm-serve with
    # num_postprocess_workers 2 / 4; the FP4 Llama and the DeepSeek-R1 scripts set none
    fp8 = fidelity.setup(imx_row(LLAMA, "trtllm", "fp8", 1024, 1024, 8, "r_tp8_ep1_5"), 0.0)["engine_args"]
    gpt = fidelity.setup(imx_row("openai/gpt-oss-120b", "trtllm", "fp4", 1024, 1024, 8, "r_tp2_ep1_5"),
                         0.0)["engine_args"]
    fp4 = fidelity.setup(imx_row(LLAMA, "trtllm", "fp4", 1024, 1024, 8, "r_tp8_ep1_5"), 0.0)["engine_args"]
    dsr1 = fidelity.setup(imx_row("deepseek-ai/DeepSeek-R1", "trtllm", "fp8", 1024, 1024, 8, "r_tp8_ep1_5"),
                          0.0)["engine_args"]
    assert (fp8["postprocess_workers"], gpt["postprocess_workers"]) == (2, 4)
    assert "postprocess_workers" not in fp4 and "postprocess_workers" not in dsr1


def test_deepseek_trtllm_b200_budget_and_overrides_follow_the_script():
    # dsr1_fp8_b200_trt.sh: MAX_NUM_TOKENS = max(8192, (CONC + ISL + 64 + 63) / 64 * 64); 8k/1k at 256
    # clients: (256 + 8192 + 127) // 64 * 64 = 8512; TP4 at 8k/1k: free_gpu_memory_fraction 0.75, piecewise
    # CUDA graphs from 64 clients (no eager context steps)
    dsr1 = "deepseek-ai/DeepSeek-R1"
    args = fidelity.setup(imx_row(dsr1, "trtllm", "fp8", 8192, 1024, 256, "r_tp4_ep1_9"), 0.0)["engine_args"]
    assert (args["max_num_batched_tokens"], args["memory_utilization"], args["eager_launch_host_s"]) == (8512, 0.75, 0)
    # 1k/1k from 64 clients: batch waiting 40 / 0.8; below 64 clients none; 1k/8k from 256: graphs to CONC // 8
    args = fidelity.setup(imx_row(dsr1, "trtllm", "fp8", 1024, 1024, 64, "r_tp8_ep8_9"), 0.0)["engine_args"]
    assert (args["batch_wait_timeout_iters"], args["batch_wait_max_tokens_ratio"]) == (40, 0.8)
    assert args["max_num_batched_tokens"] == 8192 and args["memory_utilization"] == 0.8
    args = fidelity.setup(imx_row(dsr1, "trtllm", "fp8", 1024, 1024, 32, "r_tp8_ep8_9"), 0.0)["engine_args"]
    assert "batch_wait_timeout_iters" not in args and "eager_launch_host_s" not in args
    args = fidelity.setup(imx_row(dsr1, "trtllm", "fp8", 1024, 8192, 256, "r_tp8_ep8_9"), 0.0)["engine_args"]
    assert max(args["cuda_graph_sizes"]) == 32 and args["memory_utilization"] == 0.7


def test_deepseek_b200_mtp_twins_take_their_mtp_scripts_flags():
    # dsr1_fp8_b200_trt_mtp.sh: MAX_BATCH_SIZE = CONC, MTP 3, MAX_NUM_TOKENS = ((MTP + 1) x MAX_BATCH_SIZE
    # + ISL + 64 + 63) / 64 x 64: (256 + 1024 + 127) // 64 x 64 = 1344 at 64 clients, 1k/1k; no batch
    # waiting (the plain script's 40 / 0.8 at these points), piecewise graphs above 4 clients
    dsr1 = "deepseek-ai/DeepSeek-R1"
    row = imx_row(dsr1, "trtllm", "fp8", 1024, 1024, 64, "r_tp8_ep8_9")
    args = fidelity.setup(row, 0.0, mtp_source="MTP")["engine_args"]
    assert (args["max_num_batched_tokens"], args["max_num_seqs"], args["memory_utilization"]) == (1344, 64, 0.8)
    assert "batch_wait_timeout_iters" not in args and args["eager_launch_host_s"] == 0
    assert max(args["cuda_graph_sizes"]) == 64
    # the plain twin keeps the plain script's lines
    assert fidelity.setup(row, 0.0, mtp_source="no MTP")["engine_args"]["batch_wait_timeout_iters"] == 40
    # dp-attn (FP8): MAX_BATCH_SIZE = CONC / 8 per rank, MTP 1: (2 x 32 + 1024 + 127) // 64 x 64 = 1152
    dep = {**imx_row(dsr1, "trtllm", "fp8", 1024, 1024, 256, "r_tp8_ep8_9"), "attention_dp_size": "8"}
    args = fidelity.setup(dep, 0.0, mtp_source="MTP")["engine_args"]
    assert (args["max_num_batched_tokens"], args["max_num_seqs"], args["memory_utilization"]) == (1152, 32, 0.7)
    assert args["adp_balance_timeout_iters"] == 60 and "eager_launch_host_s" not in args
    # FP4, 8k/1k at 16 clients: (4 x 16 + 8192 + 127) // 64 x 64 = 8320, no piecewise graphs
    args = fidelity.setup(imx_row(dsr1, "trtllm", "fp4", 8192, 1024, 16, "r_tp8_ep8_9"), 0.0,
                          mtp_source="MTP")["engine_args"]
    assert (args["max_num_batched_tokens"], args["max_num_seqs"]) == (8320, 16) and "eager_launch_host_s" not in args
    # SGLang dsr1_fp8_b200_mtp.sh (TP8 only): --chunked-prefill-size 16384 (the plain script's TP8 branch
    # 32768), --max-running-requests 512, --cuda-graph-max-bs 512
    row = imx_row(dsr1, "sglang", "fp8", 8192, 1024, 32, "r_tp8_ep1_3")
    args = fidelity.setup(row, 0.0, mtp_source="MTP")["engine_args"]
    assert (args["max_num_batched_tokens"], args["max_num_seqs"], args["scheduler_recv_interval"]) == (16384, 512, 30)
    assert max(args["cuda_graph_sizes"]) == 512
    assert fidelity.setup(row, 0.0, mtp_source="no MTP")["engine_args"]["max_num_batched_tokens"] == 32768


@pytest.mark.parametrize(("conc", "interval"), [(8, 10), (16, 30), (64, 30)])
def test_sglang_b200_rows_get_the_scripts_receive_interval(conc, interval):
    # qwen3.5_fp8_b200.sh: --scheduler-recv-interval 10 under 16 clients, else 30; --chunked-prefill-size
    # 32768, --max-running-requests 128, --mem-fraction-static 0.82, --cuda-graph-max-bs $CONC
    kwargs = fidelity.setup(imx_row("Qwen/Qwen3.5-397B-A17B", "sglang", "fp8", 1024, 1024, conc, "r_tp4_ep4_1"), 0.0)
    args = kwargs["engine_args"]
    assert args["scheduler_recv_interval"] == interval and max(args["cuda_graph_sizes"]) == conc
    assert (args["max_num_batched_tokens"], args["max_num_seqs"], args["memory_utilization"]) == (32768, 128, 0.82)
    # GLM-5 FP8 sets no receive interval (SGLang's default 1)
    glm = fidelity.setup(imx_row("zhipuai/GLM-5", "sglang", "fp8", 1024, 1024, conc, "r_tp8_ep1_1"), 0.0)
    assert "scheduler_recv_interval" not in glm["engine_args"]


def test_flag_table_cells_parse_and_every_entry_names_its_source():
    assert imx.value("max(8192, (CONC + ISL + 127) // 64 * 64)", {"CONC": 4, "ISL": 8192}) == 8320
    assert imx.value("CONC if CONC < 4 else CONC // 4", {"CONC": 2}) == 2
    assert imx.value("CONC if CONC < 4 else CONC // 4", {"CONC": 64}) == 16
    with pytest.raises(ValueError, match="unsupported expression"):
        imx.value("__import__('os')", {})
    assert imx.condition_holds("128-255", 200) and not imx.condition_holds("128-255", 256)
    assert imx.condition_holds("<8", 4) and not imx.condition_holds(">=64", 32)
    with pytest.raises(ValueError, match="bad condition"):
        imx.condition_holds("~8", 8)
    rows = imx.rows()
    assert rows and all(r["source"].startswith("benchmarks/") and len(r["commit"]) == 40 for r in rows)
    assert {r["model"] for r in rows} == set(engine_flags.IMX_MODEL.values())


def test_gpt_oss_kv_cache_follows_the_scripts():
    # gptoss_fp4_b200.sh passes kv-cache-dtype fp8; gptoss_fp4_h100.sh none (the model dtype), although
    # the row's nvfp4 label would give an FP8 KV cache (`quant`)
    gpt = {**imx_row("openai/gpt-oss-120b", "vllm", "fp4", 1024, 1024, 16, "r_tp2_ep1_3"), "gemm_quant_mode": "nvfp4"}
    assert fidelity.setup(gpt, 0.0)["kv_cache_dtype"] == "fp8"
    h100 = fidelity.setup({**gpt, "system": "h100_sxm"}, 0.0)
    assert h100["kv_cache_dtype"] is None and h100["engine_args"]["max_num_seqs"] == 16
    # gptoss_fp4_b200.sh runs vLLM's all-reduce + RMSNorm fusion pass; gptoss_fp4_h100.sh does not
    assert fidelity.setup(gpt, 0.0)["engine_args"]["allreduce_fusion"] is True
    assert "allreduce_fusion" not in h100["engine_args"]


@pytest.mark.parametrize(("version", "kv", "utilization"), [("0.19.0", "fp8", 0.9), ("0.17.0", None, 0.95),
                                                          ("nightly-5b8c30d62b754b57", None, 0.95)])
def test_minimax_b200_vllm_fp8_rows_get_their_script_versions_kv_cache(version, kv, utilization):
    # minimaxm2.5_fp8_b200.sh as stored (07e171a): no kv-cache-dtype, gpu-memory-utilization 0.95; its later
    # fixed_seq_len/ version, transcribed by NVIDIA's recipe for vLLM 0.19.0: kv-cache-dtype fp8, 0.90 (README of
    # the table: the 0.19.0 runs' measured concurrency needs the FP8 cache, the 0.17.0 runs' fits a BF16 one)
    row = {**imx_row("MiniMaxAI/MiniMax-M2.5", "vllm", "fp8", 8192, 1024, 128, "r_tp2_ep1_85"),
           "backend_version": version, "gemm_quant_mode": "fp8_block", "moe_quant_mode": "fp8_block"}
    kwargs = fidelity.setup(row, 0.0)
    assert kwargs.get("kv_cache_dtype") == kv
    assert kwargs["engine_args"]["memory_utilization"] == utilization and kwargs["engine_args"]["block_size"] == 32


def test_version_conditions_compare_release_versions():
    assert imx.condition_holds(">=0.19.0", "0.19.0") and imx.condition_holds(">=0.19.0", "0.20.1")
    assert not imx.condition_holds(">=0.19.0", "0.17.0") and imx.condition_holds("<0.19", "0.18.2")
    assert not imx.condition_holds(">=0.19.0", "nightly-5b8c30d62b754b57")  # not a release: no version line applies
    assert imx.condition_holds("", "nightly-5b8c30d62b754b57")
    with pytest.raises(ValueError, match="bad version condition"):
        imx.condition_holds(">=v0.19", "0.19.0")


def test_flags_the_measurements_contradict_are_listed_not_simulated():
    # qwen3.5_fp8_b200.sh caps --max-running-requests at 128; the runs above 128 clients decode larger
    # batches, so their cap is not determined (README of the table)
    qwen = imx_row("Qwen/Qwen3.5-397B-A17B", "sglang", "fp8", 8192, 1024, 256, "r_tp4_ep1_1")
    with pytest.raises(fidelity.Unsupported, match="max_num_seqs not determined"):
        fidelity.setup(qwen, 0.0)
    assert fidelity.setup({**qwen, "silicon_data_source": "source_file=2026-04-06.csv; silicon_concurrency=128"},
                          0.0)["engine_args"]["max_num_seqs"] == 128


def test_gpt_oss_h100_vllm_rows_run_marlin_moe():
    # gptoss_fp4_h100.sh exports VLLM_MXFP4_USE_MARLIN=1: the checkpoint's MXFP4 experts run vLLM's Marlin
    # MoE (quant mxfp4_marlin); gptoss_fp4_b200.sh selects FlashInfer's MXFP8-activation kernel instead
    gpt = {**imx_row("openai/gpt-oss-120b", "vllm", "fp4", 1024, 1024, 16, "r_tp2_ep1_3"), "gemm_quant_mode": "nvfp4"}
    assert fidelity.setup({**gpt, "system": "h100_sxm"}, 0.0)["quant"] == "mxfp4_marlin"
    assert fidelity.setup(gpt, 0.0)["quant"] == "w4a8_mxfp4_mxfp8"
    args, deployment = imx.engine_knobs({"kernels": "env VLLM_MXFP4_USE_MARLIN=1"}, {}, "sglang")
    assert "quant" not in deployment  # a vLLM environment variable: no other engine reads it


@pytest.mark.parametrize(("backend", "version", "source", "added"), [
    ("vllm", "0.12.0", AIC_EVAL, True),  # before vllm-project/vllm#27614: host work between steps
    ("vllm", "0.11.2", SA_BENCH[0] + "; measured=2025-12-07T00:00:00Z", True),
    ("vllm", "", SA_BENCH[0] + "; measured=2025-10-29T00:00:00.000Z", True),  # no version: the date decides
    ("vllm", "", SA_BENCH[0] + "; measured=2026-03-27T00:00:00.000Z", False),
    ("vllm", "0.15.1", SA_BENCH[0], False),  # async scheduling by default: the overhead overlaps
    ("vllm", "0.19.0", SA_BENCH[1], False),
    ("vllm", "nightly-5b8c30d62b754b57", SA_BENCH[1], False),
    ("trtllm", "1.0.0rc3", AIC_EVAL, False),  # not vLLM: the profile's own (added) overhead, untouched
])
def test_vllm_rows_before_async_scheduling_add_their_host_overhead(backend, version, source, added):
    r = {**row(source, backend=backend), "backend_version": version}
    assert engine_flags.vllm_scheduling(r) == ({"host_overlap": False} if added else {})


def test_trtllm_forced_nvlink_all_to_all_is_the_moe_exchange():
    # gptoss_fp4_b200_trt.sh with dp-attention: "ep 1: env TRTLLM_FORCE_ALLTOALL_METHOD=NotEnabled; ep > 1:
    # env ... TRTLLM_FORCE_ALLTOALL_METHOD=MNNVL" -> the all_to_all exchange for EP > 1 only
    kernels = ("ep 1: env TRTLLM_FORCE_ALLTOALL_METHOD=NotEnabled; ep > 1: env "
               "TRTLLM_MOE_ALLTOALL_BACKEND=mnnvlthroughput TRTLLM_FORCE_ALLTOALL_METHOD=MNNVL")
    _, ep4 = imx.engine_knobs({"kernels": kernels}, {"EP": 4}, "trtllm")
    _, ep1 = imx.engine_knobs({"kernels": kernels}, {"EP": 1}, "trtllm")
    assert ep4 == {"moe_exchange": "all_to_all"} and ep1 == {}
    _, vllm = imx.engine_knobs({"kernels": kernels}, {"EP": 4}, "vllm")
    assert vllm == {}


def test_sglang_disagg_pools_take_their_recipes_moe_exchange():
    # srt-slurm gb200-fp8/1k1k/max-tpt: moe-a2a-backend deepep in both pools; b200-fp8/1k1k/mtp/
    # max-tpt-dep8-1p2d sets none (SGLang's default: DP attention gathers the tokens)
    wide, dep8 = {"recipe": "gb200-fp8/1k1k/max-tpt"}, {"recipe": "b200-fp8/1k1k/mtp/max-tpt-dep8-1p2d"}
    assert [sglang_recipes.sglang_pool_exchange([wide], role) for role in ("prefill", "decode")] == ["a2a", "a2a"]
    assert sglang_recipes.sglang_pool_exchange([dep8], "decode") == "allgather"
    assert sglang_recipes.sglang_pool_exchange([wide, dep8], "decode") is None  # matched recipes disagree
    assert sglang_recipes.sglang_pool_exchange([{"recipe": "no/such/recipe"}], "decode") is None


@pytest.mark.parametrize(("version", "kv"), [("0.19.0", "fp8"), ("nightly-5b8c30d62b754b57", None)])
def test_minimax_b300_vllm_fp8_rows_reuse_the_b200_recipe(version, kv):
    # minimaxm2.5_fp8_b300.sh "reuses the existing MiniMax-M2.5 FP8 B200 vLLM recipe as-is": the 0.19.0 runs take
    # the B200 0.19.0 line (FP8 KV, 0.90); the nightly of March 2026, like B200's 0.17.0 runs, no table line
    row = {**imx_row("MiniMaxAI/MiniMax-M2.5", "vllm", "fp8", 8192, 1024, 256, "r_tp2_ep1_85"), "system": "b300_sxm",
           "backend_version": version, "gemm_quant_mode": "fp8_block", "moe_quant_mode": "fp8_block"}
    kwargs = fidelity.setup(row, 0.0)
    assert kwargs.get("kv_cache_dtype") == kv
    assert kwargs.get("engine_args", {}).get("memory_utilization") == (0.9 if kv else None)
