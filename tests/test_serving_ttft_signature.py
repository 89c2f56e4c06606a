"""The TTFT-vs-output-length signature (benchmarks/serving_ttft_signature.py `completion_slopes`):
the slope k of TTFT against osl x TPOT / clients, on hand-made rows whose k is known."""

from __future__ import annotations

import pytest
from benchmark_modules import benchmarks


def row(osl: int, ttft_ms: float, tpot_ms: float, *, clients: int = 8, backend: str = "trtllm",
        source: str = "aic-auto-gap-analysis", system: str = "h100_sxm", isl: int = 4096) -> dict[str, str]:
    return {"system": system, "mode": "agg", "backend": backend, "model_path": "meta-llama/Llama-3.1-8B-Instruct",
            "tp_size": "1", "gemm_quant_mode": "", "isl": str(isl), "osl": str(osl),
            "silicon_data_source": f"{source}; silicon_concurrency={clients}", "batch_size": str(clients),
            "attention_dp_size": "", "silicon_ttft_ms": str(ttft_ms), "silicon_tpot_ms": str(tpot_ms)}


def test_waiting_for_the_next_completion_has_slope_one_and_a_fixed_ttft_slope_zero():
    (sig,) = benchmarks("serving_ttft_signature")
    c, tpot = 8, 10.0
    # TTFT = 300 ms + osl x TPOT / c: a request that waits for the next of c completions
    waiting = [row(osl, 300 + osl * tpot / c, tpot) for osl in (128, 256, 512)]
    # TTFT independent of the output length (another engine, same lengths)
    fixed = [row(osl, 250.0, tpot, backend="vllm") for osl in (128, 256, 512)]
    # ignored: another device, a sa-bench row, and a group with two output lengths only
    ignored = [row(128, 1e4, tpot, system="b200_sxm"), row(512, 9.0, tpot, source="source_file=2026-04-06.csv"),
               row(128, 100.0, tpot, isl=1024), row(256, 900.0, tpot, isl=1024)]
    slopes = sig.completion_slopes(waiting + fixed + ignored)
    assert set(slopes) == {("trtllm", "Llama-3.1-8B-Instruct"), ("vllm", "Llama-3.1-8B-Instruct")}
    assert slopes[("trtllm", "Llama-3.1-8B-Instruct")] == [pytest.approx(1.0)]
    assert slopes[("vllm", "Llama-3.1-8B-Instruct")] == [pytest.approx(0.0)]


def test_gap_table_takes_each_measurement_once_and_only_the_few_client_rows(tmp_path, capsys):
    (sig,) = benchmarks("serving_ttft_signature")
    fields = ["id", "mode", "engine", "system", "family", "concurrency", "deployment", "meas_ttft_s", "pred_ttft_s"]
    runs = [  # id, clients, measured s, simulated s
        ("a", 4, 0.100, 0.050), ("a-twin", 4, 0.100, 0.050),  # the same run under two ids: counted once
        ("b", 8, 0.200, 0.160), ("c", 8, 0.300, 0.100),
        ("queued", 64, 9.0, 1.0),  # above --max-clients: left out
    ]
    with open(tmp_path / "rows.csv", "w") as fh:
        fh.write(",".join(fields) + "\n")
        for rid, c, meas, pred in runs:
            fh.write(f"{rid},agg,vllm,b200_sxm,Llama,{c},8 GPUs,{meas},{pred}\n")
    data = {rid: {"isl": "1024", "tp_size": "8", "precision": "fp8", "osl": "1024"} for rid, *_ in runs}
    sig.gap_by_prompt(str(tmp_path / "rows.csv"), data, max_clients=8)
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| vllm")]
    # three distinct runs: ratios 2.0, 1.25, 3.0 (median 2.0), gaps +50, +40, +200 ms (median +50)
    assert line == ["| vllm | b200_sxm | Llama | 1024 | 3 | 2.00 | +50 |"]


def test_prefill_slope_split_separates_a_per_token_gap_from_a_constant_one(tmp_path):
    (sig,) = benchmarks("serving_ttft_signature")
    fields = ["id", "mode", "engine", "system", "family", "concurrency", "deployment", "mtp", "meas_ttft_s",
              "pred_ttft_s"]
    # (id, engine, deployment, clients, isl, measured s, simulated s)
    runs = [
        # a constant 80 ms per request: measured = simulated + 0.08 at both prompt lengths
        ("c1", "trtllm", "8 GPUs", 4, 1024, 0.180, 0.100), ("c8", "trtllm", "8 GPUs", 4, 8192, 0.380, 0.300),
        ("c8-twin", "trtllm", "8 GPUs", 4, 8192, 0.999, 0.300),  # the same deployment and length again: first kept
        # prefill costed at half its per-token price: simulated 10 us / token, measured 20 us / token, same intercept
        ("p1", "sglang", "4 GPUs", 8, 1024, 0.05 + 1024 * 20e-6, 0.05 + 1024 * 10e-6),
        ("p8", "sglang", "4 GPUs", 8, 8192, 0.05 + 8192 * 20e-6, 0.05 + 8192 * 10e-6),
        ("lone", "sglang", "2 GPUs", 8, 1024, 0.3, 0.1),  # one prompt length only: no slope
        ("busy1", "sglang", "4 GPUs", 64, 1024, 1.0, 0.5), ("busy8", "sglang", "4 GPUs", 64, 8192, 9.0, 1.0),
    ]
    with open(tmp_path / "rows.csv", "w") as fh:
        fh.write(",".join(fields) + "\n")
        for rid, engine, dep, c, _, meas, pred in runs:
            fh.write(f"{rid},agg,{engine},b200_sxm,DeepSeek,{c},{dep},0,{meas},{pred}\n")
    data = {rid: {"isl": str(isl), "precision": "fp8", "osl": "1024"} for rid, _, _, _, isl, _, _ in runs}
    slopes = sig.prefill_slopes(str(tmp_path / "rows.csv"), data, max_clients=8)
    assert set(slopes) == {("trtllm", "b200_sxm", "DeepSeek", "fp8"), ("sglang", "b200_sxm", "DeepSeek", "fp8")}
    ((k_meas, k_pred, gap),) = slopes[("trtllm", "b200_sxm", "DeepSeek", "fp8")]
    assert k_meas == pytest.approx(0.2 / 7168) and k_pred == pytest.approx(0.2 / 7168)
    assert gap == pytest.approx(0.080)
    ((k_meas, k_pred, gap),) = slopes[("sglang", "b200_sxm", "DeepSeek", "fp8")]
    assert (k_meas, k_pred) == (pytest.approx(20e-6), pytest.approx(10e-6))
    assert gap == pytest.approx(0.0, abs=1e-12)


def test_step_split_pairs_each_8k_deployment_once_with_its_simulated_step(tmp_path):
    (sig,) = benchmarks("serving_ttft_signature")
    fields = ["id", "mode", "engine", "system", "family", "concurrency", "deployment", "meas_ttft_s", "pred_ttft_s"]
    runs = [  # id, clients, isl, measured s, simulated s
        ("tp1", 4, 8192, 0.745, 0.580), ("tp1-twin", 4, 8192, 0.9, 0.5),  # same deployment and clients: first kept
        ("short", 4, 1024, 0.1, 0.1),  # not the 8k prompt
        ("busy", 64, 8192, 5.0, 1.0),  # above --max-clients
    ]
    with open(tmp_path / "rows.csv", "w") as fh:
        fh.write(",".join(fields) + "\n")
        for rid, c, _, meas, pred in runs:
            fh.write(f"{rid},agg,vllm,b200_sxm,Llama,{c},1 GPU,{meas},{pred}\n")
    data = {rid: {"isl": str(isl), "precision": "fp8"} for rid, _, isl, _, _ in runs}
    asked = []

    def step_kinds(row, isl):
        asked.append(isl)
        return 0.464, {"gemm": 0.294, "attention": 0.066}

    (split,) = sig.step_split(str(tmp_path / "rows.csv"), data, max_clients=8, step_kinds=step_kinds)
    assert split[:5] == ("vllm", "b200_sxm", "Llama", "fp8", "1 GPU")
    assert split[5] == pytest.approx(0.165) and split[6] == 0.464 and split[7]["gemm"] == 0.294
    assert asked == [7373]  # the simulated centre of sa-bench's [0.8 L, L] prompts
