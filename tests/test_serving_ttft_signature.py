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
