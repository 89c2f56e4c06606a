"""benchmarks/aic_kernel_twin_rows.py: the base engine's tables plus the twin engine's rows of one MoE
dtype at given hidden sizes, relabelled as the base engine's kernel; bad input exits 2."""

from __future__ import annotations

import csv
import gzip

from benchmark_modules import benchmarks

FIELDS = ["framework", "version", "kernel_source", "moe_dtype", "num_tokens", "hidden_size", "latency"]


def write(path, rows):
    path.mkdir(parents=True, exist_ok=True)
    with gzip.open(path / "moe_perf.csv.gz", "wt", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(dict(zip(FIELDS, r, strict=True)) for r in rows)


def test_twin_rows_are_added_under_the_base_kernel_and_other_tables_linked(tmp_path):
    (twin,) = benchmarks("aic_kernel_twin_rows")
    base = tmp_path / "base"
    write(base, [("VLLM", "0.24.0", "vllm_trtllm_mxfp8", "w4a8_mxfp4_mxfp8", "1", "4096", "0.02"),
                 ("VLLM", "0.24.0", "vllm_marlin", "w4a16_mxfp4", "1", "2880", "0.03")])
    with gzip.open(base / "gemm_perf.csv.gz", "wt") as fh:
        fh.write("x\n1\n")
    write(tmp_path / "twin", [("TRTLLM", "1.3.0rc20", "moe_torch_flow", "w4a8_mxfp4_mxfp8", "1", "2880", "0.015"),
                              ("TRTLLM", "1.3.0rc20", "moe_torch_flow", "w4a8_mxfp4_mxfp8", "1", "4096", "0.021"),
                              ("TRTLLM", "1.3.0rc20", "moe_torch_flow", "w4a16_mxfp4", "1", "2880", "0.04")])
    out = tmp_path / "out"
    assert twin.main(["--base", str(base), "--twin", str(tmp_path / "twin"), "--dtype", "w4a8_mxfp4_mxfp8",
                      "--hidden", "2880", "--out", str(out)]) == 0
    with gzip.open(out / "moe_perf.csv.gz", "rt") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3  # the base's two rows and the one twin row of that dtype at H 2880
    added = rows[-1]
    assert (added["framework"], added["version"], added["kernel_source"]) == ("VLLM", "0.24.0", "vllm_trtllm_mxfp8")
    assert (added["hidden_size"], added["latency"]) == ("2880", "0.015")
    assert (out / "gemm_perf.csv.gz").is_symlink()


def test_bad_input_exits_2_or_names_the_dtypes(tmp_path, capsys):
    (twin,) = benchmarks("aic_kernel_twin_rows")
    write(tmp_path / "base", [("VLLM", "0.24.0", "k", "fp8_block", "1", "7168", "0.02")])
    write(tmp_path / "twin", [("TRTLLM", "1", "k", "w4a8_mxfp4_mxfp8", "1", "2880", "0.01")])
    args = ["--base", str(tmp_path / "base"), "--twin", str(tmp_path / "twin"), "--out", str(tmp_path / "o")]
    assert twin.main([*args[:2], "--twin", str(tmp_path / "none"), *args[4:], "--dtype", "x", "--hidden", "1"]) == 2
    assert twin.main([*args, "--dtype", "w4a8_mxfp4_mxfp8", "--hidden", "a,b"]) == 2
    assert "comma-separated integers" in capsys.readouterr().err
    assert twin.main([*args, "--dtype", "w4a8_mxfp4_mxfp8", "--hidden", "2880"]) == 2
    assert "no w4a8_mxfp4_mxfp8 rows to take a kernel name from; its dtypes: fp8_block" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing half-written
