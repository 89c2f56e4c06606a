"""SGLang's AIConfigurator kernel tables (benchmarks/aic_engine_kernels.py `SGLANG`) and the shipped
[efficiency.sglang] sections: which rows the readers take for SGLang's kernels (tiny synthetic tables
written here, never the packaged ones), and that analyze(..., engine="sglang") costs with the sglang
section (a decode op's parts derived by hand from its keys)."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest
import torch
from benchmark_modules import benchmarks

import tensor_cast
from tensor_cast.backends.device import load_device


@pytest.fixture(scope="module")
def aic():
    return benchmarks("aic_engine_kernels", "aic_tables", "aic_fit")


def write(folder: Path, table: str, rows: list[dict]) -> None:
    with gzip.open(folder / f"{table}.csv.gz", "wt", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def gemm_row(kernel: str, dtype: str, m: int, n: int = 4096, k: int = 4096) -> dict:
    return {"framework": "SGLang", "version": "0.5.14", "device": "NVIDIA B200", "op_name": "gemm",
            "kernel_source": kernel, "gemm_dtype": dtype, "m": m, "n": n, "k": k, "latency": 0.01}


def test_sglang_gemm_rows_are_its_kernels_in_cuda_graphs(aic, tmp_path):
    """The folder is read as SGLang's (framework column); each dtype takes SGLang's kernel only (a vLLM
    kernel's row in the same table is not read), NVFP4 rows cost an FP4 GEMM behind an NVFP4 quantization,
    fp8 rows a per-token (not per-tensor) quantization, and every row is a CUDA-graph replay (no eager
    DeepGEMM floor, unlike vLLM's tables)."""
    aek, aic_tables, _ = aic
    kernels = {"sglang_torch_linear": "bfloat16", "sglang_sgl_kernel_fp8_scaled_mm": "fp8",
               "sglang_deepgemm_gemm_nt_f8f8bf16": "fp8_block", "sglang_flashinfer_cutedsl_nvfp4": "nvfp4",
               "CutlassFP8ScaledMMLinearKernel": "fp8"}
    write(tmp_path, "gemm_perf", [gemm_row(kernel, dtype, m) for kernel, dtype in kernels.items() for m in (8, 512)])
    assert aek.engine_of(tmp_path) == "sglang"
    cases = aic_tables.gemm_cases(tmp_path)
    assert sorted((c.stage, c.row.name) for c in cases) == sorted(
        (f"gemm {v}", k) for k, v in (("sglang_torch_linear", "bf16"), ("sglang_sgl_kernel_fp8_scaled_mm", "fp8"),
                                      ("sglang_deepgemm_gemm_nt_f8f8bf16", "fp8_block"),
                                      ("sglang_flashinfer_cutedsl_nvfp4", "nvfp4")) for _ in (8, 512))
    assert {c.mode for c in cases} == {aic_tables.IN_GRAPH} != {aic_tables.HOST_TIMED}  # no row is host-timed
    nvfp4 = next(c for c in cases if c.stage == "gemm nvfp4" and c.row.params["M"] == 512)
    quant, linear = nvfp4.ops
    assert dict(linear.counts.flops) == {"fp4": 2 * 512 * 4096 * 4096}
    assert linear.counts.kernel.variant == "nvfp4"
    # the weight streams at 4.5 bits an element (FP4 + one FP8 scale per 16)
    assert linear.counts.bytes_read >= 4096 * 4096 * 9 // 16
    fp8 = next(c for c in cases if c.stage == "gemm fp8" and c.row.params["M"] == 512)
    # one fp32 scale per token comes out of SGLang's quantization (vLLM's: one per tensor)
    assert fp8.ops[0].call.outputs[1].shape == (512, 1)
    vllm = aic_tables.gemm_ops(512, 4096, 4096, "fp8")
    assert vllm[0].call.outputs[1].shape != (512, 1)


def test_fp8_block_floors_are_fixed_at_zero_where_no_row_was_eager(aic, tmp_path, monkeypatch):
    """SGLang's DeepGEMM rows are graph replays: the fit gets no call floor to identify, so the stage fixes
    the floors at 0 instead of fitting them; vLLM's (eager rows) still fits them."""
    aek, aic_tables, aic_fit = aic
    write(tmp_path, "gemm_perf", [gemm_row("sglang_deepgemm_gemm_nt_f8f8bf16", "fp8_block", m, 4096 + 128 * i)
                                  for i in range(12) for m in (8, 512)])
    cases = aic_tables.gemm_cases(tmp_path)
    seen = {}
    monkeypatch.setattr(aic_fit.cf, "fit_stage", lambda stage, used, profile: seen.update(
        params={p.key for p in stage.params}, fixed=dict(stage.fixed)) or {})
    stage = next(s for s in aic_fit.STAGES if s.name == "gemm fp8_block")
    aic_fit.fit_engine(cases, load_device("b200", "vllm"), "test", stages=[stage], engine=aek.SGLANG)
    floors = {"efficiency.gemm_fp8_block_call_floor_us", "efficiency.gemm_fp8_block_unaligned_floor_us"}
    assert not floors & seen["params"] and all(seen["fixed"][k] == 0.0 for k in floors)
    aic_fit.fit_engine([c for c in cases], load_device("b200", "vllm"), "test", stages=[stage], engine=aek.VLLM)
    assert floors <= seen["params"]


def moe_row(kernel: str, dtype: str, tokens: int, ep: int) -> dict:
    return {"framework": "SGLang", "version": "0.5.14", "device": "NVIDIA B200", "op_name": "moe",
            "kernel_source": kernel, "moe_dtype": dtype, "num_tokens": tokens, "hidden_size": 2048,
            "inter_size": 768, "topk": 8, "num_experts": 128, "moe_tp_size": 1, "moe_ep_size": ep,
            "distribution": "balanced", "latency": 0.05}


def test_sglang_moe_takes_trtllm_where_the_table_has_it_and_only_rank_local_rows(aic, tmp_path):
    """A Blackwell table with both of SGLang's block-fp8 MoE kernels is read as FlashInfer's TRT-LLM one;
    a Hopper table (Triton only) as Triton. Under EP the collector times rank 0's own tokens only
    (build_rank0_local_workload), so every SGLang kernel is costed with the local rows alone: at EP 8 the
    routed rows costed are the local experts' share, not all T x k."""
    _, aic_tables, _ = aic
    both = [moe_row(k, "fp8_block", t, ep) for k in ("sglang_fused_moe_triton", "sglang_flashinfer_trtllm_moe")
            for t in (64, 512) for ep in (1, 8)]
    write(tmp_path, "moe_perf", both)
    cases = [c for c in aic_tables.moe_cases(tmp_path) if "via moe_skew" not in c.cls]
    assert {c.row.name for c in cases} == {"sglang_flashinfer_trtllm_moe"} and len(cases) == 4
    hopper = tmp_path / "hopper"
    hopper.mkdir()
    write(hopper, "moe_perf", [r for r in both if r["kernel_source"] == "sglang_fused_moe_triton"])
    triton = [c for c in aic_tables.moe_cases(hopper) if "via moe_skew" not in c.cls]
    assert {c.row.name for c in triton} == {"sglang_fused_moe_triton"} and {c.stage for c in triton} == {"moe fp8_block"}

    aek = benchmarks("aic_engine_kernels")[0]
    assert aic_tables.local_rows_only("sglang_fused_moe_triton", aek.SGLANG)
    assert not aic_tables.local_rows_only("vllm_fp8moe_triton_tritonexperts", aek.VLLM)  # vLLM's expert map
    ep8 = next(c for c in triton if c.row.params["ep"] == 8 and c.row.params["T"] == 512)
    shape = ep8.ops[0].counts.kernel
    with_remote = aic_tables.moe_table_ops(512, 2048, 768, 8, 128, 1, 8, "fp8_block",
                                           [round(q * 512) for n, q in shape.bins for _ in range(n)],
                                           local_only=False)[0].counts
    assert float(ep8.ops[0].counts.bytes) < float(with_remote.bytes)


def test_sglang_custom_all_reduce_is_the_graph_kernel_up_to_16_mib(aic, tmp_path):
    aek, aic_tables, aic_fit = aic
    rows = [{"framework": "SGLang", "version": "0.5.14", "device": "NVIDIA B200", "op_name": "all_reduce",
             "kernel_source": f"SGLang_CustomAllReduce_{mode}", "allreduce_dtype": "bfloat16", "num_gpus": 8,
             "message_size": elements, "latency": 0.01, "backend": f"sglang_{mode}"}
            for mode in ("eager", "graph") for elements in (2**20, 8 * 2**20, 16 * 2**20)]
    write(tmp_path, "custom_allreduce_perf", rows)
    cases = aic_tables.collective_cases(tmp_path)
    assert len(cases) == 3
    assert [aic_fit.usable(c) for c in sorted(cases, key=lambda c: c.row.params["elements"])] == [True, True, False]
    assert aek.SGLANG.custom_max_mib == 16.0  # 8 Mi bf16 elements = 16 MiB: custom; 32 MiB: NCCL


def dsa_row(kernel: str, tp: int, kv: str = "bfloat16") -> dict:
    return {"framework": "SGLang", "version": "0.5.14", "device": "NVIDIA B200", "op_name": "dsa_generation_module",
            "kernel_source": kernel, "model": "zai-org/GLM-5", "architecture": "GlmMoeDsaForCausalLM",
            "mla_dtype": "bfloat16", "kv_cache_dtype": kv, "gemm_type": "bfloat16", "num_heads": 64 // tp,
            "batch_size": 4, "isl": 1, "tp_size": tp, "step": 4096, "latency": 0.1}


def test_sglang_dsa_rows_are_the_indexer_layers_at_every_tp(aic, tmp_path):
    """SGLang's DSA module rows: the layers with the indexer (what tensor_cast traces) at every TP size
    (`num_heads` is already the local count); the dense-MHA prefill path and the layers that skip the
    indexer are other kernels, not read."""
    _, aic_tables, _ = aic
    write(tmp_path, "dsa_generation_module_perf",
          [dsa_row(k, tp) for k in ("sglang_dsa_indexer_trtllm", "sglang_dsa_skip_indexer_trtllm",
                                    "sglang_dsa_dense_mha_trtllm_ragged") for tp in (1, 4)])
    cases = aic_tables.dsa_cases(tmp_path)
    assert sorted((c.row.name, c.row.params["heads"]) for c in cases) == [
        ("sglang_dsa_indexer_trtllm", 16), ("sglang_dsa_indexer_trtllm", 64)]
    assert all(c.stage == "dsa" and c.cls == "dsa decode" for c in cases)
    assert any(op.call.op == torch.ops.tensor_cast.dsa_indexer.default for op in cases[0].ops)


def test_sglang_section_is_fitted_and_sourced_on_h100_and_b200():
    """Both fitted profiles carry an sglang section whose every key names its source; the keys SGLang's
    tables do not time (MLA modules) are the vllm section's, marked so."""
    for name in ("h100-sxm", "b200"):
        profile = load_device(name, "sglang")
        assert profile.engine == "sglang" and profile.engine_note == ""
        vllm = load_device(name, "vllm")
        for key in profile.efficiency:
            source = profile.sources[f"efficiency.sglang.{key}"]
            assert "SGLang 0.5.14" in source or "kept from the vllm section" in source, key
        assert profile.efficiency["attention_mla_memory"] == vllm.efficiency["attention_mla_memory"]
        assert "kept from the vllm section" in profile.sources["efficiency.sglang.attention_mla_memory"]
        assert profile.efficiency["gemm_bf16_compute"] != vllm.efficiency["gemm_bf16_compute"]
    assert "gemm_nvfp4_compute" in load_device("b200", "sglang").efficiency


QWEN3_NEXT = {"model_type": "qwen3_next", "architectures": ["Qwen3NextForCausalLM"], "hidden_size": 256,
              "intermediate_size": 512, "num_hidden_layers": 1, "layer_types": ["linear_attention"],
              "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64, "linear_num_key_heads": 2,
              "linear_num_value_heads": 4, "linear_key_head_dim": 128, "linear_value_head_dim": 128,
              "linear_conv_kernel_dim": 4, "vocab_size": 1024, "num_experts": 4, "num_experts_per_tok": 2,
              "moe_intermediate_size": 128, "shared_expert_intermediate_size": 128, "mlp_only_layers": [0],
              "decoder_sparse_step": 1, "full_attention_interval": 4, "max_position_embeddings": 4096,
              "torch_dtype": "bfloat16"}


def test_analyze_with_engine_sglang_costs_a_decode_with_the_sglang_section(tmp_path):
    """A one-layer gated-DeltaNet model's decode on B200: the recurrent step's memory time is its bytes at
    the sglang section's attention_gdn_recurrent_memory of HBM and its latency the section's
    attention_gdn_recurrent_latency_us (2,048 sequences x 4 heads: 56 waves, above the per-wave floor) —
    not the vllm section's."""
    (tmp_path / "config.json").write_text(json.dumps(QWEN3_NEXT))
    rows = {}
    for engine in ("sglang", "vllm"):
        report = tensor_cast.analyze(str(tmp_path), device="b200", engine=engine, symbolic=True)
        point = report.evaluate(batch_size=2048, query_len=1, context_len=1024)
        rows[engine] = next(r for r in point.ops if r.op == "tensor_cast.gated_delta_net")
    device = load_device("b200", "sglang")
    eff = device.efficiency
    row = rows["sglang"]
    assert 2048 * 4 / device.compute_units * eff["attention_gdn_recurrent_cta_us"] * 1e-6 < row.memory_s
    assert row.memory_s == pytest.approx(row.bytes / (device.memory_bandwidth_gbps * 1e9
                                                      * eff["attention_gdn_recurrent_memory"]), rel=1e-9)
    assert row.latency_s >= eff["attention_gdn_recurrent_latency_us"] * 1e-6
    vllm_eff = load_device("b200", "vllm").efficiency
    assert eff["attention_gdn_recurrent_memory"] != vllm_eff["attention_gdn_recurrent_memory"]
    assert row.memory_s != pytest.approx(rows["vllm"].memory_s, rel=1e-3)


def test_glm5_indexer_kernel_rows_are_summed_and_evaluated_only(aic, tmp_path):
    """GLM-5's logits and top-k kernel rows of one (batch, new tokens, cached tokens) are one evaluation-only
    case of the `dsa_indexer` op (the top_last top-k; a 0 top-k where the keys fit the top-k is kept); rows of one
    new token (the collector's ragged prefill kernel, not SGLang's paged decode one) are left out."""
    _, aic_tables, _ = aic
    base = {"framework": "SGLang", "version": "kernel-level", "device": "NVIDIA B200", "model": "zai-org/GLM-5",
            "architecture": "GlmMoeDsaForCausalLM", "mla_dtype": "fp8_e4m3", "kv_cache_dtype": "fp8_e4m3",
            "gemm_type": "fp8_block", "num_heads": 64, "tp_size": 1, "compress_ratio": 1}
    shapes = ((2, 512, 0), (2, 1024, 4096), (64, 1, 4096))
    write(tmp_path, "glm5_mqa_logits_module_perf", [
        {**base, "op_name": "glm5_mqa_logits_module", "kernel_source": "deep_gemm.fp8_mqa_logits", "batch_size": b,
         "isl": isl, "step": step, "latency": 0.010} for b, isl, step in shapes])
    write(tmp_path, "glm5_topk_module_perf", [
        {**base, "op_name": "glm5_topk_module", "kernel_source": "fast_topk_transform_fused", "batch_size": b,
         "isl": isl, "step": step, "latency": (0.0 if isl + step <= 2048 else 0.020) * (2 if mode == "flat" else 1),
         "score_mode": mode} for b, isl, step in shapes for mode in ("flat", "top_last")])
    cases = aic_tables.dsa_indexer_kernel_cases(tmp_path)
    measured = {(c.row.params["B"], c.row.params["isl"], c.row.params["step"]): c.row.median_us for c in cases}
    assert measured == pytest.approx({(2, 512, 0): 10.0, (2, 1024, 4096): 30.0})
    assert {c.stage for c in cases} == {aic_tables.NOT_FITTED}
    assert all(c.ops[0].call.op == torch.ops.tensor_cast.dsa_indexer.default for c in cases)
