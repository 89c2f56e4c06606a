"""The device transfer check's twins (benchmarks/serving_device_transfer.py): a held-out row pairs with the
b200_sxm row measured at the same point with the same engine image, nothing looser. Rows are made up here;
the measured CSV is never read."""

from __future__ import annotations

from benchmark_modules import benchmarks

(transfer,) = benchmarks("serving_device_transfer")

SOURCE = "db-dump/2026-04-27; config_id={cfg}; silicon_concurrency={c}; measured=2026-04-17; {image}"
COLUMNS = transfer.KEY


def row(run: str, system: str, concurrency: int = 64, image: str = "vllm/vllm-openai:v0.19.0-cu130",
        **columns: str) -> dict[str, str]:
    base = dict.fromkeys(COLUMNS, "")
    base.update({"backend": "vllm", "model_path": "MiniMaxAI/MiniMax-M2.5", "precision": "fp8", "mode": "agg",
                 "isl": "1024", "osl": "1024", "tp_size": "4", "pp_size": "1", "attention_dp_size": "1",
                 "moe_tp_size": "4", "moe_ep_size": "1"})
    base.update({"id": run, "system": system, "silicon_tpot_ms": "10", "silicon_ttft_ms": "100",
                 "silicon_data_source": SOURCE.format(cfg=run, c=concurrency, image=image)})
    return {**base, **columns}


def test_twins_share_the_point_and_the_engine_image():
    rows = [row("b200-64", "b200_sxm"), row("b300-64", "b300_sxm"),
            row("b200-128", "b200_sxm", concurrency=128), row("b300-128-nightly", "b300_sxm", concurrency=128,
                                                                 image="vllm/vllm-openai:nightly-5b8c30d6"),
            row("b300-tp8", "b300_sxm", tp_size="8"),  # another parallelism: no twin
            row("b300-fp4", "b300_sxm", precision="fp4"),  # another precision: no twin
            row("h100-64", "h100_sxm")]  # not a held-out device
    same = transfer.pairs(rows, ["b300_sxm", "gb200", "gb300"], any_image=False, per_group=0)
    assert [(a["id"], b["id"]) for a, b in same] == [("b300-64", "b200-64")]
    loose = transfer.pairs(rows, ["b300_sxm"], any_image=True, per_group=0)
    assert sorted((a["id"], b["id"]) for a, b in loose) == [("b300-128-nightly", "b200-128"), ("b300-64", "b200-64")]


def test_per_group_spreads_over_a_groups_pairs():
    rows = [r for c in range(1, 11) for r in (row(f"b200-{c}", "b200_sxm", concurrency=c),
                                              row(f"b300-{c}", "b300_sxm", concurrency=c))]
    picked = transfer.pairs(rows, ["b300_sxm"], any_image=False, per_group=3)
    assert [a["id"] for a, _ in picked] == ["b300-1", "b300-4", "b300-7"]  # every 10 // 3 = 3rd pair, first 3
    assert all(a["id"].split("-")[1] == b["id"].split("-")[1] for a, b in picked)
