"""The serving-fidelity benchmark's agg MTP twins (benchmarks/serving_fidelity.py, "agg MTP"):
InferenceMAX measured DeepSeek-R1 on B200 at the same points with and without MTP and the agg rows
do not say which; the faster of a configuration's two TPOT levels is the MTP run. Rows are made up
here; the measured CSV is never read."""

from __future__ import annotations

import pytest
from benchmark_modules import benchmarks

import tensor_cast

(fidelity,) = benchmarks("serving_fidelity")

SA_BENCH = "source_file=2026-03-25.csv; model=DeepSeek-R1; silicon_concurrency={c}"


def dsr1(run: str, tpot_ms: float, backend: str = "trtllm", concurrency: int = 16, **columns: str) -> dict[str, str]:
    row = {"id": run, "silicon_data_source": SA_BENCH.format(c=concurrency), "backend": backend,
           "model_path": "deepseek-ai/DeepSeek-R1", "system": "b200_sxm", "mode": "agg", "precision": "fp8",
           "isl": "1024", "osl": "1024", "batch_size": str(concurrency), "tp_size": "8", "pp_size": "1",
           "attention_dp_size": "1", "moe_tp_size": "8", "moe_ep_size": "1", "silicon_tpot_ms": repr(tpot_ms)}
    return {**row, **columns}


def test_the_faster_of_two_levels_is_the_mtp_run():
    rows = [dsr1("plain", 18.4544), dsr1("mtp", 8.6068),
            # the MTP run again in another file: an empty pp column, float noise in the TPOT
            dsr1("mtp-again", 8.6068 + 1e-12, pp_size=""),
            dsr1("alone", 17.1, tp_size="4", moe_tp_size="4"),  # no twin at tp 4: not determined
            dsr1("near-1", 10.0, concurrency=32), dsr1("near-2", 11.5, concurrency=32),  # 1.15x: within noise
            dsr1("three-1", 5.0, concurrency=4), dsr1("three-2", 7.0, concurrency=4), dsr1("three-3", 9.0, concurrency=4)]
    sources = fidelity.agg_mtp_sources(rows)
    assert sources == {"plain": "no MTP", "mtp": "MTP", "mtp-again": "MTP", "alone": "MTP unknown",
                       "near-1": "MTP unknown", "near-2": "MTP unknown",
                       "three-1": "MTP unknown", "three-2": "MTP unknown", "three-3": "MTP unknown"}


def test_only_the_inferencemax_deepseek_b200_agg_rows_are_classified():
    others = [dsr1("gpt", 5.0, model_path="openai/gpt-oss-120b"), dsr1("gpt2", 9.0, model_path="openai/gpt-oss-120b"),
              dsr1("h100", 5.0, system="h100_sxm"), dsr1("h100b", 9.0, system="h100_sxm"),
              dsr1("dis", 5.0, mode="disagg"), dsr1("dis2", 9.0, mode="disagg"),
              dsr1("aic", 5.0, silicon_data_source="source_file=/x/aic-auto-gap-analysis/m.csv; silicon_concurrency=16"),
              dsr1("aic2", 9.0, silicon_data_source="source_file=/x/aic-auto-gap-analysis/m.csv; silicon_concurrency=16")]
    assert fidelity.agg_mtp_sources(others) == {}


@pytest.mark.parametrize(("backend", "dp", "draft"), [
    ("trtllm", 1, 3),  # dsr1_fp{4,8}_b200_trt_mtp.sh: num_nextn_predict_layers 3 without attention DP
    ("trtllm", 8, 1),  # ... and 1 with it
    ("sglang", 1, 2),  # dsr1_fp{4,8}_b200_mtp.sh: EAGLE --speculative-num-steps 2
])
def test_an_mtp_row_runs_its_scripts_draft_count(backend, dp, draft):
    row = dsr1("r", 8.6, backend=backend)
    assert fidelity.agg_mtp(row, {"dp": dp}, "MTP") == draft
    for other in ("no MTP", "MTP unknown", None):
        assert fidelity.agg_mtp(row, {"dp": dp}, other) == 0


def test_an_mtp_twin_without_a_script_is_listed_not_guessed():
    with pytest.raises(fidelity.Unsupported, match="no InferenceMAX MTP script"):
        fidelity.agg_mtp(dsr1("r", 8.6, backend="sglang"), {"dp": 8}, "MTP")  # SGLang's MTP script is TP8 only


def test_undetermined_rows_are_reported_apart():
    base = {"mode": "agg", "split": "held-out", "workers": "given"}
    assert fidelity.group_label({**base, "mtp_source": "MTP unknown"}) == "agg, held-out, MTP unknown"
    assert fidelity.group_label({**base, "mtp_source": "MTP"}) == "agg, held-out"


def test_the_nvfp4_deepseek_checkpoint_keeps_its_bf16_modules():
    """InferenceMAX's FP4 DeepSeek runs serve nvidia/DeepSeek-R1-0528-FP4-V2: MLA q_a / q_b / kv_a / kv_b and the MTP
    layer stay BF16 (fidelity_mapping docstring); an AIConfigurator NVFP4 row keeps only the MTP layer (exclude_modules
    "model.layers.61*"); FP8 rows and other models keep nothing."""
    row = dsr1("r", 8.6, precision="fp4")
    attention = ("*.self_attn.q_a_proj", "*.self_attn.q_b_proj", "*.self_attn.kv_a_proj_with_mqa", "*.self_attn.kv_b_proj")
    assert fidelity.nvfp4_deepseek_bf16(row, {"quant": "nvfp4", "mtp": 3}) == {"keep_unquantized": (*attention, "mtp.*")}
    assert fidelity.nvfp4_deepseek_bf16(row, {"quant": "nvfp4"}) == {"keep_unquantized": attention}
    aic = {**row, "silicon_data_source": "aic-auto-gap-analysis/b200"}
    assert fidelity.nvfp4_deepseek_bf16(aic, {"quant": "nvfp4", "mtp": 1}) == {"keep_unquantized": ("mtp.*",)}
    assert fidelity.nvfp4_deepseek_bf16(aic, {"quant": "nvfp4"}) == {}
    assert fidelity.nvfp4_deepseek_bf16(dsr1("r", 8.6), {"quant": "fp8", "mtp": 3}) == {}
    kimi = dsr1("k", 8.6, model_path="moonshotai/Kimi-K2.5")
    assert fidelity.nvfp4_deepseek_bf16(kimi, {"quant": "nvfp4", "mtp": 3}) == {}


@pytest.mark.slow
def test_the_bf16_layout_reproduces_the_checkpoints_published_size():
    """nvidia/DeepSeek-R1-0528-FP4-V2 is 413,340,567,567 bytes in 350 safetensors files (published). tensor_cast's weight
    bytes for DeepSeek-R1 with NVFP4 linears and experts, the mapping's bf16 MLA projections and bf16 MTP layer, plus
    the copy of the embedding and head the checkpoint stores in its MTP layer (engines share one: 2 x 129,280 x 7,168
    bf16), land within 0.05 % of it; with NVFP4 attention they fall 1.5 % short."""
    published, mtp_copies = 413_340_567_567, 2 * 129_280 * 7_168 * 2
    kw = dict(device="b200", quant="nvfp4", batch_size=1, query_len=1, context_len=16, mtp=1)
    served = fidelity.nvfp4_deepseek_bf16(dsr1("r", 8.6, precision="fp4"), {"quant": "nvfp4", "mtp": 1})
    layout = tensor_cast.analyze("deepseek-ai/DeepSeek-R1", **served, **kw).memory.weights_bytes + mtp_copies
    assert layout == pytest.approx(published, rel=5e-4)
    mtp_only = tensor_cast.analyze("deepseek-ai/DeepSeek-R1", keep_unquantized=("mtp.*",), **kw).memory.weights_bytes
    assert (mtp_only + mtp_copies) / published == pytest.approx(0.985, abs=0.002)
