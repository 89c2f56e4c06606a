"""The fidelity summary (benchmarks/serving_fidelity_summary.py) reads `serving_fidelity.py --out` rows back:
populations, per-group errors with their median ratios, brackets from an earlier run matched by row id,
and one line plus exit 2 for a file that is not such a CSV. Rows are made up here with round numbers."""

from __future__ import annotations

import csv

from benchmark_modules import benchmarks

(summary,) = benchmarks("serving_fidelity_summary")

FIELDS = ["id", "system", "engine", "mode", "family", "split", "pred_ttft_s", "meas_ttft_s", "pred_tpot_s",
          "meas_tpot_s", "ttft_err", "tpot_err"]


def write(path, rows, extra=()):
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*FIELDS, *extra])
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "ttft_err": abs(r["pred_ttft_s"] - r["meas_ttft_s"]) / r["meas_ttft_s"],
                             "tpot_err": abs(r["pred_tpot_s"] - r["meas_tpot_s"]) / r["meas_tpot_s"]})
    return str(path)


def row(rid, pred_ttft, pred_tpot, split="held-out", mode="agg", system="b200_sxm"):
    return {"id": rid, "system": system, "engine": "vllm", "mode": mode, "family": "Llama", "split": split,
            "pred_ttft_s": pred_ttft, "meas_ttft_s": 0.1, "pred_tpot_s": pred_tpot, "meas_tpot_s": 0.01}


def test_tables_give_each_populations_mean_error_and_the_earlier_runs_in_brackets(tmp_path, capsys):
    # TTFT 0.05 / 0.15 against 0.1 measured: 50 % each; TPOT 0.011 / 0.008 against 0.01: 10 % and 20 %
    now = write(tmp_path / "now.csv", [row("a", 0.05, 0.011), row("b", 0.15, 0.008), row("c", 0.1, 0.01, "fit")])
    before = write(tmp_path / "before.csv", [row("a", 0.08, 0.01)])  # only row a was run before: 20 % TTFT
    assert summary.main([now, "--before", before]) == 0
    out = capsys.readouterr().out
    assert "| agg, held out | 2 | 15.0% (0.0%) | 50.0% (20.0%) |" in out
    assert "| agg, fit population (H100 dense) | 1 | 0.0% (-) | 0.0% (-) |" in out
    assert "| all | 3 | 10.0% (0.0%) | 33.3% (20.0%) |" in out
    # median pred/meas of 0.5, 1.5, 1.0 = 1.00 (TTFT); 1.1, 0.8, 1.0 = 1.00 (TPOT)
    assert "| b200_sxm | vllm | Llama | agg | 3 | fit/held-out | 10.0% (1.00) | 33.3% (1.00) |" in out
    assert "predicted below measured: TPOT in 1, TTFT in 1 of 3 rows" in out


def test_a_file_that_is_not_a_fidelity_csv_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,value\nx,1\n")
    assert summary.main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "serving_fidelity.py --out" in err


def test_skipped_rows_give_each_groups_coverage_and_the_reasons(tmp_path, capsys):
    now = write(tmp_path / "now.csv", [row("a", 0.05, 0.011), row("b", 0.15, 0.008)])
    skipped = tmp_path / "skipped.csv"
    skipped.write_text("id,system,engine,mode,family,reason\n"
                       "c,b200_sxm,vllm,agg,Llama,quant mode int8\n"
                       "d,b200_sxm,vllm,disagg,Llama,quant mode int8\n"
                       "e,h100_sxm,sglang,agg,GLM,model zai-org/GLM-6 not in the registry\n")
    assert summary.main([now, "--skipped", str(skipped)]) == 0
    out = capsys.readouterr().out
    assert "| b200_sxm | vllm | Llama | agg | 2 / 3 | held-out | 15.0% (0.95) | 50.0% (1.00) |" in out
    assert "| h100_sxm | sglang | GLM | agg | 0 / 1 | - | - (-) | - (-) |" in out  # a group with none simulated
    assert "3 rows not simulated:" in out
    assert "| 2 | quant mode int8 | b200_sxm vllm Llama agg, b200_sxm vllm Llama disagg | `c` |" in out


def test_the_error_is_split_by_engine_mode_and_client_count_with_each_buckets_share(tmp_path, capsys):
    # TTFT errors 50 % (4 clients), 50 % (16), 0 % (16), 100 % (600 clients): 200 % in all
    rows = [row("a", 0.05, 0.011), row("b", 0.15, 0.008), row("c", 0.1, 0.01), row("d", 0.2, 0.01)]
    for r, clients in zip(rows, (4, 16, 16, 600), strict=True):
        r["concurrency"] = clients
    assert summary.main([write(tmp_path / "now.csv", rows, extra=("concurrency",))]) == 0
    out = capsys.readouterr().out
    # TPOT errors 10 % (4 clients), 20 % and 0 % (16), 0 % (600): 30 % in all
    assert "| vllm | agg | 1-8 | 1 | 10.0% (1.10) | 33.3% | 50.0% (0.50) | 25.0% |" in out
    assert "| vllm | agg | 9-32 | 2 | 10.0% (0.90) | 66.7% | 25.0% (1.25) | 25.0% |" in out
    assert "| vllm | agg | 513+ | 1 | 0.0% (1.00) | 0.0% | 100.0% (2.00) | 50.0% |" in out
    assert "33-128" not in out  # no row there: no line


def test_a_client_count_falls_in_the_bucket_whose_bounds_hold_it():
    assert [summary.client_bucket(c) for c in ("1", "8", "9", "32.0", "128", "129", "512", "513", "20000")] == \
        ["1-8", "1-8", "9-32", "9-32", "33-128", "129-512", "129-512", "513+", "513+"]
