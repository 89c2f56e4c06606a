"""The data's own floor (benchmarks/serving_repeatability.py): repeated runs of one recorded
configuration, on hand-made rows whose spread is known."""

from __future__ import annotations

import pytest
from benchmark_modules import benchmarks

FIELDS = {"system": "b200_sxm", "backend": "vllm", "mode": "agg", "model_path": "m", "isl": "1024", "osl": "1024",
          "tp_size": "4", "pp_size": "1", "attention_dp_size": "", "moe_tp_size": "", "moe_ep_size": "",
          "gemm_quant_mode": "fp8", "moe_quant_mode": "", "batch_size": "8"}


def row(rid: str, ttft_ms: float, tpot_ms: float, clients: int = 8, **changes: str) -> dict[str, str]:
    return {**FIELDS, **changes, "id": rid, "silicon_data_source": f"src; silicon_concurrency={clients}",
            "silicon_ttft_ms": str(ttft_ms), "silicon_tpot_ms": str(tpot_ms)}


def test_twin_error_and_the_floor_of_two_runs_of_one_configuration():
    (rep,) = benchmarks("serving_repeatability")
    rows = [row("a1", 100.0, 10.0), row("a2", 150.0, 10.0),
            row("a1-rounded", 100.004, 10.003),  # the same run, rounded by another source: counted once
            row("other-clients", 300.0, 20.0, clients=16),  # another configuration, measured once
            row("other-tp", 90.0, 9.0, tp_size="8")]  # likewise
    groups = rep.repeated(rows)
    assert len(groups) == 1
    (runs,) = groups.values()
    assert [r["id"] for r in runs] == ["a1", "a2"]
    # predicting 150 by 100 misses by 1/3, 100 by 150 by 1/2: 41.7 %; the mean 125 misses each by 25 / x
    assert rep.twin_error([100.0, 150.0]) == pytest.approx([50 / 150, 50 / 100])
    assert rep.to_the_mean([100.0, 150.0]) == pytest.approx([0.25, 25 / 150])
    table = rep.spread_table(groups)
    assert table[2] == "| b200_sxm | vllm | agg | 1 | 2 | 41.7% | 20.8% | 1.50, 1.50 | 0.0% | 0.0% | 1.00, 1.00 |"
    # tensor_cast's rows of the repeated configuration beside the floor of the same rows (every id, the
    # rounded duplicate too: its floor is that of the run it repeats)
    predicted = {rid: {"id": rid, "ttft_err": str(e), "tpot_err": "0.1"}
                 for rid, e in (("a1", 0.3), ("a1-rounded", 0.3), ("a2", 0.6), ("other-tp", 0.9))}
    lines = rep.model_table(groups, {r["id"]: r for r in rows}, predicted)
    floor_ttft = (0.25 + 0.25 + 25 / 150) / 3
    assert lines[2] == (f"| simulated rows of repeated configurations | 3 | 40.0% | {100 * floor_ttft:.1f}% | "
                        "10.0% | 0.0% |")


def test_an_mtp_run_and_its_plain_twin_are_two_configurations():
    (rep,) = benchmarks("serving_repeatability")
    rows = [row("plain", 200.0, 10.0), row("mtp", 180.0, 6.0)]
    assert len(rep.repeated(rows)) == 1
    assert rep.repeated(rows, {"plain": "no MTP", "mtp": "MTP"}) == {}
