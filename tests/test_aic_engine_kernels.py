"""The engine-keyed reading of AIConfigurator's kernel tables (benchmarks/aic_engine_kernels.py): which rows
a TensorRT-LLM table sends to which stage (and which a vLLM reading of the same table does), the engine told
from the tables' `framework` column, and that no trtllm section ships (engine trtllm falls back to vllm, with
a note). Synthetic tables only (never the shared data)."""

from __future__ import annotations

import csv
import gzip
import subprocess
import sys
from pathlib import Path

import pytest
from benchmark_modules import benchmarks

from tensor_cast.backends.device import load_device

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def aic():
    return benchmarks("aic_engine_kernels", "aic_tables", "aic_fit", "calibration_cases")


def write_table(folder: Path, name: str, rows: list[dict]) -> None:
    with gzip.open(folder / f"{name}.csv.gz", "wt", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def gemm_row(framework: str, kernel: str, dtype: str, m: int, n: int = 4096, k: int = 4096) -> dict:
    return {"framework": framework, "version": "x", "device": "NVIDIA B200", "op_name": "gemm", "kernel_source": kernel,
            "gemm_dtype": dtype, "m": m, "n": n, "k": k, "latency": 0.01}


def test_the_engine_is_the_tables_framework_and_an_unknown_one_is_refused(aic, tmp_path):
    engines, *_ = aic
    write_table(tmp_path, "gemm_perf", [gemm_row("TRTLLM", "torch_flow", "bfloat16", 1)])
    # nccl_perf is the same copy in every engine's folder: it never decides
    write_table(tmp_path, "nccl_perf", [{"framework": "VLLM", "op_name": "all_reduce"}])
    assert engines.engine_of(tmp_path) == "trtllm"
    assert engines.kernels("trtllm") is engines.TRTLLM and engines.kernels("vllm") is engines.VLLM
    write_table(tmp_path, "gemm_perf", [gemm_row("LMDEPLOY", "x", "bfloat16", 1)])
    with pytest.raises(engines.UnknownEngineTables, match=r"framework 'LMDEPLOY' has no AIC kernel-table entry; "
                                                          r"known: vllm, sglang, trtllm"):
        engines.engine_of(tmp_path)
    with pytest.raises(engines.UnknownEngineTables, match="known: vllm, sglang, trtllm"):
        engines.kernels("lmdeploy")


def test_gemm_rows_go_to_the_stage_of_the_kernel_each_engine_runs(aic, tmp_path):
    engines, aic_tables, _, cases_module = aic
    rows = [gemm_row("TRTLLM", "torch_flow", "bfloat16", 8), gemm_row("TRTLLM", "torch_flow", "nvfp4", 8),
            gemm_row("TRTLLM", "deepgemm", "fp8_block", 8), gemm_row("TRTLLM", "torch_flow", "fp8", 8),
            gemm_row("TRTLLM", "CutlassFP8ScaledMMLinearKernel", "fp8", 16),
            gemm_row("TRTLLM", "DeepGemmFp8BlockScaledMMKernel", "fp8_block", 16),
            gemm_row("TRTLLM", "FlashInferCuteDslNvFp4LinearKernel", "nvfp4", 16)]
    write_table(tmp_path, "gemm_perf", rows)
    trt = aic_tables.gemm_cases(tmp_path)  # the folder's framework: TensorRT-LLM
    assert sorted((c.row.name, c.stage) for c in trt) == [
        ("deepgemm", "gemm fp8_block"), ("torch_flow", "gemm bf16"), ("torch_flow", "gemm fp8"),
        ("torch_flow", "gemm nvfp4")]
    # TensorRT-LLM's rows are CUDA-graph replays: no eager (host-timed) GEMM
    assert {c.mode for c in trt} == {cases_module.IN_GRAPH}
    # the nvfp4 row: the FP4 activation quantization (one scale per 16) and the NVFP4 GEMM
    nvfp4 = next(c for c in trt if c.stage == "gemm nvfp4")
    assert [str(o.call.op) for o in nvfp4.ops] == ["tensor_cast.quantize.default", "tensor_cast.quant_linear.default"]
    assert nvfp4.ops[0].call.args[1:] == ("nvfp4", 16, True) and nvfp4.ops[1].counts.kernel.variant == "nvfp4"
    # the same table read as vLLM's kernels takes only vLLM's kernel rows, DeepGEMM launched eagerly
    vllm = aic_tables.gemm_cases(tmp_path, engine=engines.VLLM)
    assert sorted((c.row.name, c.stage) for c in vllm) == [
        ("CutlassFP8ScaledMMLinearKernel", "gemm fp8"), ("DeepGemmFp8BlockScaledMMKernel", "gemm fp8_block"),
        ("FlashInferCuteDslNvFp4LinearKernel", "gemm nvfp4")]
    assert next(c for c in vllm if c.stage == "gemm fp8_block").mode == aic_tables.HOST_TIMED
    # vLLM's NVFP4 linear (FlashInfer CuTe DSL), a CUDA-graph replay, with its FP4 activation quantization
    vllm_fp4 = next(c for c in vllm if c.stage == "gemm nvfp4")
    assert vllm_fp4.mode == cases_module.IN_GRAPH and vllm_fp4.ops[0].call.args[1:] == ("nvfp4", 16, True)


def moe_row(kernel: str, dtype: str, h: int, i: int, k: int, e: int, t: int = 64) -> dict:
    return {"framework": "TRTLLM", "version": "x", "device": "NVIDIA B200", "op_name": "moe", "kernel_source": kernel,
            "moe_dtype": dtype, "num_tokens": t, "hidden_size": h, "inter_size": i, "topk": k, "num_experts": e,
            "moe_tp_size": 1, "moe_ep_size": 1, "distribution": "balanced", "latency": 0.1}


def test_moe_rows_of_trtllms_kernels_ungated_ones_told_by_their_kernel(aic, tmp_path):
    engines, aic_tables, _, _ = aic
    h, i, k, e = 8192, 5120, 22, 512  # Nemotron-3's ReLU^2 experts: not in aic_tables.UNGATED_MOE
    assert (h, i, k, e) not in aic_tables.UNGATED_MOE
    write_table(tmp_path, "moe_perf", [
        moe_row("moe_torch_flow_cutlass", "bfloat16", 4096, 1024, 8, 64),
        moe_row("moe_torch_flow_nongated", "bfloat16", h, i, k, e),
        moe_row("moe_torch_flow_min_latency", "nvfp4", 7168, 2048, 8, 256),  # a serving flag's kernel: not read
        # Blackwell block fp8: DeepGEMM, though the table has CUTLASS rows of other dtypes
        moe_row("deepgemm", "fp8_block", 7168, 2048, 8, 256),
        moe_row("vllm_unquantizedfusedmoe_triton_tritonexperts", "bfloat16", 4096, 1024, 8, 64)])
    cases = aic_tables.moe_cases(tmp_path)
    assert sorted((c.row.name, c.stage) for c in cases) == [("deepgemm", "moe fp8_block"),
                                                            ("moe_torch_flow_cutlass", "moe bf16"),
                                                            ("moe_torch_flow_nongated", "moe bf16")]
    by_kernel = {c.row.name: c.ops[0].counts.kernel for c in cases}
    assert by_kernel["deepgemm"].variant == "fp8_block"
    # bf16 expert weights: gated = gate + up + down (3 H x I), ungated = up + down (2 H x I)
    assert by_kernel["moe_torch_flow_cutlass"].expert_bytes == 3 * 4096 * 1024 * 2
    assert by_kernel["moe_torch_flow_nongated"].expert_bytes == 2 * h * i * 2
    # plain top-k routing (RenormalizeMoeRoutingMethod): DeepSeek-V3's shape is not routed group-limited
    assert not engines.TRTLLM.group_limited_routing and engines.VLLM.group_limited_routing


def test_trtllm_custom_all_reduce_rows_above_its_limit_are_left_to_nccl(aic, tmp_path):
    engines, aic_tables, aic_fit, _ = aic
    limit = int(engines.TRTLLM.custom_max_mib * 2**20 / 2)  # bf16 elements
    write_table(tmp_path, "custom_allreduce_perf", [
        {"framework": "TRTLLM", "version": "x", "device": "NVIDIA B200", "op_name": "all_reduce",
         "kernel_source": source, "allreduce_dtype": "bfloat16", "num_gpus": 8, "message_size": size,
         "latency": 0.01, "implementation": "x"}
        for source in ("TRTLLM", "vLLM_custom_graph") for size in (1024, limit, 2 * limit)])
    cases = aic_tables.collective_cases(tmp_path)
    assert [(c.row.params["elements"], aic_fit.usable(c)) for c in cases] == [(1024, True), (limit, True),
                                                                             (2 * limit, False)]


def test_the_fit_fixes_the_engines_structural_switches(aic):
    engines, _, aic_fit, _ = aic
    trt = engines.TRTLLM
    assert trt.fa3_tiles == {"hopper": 0, "blackwell": 0} and trt.pack_gqa == {"hopper": 0, "blackwell": 0}
    for stage, fixed in trt.stage_fixed.items():
        assert stage in {s.name for s in aic_fit.STAGES}, stage
        assert all(key.startswith("efficiency.") for key in fixed)


def test_calibrate_refuses_a_section_fitted_on_another_engines_tables(tmp_path):
    write_table(tmp_path, "gemm_perf", [gemm_row("TRTLLM", "torch_flow", "bfloat16", 1)])
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "calibrate_device.py"), "--from-aic",
                          str(tmp_path), "--engine", "vllm", "--base", "h100-sxm"], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == (f"error: --from-aic {tmp_path} timed trtllm's kernels, not "
                                                   f"vllm's; pass --engine trtllm")


# ---- no trtllm section is shipped -----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["h100-sxm", "b200", "h200", "b300", "gb200", "gb300"])
def test_trtllm_falls_back_to_the_vllm_section_with_a_note(name):
    """The sections fitted on TensorRT-LLM 1.3.0rc20's tables predicted served TensorRT-LLM runs worse than the
    vllm section (README, "Accuracy on TensorRT-LLM's own kernels"), so none ships: engine trtllm costs with
    the vllm section and says so, less the GEMM variants whose kernels the engines do not share (vLLM's NVFP4
    linear: backends/engines.py GEMM_KERNELS), which take the section's generic GEMM parameters."""
    profile = load_device(name, "trtllm")
    assert profile.engine == "vllm" and "trtllm" in profile.engine_note
    vllm = dict(load_device(name, "vllm").efficiency)
    assert dict(profile.efficiency) == {k: v for k, v in vllm.items() if not k.startswith("gemm_nvfp4_")}
    # Blackwell's vllm sections fit that kernel (AIConfigurator's B200 NVFP4 rows); Hopper has no FP4
    assert any(k.startswith("gemm_nvfp4_") for k in vllm) == (name not in ("h100-sxm", "h200"))

