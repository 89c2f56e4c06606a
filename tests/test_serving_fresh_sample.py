"""The serving-fidelity benchmark's `--exclude` (benchmarks/serving_fidelity.py): a fresh sample leaves out
the rows a development sample named and their twins — the same system, engine and measured TTFT and
TPOT under another id (InferenceMAX runs the sample writes twice). Rows are made up here; the measured
CSV is never read."""

from __future__ import annotations

from benchmark_modules import benchmarks

(fidelity,) = benchmarks("serving_fidelity")


def row(run: str, ttft: str, tpot: str, system: str = "b200_sxm", backend: str = "sglang") -> dict[str, str]:
    return {"id": run, "system": system, "backend": backend, "silicon_ttft_ms": ttft, "silicon_tpot_ms": tpot}


ROWS = [row("seen", "304.7", "8.3"), row("seen-twin", "304.7", "8.3"),
        row("other-engine", "304.7", "8.3", backend="vllm"), row("other-system", "304.7", "8.3", system="b300_sxm"),
        row("fresh", "297.4", "9.9")]


def test_an_out_csv_names_rows_by_its_id_column_and_their_twins_go_with_them(tmp_path):
    out = tmp_path / "dev.csv"
    out.write_text("id,system,engine,pred_ttft_s\nseen,b200_sxm,sglang,0.1\n")
    assert fidelity.excluded(ROWS, [str(out)]) == {"seen", "seen-twin"}


def test_a_list_of_ids_one_per_line_and_several_files(tmp_path):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("other-engine\n\n")
    second.write_text("fresh\n")
    assert fidelity.excluded(ROWS, [str(first), str(second)]) == {"other-engine", "fresh"}
    assert fidelity.excluded(ROWS, []) == set()


def test_distinct_keeps_the_first_row_of_each_measured_run():
    # "seen-twin" repeats "seen" (same system, engine, TTFT, TPOT); the other three are measurements of their own
    kept = [r["id"] for r in fidelity.distinct(ROWS)]
    assert kept == ["seen", "other-engine", "other-system", "fresh"]
    # the sample writes some runs to 5 decimals and their twins to 14: still one measured run
    rounded = [row("short", "511.88771", "16.746681"), row("long", "511.88770990941356", "16.746680604516214")]
    assert [r["id"] for r in fidelity.distinct(rounded)] == ["short"]


def test_a_skipped_row_names_its_group_and_reason():
    r = {**row("x", "1", "1"), "mode": "disagg", "model_path": "deepseek-ai/DeepSeek-R1"}
    assert fidelity.skipped_row(r, "no device profile for b200_sxm") == {
        "id": "x", "system": "b200_sxm", "engine": "sglang", "mode": "disagg", "family": "DeepSeek",
        "reason": "no device profile for b200_sxm"}
