"""The serving-fidelity benchmark's disagg mapping (benchmarks/fidelity_disagg.py): a disagg row
without worker counts takes the InferenceMAX recipe it matches exactly (workers, parallelism,
MTP, decode batch cap), or is listed as undetermined. The recipe table and the rows are made up
here (a table of our own in tmp_path); neither the measured CSV nor the shipped table is read."""

from __future__ import annotations

import pytest
from benchmark_modules import benchmarks

fidelity, disagg, sglang_recipes = benchmarks("serving_fidelity", "fidelity_disagg", "sglang_recipe_tables")

HEADER = "model,system,backend,precision,isl,osl,concurrency,p_workers,p_tp,p_ep,p_dp_attn,d_workers,d_tp,d_ep,d_dp_attn,recipe"
TABLE = [
    # the same layout measured with MTP (3 drafts) and without, at the same concurrencies
    "dsr1,b200_sxm,trtllm,fp4,1024,1024,10 15,1,4,4,1,5,8,8,0,ctx1_gen5_tep8_batch32_eplb0_mtp3",
    "dsr1,b200_sxm,trtllm,fp4,1024,1024,10 15,1,4,4,1,5,8,8,0,ctx1_gen5_tep8_batch32_eplb0_mtp0",
    # one recipe only: 2 DEP8 decode workers of 64 requests per rank, MTP 2
    "dsr1,b200_sxm,trtllm,fp4,1024,1024,1214,1,4,4,1,2,8,8,1,ctx1_gen2_dep8_batch64_eplb0_mtp2",
    # two recipes with different decode worker counts at one concurrency: undetermined
    "dsr1,b200_sxm,trtllm,fp8,8192,1024,128,1,8,8,1,1,8,8,1,ctx1_gen1_dep8_batch128_eplb0_mtp0_128",
    "dsr1,b200_sxm,trtllm,fp8,8192,1024,128,1,8,8,1,2,8,8,1,ctx1_gen2_dep8_batch64_eplb0_mtp0_128",
    # attention DP 4 with MoE TP 4 (ep 1) in the prefill pool
    "dsr1,b300_sxm,trtllm,fp8,1024,1024,720,1,4,1,1,5,8,8,1,ctx1_gen5_dep8_batch16_eplb0_mtp2_720",
    # an SGLang recipe: no batch in its name
    "dsr1,b200_sxm,sglang,fp8,1024,1024,4,1,8,8,0,1,8,8,0,b200-fp8/1k1k/stp/low-latency-tep8-1p1d",
    # an SGLang layout run with and without MTP; the flags table (below) has the stp recipe's lines only
    "dsr1,b200_sxm,sglang,fp4,1024,1024,512,1,4,4,1,1,8,8,1,b200-fp4/1k1k/stp/max-tpt-dep4-1p-dep8-1d",
    "dsr1,b200_sxm,sglang,fp4,1024,1024,512,1,4,4,1,1,8,8,1,b200-fp4/1k1k/mtp/max-tpt-dep4-1p-dep8-1d",
]
# SGLang recipe flags (sglang_disagg_recipe_flags.csv's columns): chunked-prefill-size, max-running-requests
SGLANG_FLAGS = {("b200-fp4/1k1k/stp/max-tpt-dep4-1p-dep8-1d", role): {"chunked_prefill_size": "32768",
                                                                     "max_running_requests": "1024"}
                for role in ("prefill", "decode")}
# SGLang MTP recipes' decode flags (sglang_disagg_recipe_mtp.csv's columns): a line for another recipe only (an
# empty table would be filled from the shipped file), unless a test adds them
EAGLE_TWO_STEPS = {"speculative_algorithm": "EAGLE", "speculative_num_steps": "2", "speculative_eagle_topk": "1",
                   "speculative_num_draft_tokens": "3"}
SGLANG_MTP = {("b200-fp8/1k1k/mtp/a-recipe-no-row-matches", "decode"): EAGLE_TWO_STEPS}


@pytest.fixture
def table(tmp_path, monkeypatch):
    path = tmp_path / "recipes.csv"
    path.write_text("\n".join([HEADER, *TABLE]) + "\n")
    monkeypatch.setattr(sglang_recipes, "_SGLANG_FLAGS", SGLANG_FLAGS)
    monkeypatch.setattr(sglang_recipes, "_SGLANG_MTP", dict(SGLANG_MTP))
    monkeypatch.setattr(disagg, "_RECIPES", disagg.load_recipes(str(path)))  # (after the MTP table: it reads it)


def disagg_row(system: str, backend: str, precision: str, isl: int, osl: int, clients: int, p_tp: int, p_ep: int,
               d_tp: int, **given: str) -> dict[str, str]:
    """A row as the CSV writes an InferenceMAX multinode run: one EP (the prefill pool's) in both
    pools, moe_tp = tp / that EP, no worker counts (unless `given`)."""
    pools = {}
    for role, tp in (("prefill", p_tp), ("decode", d_tp)):
        pools.update({f"{role}_tp_size": str(tp), f"{role}_pp_size": "1", f"{role}_attention_dp_size": "1",
                      f"{role}_moe_tp_size": str(tp // p_ep), f"{role}_moe_ep_size": str(p_ep),
                      f"{role}_num_workers": ""})
    return {**pools, **given, "model_path": "deepseek-ai/DeepSeek-R1", "system": system, "backend": backend, "precision": precision, "mode": "disagg",
            "isl": str(isl), "osl": str(osl), "batch_size": "",
            "silicon_data_source": f"source_file=2026-03-25.csv; model=DeepSeek-R1; silicon_concurrency={clients}"}


def test_unique_recipe_gives_workers_attention_dp_mtp_and_decode_cap(table):
    r = disagg_row("b200_sxm", "trtllm", "fp4", 1024, 1024, 1214, 4, 4, 8)
    assert disagg.disagg_source(r) == "recipe"
    spec, mtp = disagg.disagg_deployment(r)
    # prefill 1 x (tp4, ep4, dp-attn) = attention DP 4 + EP 4; decode 2 x DEP8 capped at 64 per rank
    assert spec == "prefill: 1x tp1 dp4 ep4; decode: 2x tp1 dp8 ep8 bs64"
    assert mtp == 2


def test_same_layout_with_and_without_mtp_is_simulated_without_and_labelled(table):
    r = disagg_row("b200_sxm", "trtllm", "fp4", 1024, 1024, 15, 4, 4, 8)
    assert disagg.disagg_source(r) == "recipe, MTP unknown"
    spec, mtp = disagg.disagg_deployment(r)
    assert spec == "prefill: 1x tp1 dp4 ep4; decode: 5x tp8 ep8 bs32"  # TEP8: attention TP 8, EP 8
    assert mtp == 0


@pytest.mark.parametrize(("args", "reason"), [
    # two recipes, 1 or 2 decode workers
    (("b200_sxm", "trtllm", "fp8", 8192, 1024, 128, 8, 8, 8), "recipes with different worker counts"),
    # no recipe at this concurrency
    (("b200_sxm", "trtllm", "fp4", 1024, 1024, 16, 4, 4, 8), "no InferenceMAX recipe matches"),
    # the row's prefill EP (1) is not the recipe's (4): another recipe version, not this one
    (("b200_sxm", "trtllm", "fp4", 1024, 1024, 1214, 4, 1, 8), "no InferenceMAX recipe matches"),
])
def test_undetermined_counts_are_listed_not_guessed(table, args, reason):
    with pytest.raises(fidelity.Unsupported, match=reason):
        disagg.disagg_deployment(disagg_row(*args))


def test_attention_dp_with_moe_tp_maps_to_moe_tp(table):
    spec, mtp = disagg.disagg_deployment(disagg_row("b300_sxm", "trtllm", "fp8", 1024, 1024, 720, 4, 1, 8))
    assert spec == "prefill: 1x tp1 dp4 moetp4; decode: 5x tp1 dp8 ep8 bs16" and mtp == 2


def test_given_pool_written_as_moe_tp_over_attention_dp_takes_the_entries_ep(table):
    """A row with counts whose prefill pool is written attention DP 8 with moe_tp 8 x moe_ep 1 while
    the InferenceMAX entries it matches run that pool as DEP8: the entries' layout, when they agree."""
    pools = {"prefill_tp_size": "1", "prefill_attention_dp_size": "8", "prefill_moe_tp_size": "8",
             "prefill_moe_ep_size": "1", "prefill_num_workers": "1", "decode_num_workers": "1",
             "decode_tp_size": "1", "decode_attention_dp_size": "8", "decode_moe_tp_size": "1",
             "decode_moe_ep_size": "8"}
    r = disagg_row("b200_sxm", "trtllm", "fp8", 8192, 1024, 128, 8, 8, 8, **pools)
    found = disagg._matching_recipes(r, given=True)
    assert [rec["d_workers"] for rec in found] == [1]
    assert disagg.given_pool(r, "prefill", found) == {"tp": 1, "dp": 8, "ep": 8}
    assert disagg.given_pool(r, "decode", found) == {"tp": 1, "dp": 8, "ep": 8}  # its own columns
    with pytest.raises(fidelity.Unsupported, match="no single InferenceMAX entry gives its EP"):
        disagg.given_pool(r, "prefill", [])


def test_sglang_recipe_has_no_decode_cap(table):
    spec, mtp = disagg.disagg_deployment(disagg_row("b200_sxm", "sglang", "fp8", 1024, 1024, 4, 8, 8, 8))
    assert spec == "prefill: 1x tp8 ep8; decode: 1x tp8 ep8" and mtp == 0


def test_sglang_pools_take_their_recipes_budget_and_per_rank_running_cap(table):
    # --chunked-prefill-size 32768 is each pool's worker budget (SGLang divides it among the DP ranks
    # itself: `tok`); --max-running-requests 1024 // dp per rank (`bs`): 256 on DEP4, 128 on DEP8. The
    # stp and mtp twins match; only the stp one has flags lines, which both share
    spec, mtp = disagg.disagg_deployment(disagg_row("b200_sxm", "sglang", "fp4", 1024, 1024, 512, 4, 4, 8))
    assert spec == "prefill: 1x tp1 dp4 ep4 bs256 tok32768; decode: 1x tp1 dp8 ep8 bs128 tok32768" and mtp == 0


def test_rows_with_counts_keep_them_and_take_mtp_from_a_unique_recipe(table):
    given = {"prefill_num_workers": "1", "decode_num_workers": "2", "decode_tp_size": "1",
             "decode_attention_dp_size": "8", "decode_moe_tp_size": "1", "decode_moe_ep_size": "8"}
    r = disagg_row("b200_sxm", "trtllm", "fp4", 1024, 1024, 1214, 4, 4, 8, **given)
    assert disagg.disagg_source(r) == "given"
    spec, mtp = disagg.disagg_deployment(r)
    # the row's own parallelism (prefill tp4 with EP 4 = TP attention + EP), the recipe's MTP and cap
    assert spec == "prefill: 1x tp4 ep4; decode: 2x tp1 dp8 ep8 bs64"
    assert mtp == 2


def test_rows_with_counts_take_the_cap_their_mtp_twins_agree_on_but_no_mtp(table):
    # the TEP8 layout at 10 clients matches its mtp3 and mtp0 recipes: both say batch32, MTP unknown
    given = {"prefill_num_workers": "1", "decode_num_workers": "5", "decode_moe_tp_size": "1", "decode_moe_ep_size": "8"}
    r = disagg_row("b200_sxm", "trtllm", "fp4", 1024, 1024, 10, 4, 4, 8, **given)
    spec, mtp = disagg.disagg_deployment(r)
    assert spec == "prefill: 1x tp4 ep4; decode: 5x tp8 ep8 bs32"
    assert mtp == 0


def measured(row: dict[str, str], rid: str, tpot_ms: float) -> dict[str, str]:
    return {**row, "id": rid, "silicon_tpot_ms": str(tpot_ms)}


@pytest.mark.parametrize(("tpots", "boundary"), [
    ([3.456, 3.456, 6.102], (3.456 + 6.102) / 2),  # InferenceMAX's MTP3 and plain TEP8 runs at 10 clients
    ([12.345, 12.469, 19.504, 19.553], (12.469 + 19.504) / 2),  # each level measured twice, within 1 %
    ([5.364, 5.404], None),  # one level: which run it was is not told
    ([6.0, 6.9], None),  # 1.15x apart: run-to-run noise is not ruled out (MTP_TWIN_RATIO 1.2)
    ([4.0, 4.5, 8.0], None),  # the faster "level" spreads 12 %: three runs, not two
    ([4.0, 8.0, 9.0], None),
    ([7.0], None),
])
def test_two_tpot_levels_are_told_apart_only_when_clean(tpots, boundary):
    assert disagg.two_levels(tpots) == boundary


def test_mtp_twin_recipes_are_decided_by_the_rows_tpot_levels(table):
    """The TEP8 layout at 15 clients matches its mtp3 and mtp0 recipes; measured at 3.6 ms (twice, as the
    sample writes some runs) and 6.5 ms: the faster rows are the MTP run (3 drafts), the slower the plain."""
    row = disagg_row("b200_sxm", "trtllm", "fp4", 1024, 1024, 15, 4, 4, 8)
    rows = [measured(row, "fast", 3.62), measured(row, "fast-twin", 3.62), measured(row, "slow", 6.51),
            measured(disagg_row("b200_sxm", "trtllm", "fp4", 1024, 1024, 10, 4, 4, 8), "alone", 3.46)]
    sources = disagg.disagg_mtp_sources(rows)
    assert sources == {"fast": "MTP", "fast-twin": "MTP", "slow": "no MTP"}  # "alone": one level, left open
    assert disagg.disagg_deployment(rows[0], sources["fast"]) == ("prefill: 1x tp1 dp4 ep4; decode: 5x tp8 ep8 bs32", 3)
    assert disagg.disagg_deployment(rows[2], sources["slow"])[1] == 0
    assert disagg.disagg_source(rows[0], "MTP") == "recipe, MTP by TPOT level"
    assert disagg.disagg_source(rows[3], None) == "recipe, MTP unknown"
    assert disagg.disagg_deployment(rows[3])[1] == 0


def test_rows_with_counts_and_mtp_twins_are_labelled_open_and_take_the_level(table):
    given = {"prefill_num_workers": "1", "decode_num_workers": "5", "decode_moe_tp_size": "1", "decode_moe_ep_size": "8"}
    plain = measured(disagg_row("b200_sxm", "trtllm", "fp4", 1024, 1024, 10, 4, 4, 8, **given), "given-slow", 6.10)
    mtp = measured(disagg_row("b200_sxm", "trtllm", "fp4", 1024, 1024, 10, 4, 4, 8), "recipe-fast", 3.46)
    assert disagg.disagg_source(plain) == "given, MTP unknown"  # the mtp3 and mtp0 recipes both match its counts
    sources = disagg.disagg_mtp_sources([plain, mtp])
    assert sources == {"given-slow": "no MTP", "recipe-fast": "MTP"}
    assert disagg.disagg_source(plain, sources["given-slow"]) == "given, MTP by TPOT level"
    assert disagg.disagg_deployment(plain, sources["given-slow"]) == ("prefill: 1x tp4 ep4; decode: 5x tp8 ep8 bs32", 0)
    assert disagg.disagg_deployment(mtp, sources["recipe-fast"])[1] == 3


def test_an_mtp_recipe_without_a_draft_count_leaves_the_levels_unused(table):
    # SGLang's `.../mtp/...` recipe names give no draft count: two levels, but nothing to simulate the MTP run with
    row = disagg_row("b200_sxm", "sglang", "fp4", 1024, 1024, 512, 4, 4, 8)
    rows = [measured(row, "fast", 6.28), measured(row, "slow", 8.81)]
    assert disagg.disagg_mtp_sources(rows) == {}
    assert disagg.disagg_source(rows[0], "MTP") == "recipe, MTP unknown"


def test_an_sglang_mtp_recipe_takes_its_draft_count_from_the_flags_table(table, tmp_path, monkeypatch):
    # the recipe's decode pool runs EAGLE with 2 steps, top-k 1, 3 draft tokens (verified one included): 2 drafts
    monkeypatch.setattr(sglang_recipes, "_SGLANG_MTP",
                        {("b200-fp4/1k1k/mtp/max-tpt-dep4-1p-dep8-1d", "decode"): EAGLE_TWO_STEPS})
    path = tmp_path / "recipes.csv"
    path.write_text("\n".join([HEADER, *TABLE]) + "\n")
    monkeypatch.setattr(disagg, "_RECIPES", disagg.load_recipes(str(path)))
    row = disagg_row("b200_sxm", "sglang", "fp4", 1024, 1024, 512, 4, 4, 8)
    rows = [measured(row, "fast", 6.28), measured(row, "slow", 8.81)]
    assert disagg.disagg_mtp_sources(rows) == {"fast": "MTP", "slow": "no MTP"}
    assert disagg.disagg_deployment(rows[0], "MTP")[1] == 2
    assert disagg.disagg_deployment(rows[1], "no MTP")[1] == 0
    # a tree of drafts (top-k > 1) is not a chain of k tokens: no count
    monkeypatch.setattr(sglang_recipes, "_SGLANG_MTP", {("x", "decode"): {**EAGLE_TWO_STEPS, "speculative_eagle_topk": "4"}})
    assert sglang_recipes.sglang_recipe_drafts("x") is None
    assert sglang_recipes.sglang_recipe_drafts("not in the table") is None


@pytest.mark.parametrize(("tp", "ep", "dp_attn", "expected"), [
    (8, 8, True, {"tp": 1, "dp": 8, "ep": 8}),  # DEP8
    (8, 8, False, {"tp": 8, "ep": 8}),  # TEP8
    (8, 1, False, {"tp": 8}),  # TP8, MoE TP
    (8, 2, False, {"tp": 8, "ep": 2}),  # TP8 attention, MoE TP4 x EP2 (moe_tp = tp / ep, the default)
    (4, 1, True, {"tp": 1, "dp": 4, "moe_tp": 4}),  # attention DP4, MoE TP4 across the DP ranks
    (8, 4, True, {"tp": 1, "dp": 8, "ep": 4}),  # attention DP8, MoE TP2 x EP4
    (1, 1, False, {"tp": 1}),
])
def test_recipe_parallelism_maps_to_deployment_keys(tp, ep, dp_attn, expected):
    assert disagg.recipe_parallel(tp, ep, dp_attn) == expected


def test_disagg_row_without_silicon_concurrency_is_listed_not_run_with_one_client():
    r = {"mode": "disagg", "silicon_data_source": "source_file=/x/aic-auto-gap-analysis/data/h100_sxm/sglang/q.csv",
         "decode_batch_size": "224", "decode_num_workers": "2", "decode_attention_dp_size": "1", "batch_size": ""}
    with pytest.raises(fidelity.Unsupported, match="concurrency is not determined"):
        disagg.concurrency(r)
    r["silicon_data_source"] += "; silicon_concurrency=300"
    assert disagg.concurrency(r) == 300


def test_recipes_are_per_model(table):
    # a Kimi row with a DeepSeek recipe's system, engine, lengths, concurrency and pools matches nothing
    r = {**disagg_row("b200_sxm", "trtllm", "fp4", 1024, 1024, 1214, 4, 4, 8), "model_path": "moonshotai/Kimi-K2.5"}
    with pytest.raises(fidelity.Unsupported, match="no InferenceMAX recipe matches"):
        disagg.disagg_deployment(r)


@pytest.mark.parametrize("system, backend, precision, expected", [
    ("h100_sxm", "trtllm", "fp8", "fp8"),  # TensorRT-LLM's disagg generator writes dtype fp8 in both pools
    ("b200_sxm", "sglang", "fp8", "fp8"),  # SGLang's Blackwell recipes: trtllm_mla + fp8_e4m3
    ("gb200", "sglang", "fp8", "fp8"),
    ("h100_sxm", "sglang", "fp8", None),  # SGLang's H100 recipes leave the KV cache at the model dtype
    ("b200_sxm", "trtllm", "fp4", "fp8"),  # NVFP4 rows: fp8 whatever the recipe
])
def test_disagg_recipes_kv_cache_dtype(system, backend, precision, expected):
    r = disagg_row(system, backend, precision, 1024, 1024, 64, 8, 8, 8,
                   gemm_quant_mode="nvfp4" if precision == "fp4" else "fp8", moe_quant_mode="")
    assert fidelity.quant(r, r["model_path"], None).get("kv_cache_dtype") == expected


def test_agg_and_aic_eval_rows_keep_the_model_dtype_kv_cache():
    base = disagg_row("b200_sxm", "trtllm", "fp8", 1024, 1024, 64, 8, 8, 8, gemm_quant_mode="fp8", moe_quant_mode="")
    agg = {**base, "mode": "agg"}
    aic = {**base, "silicon_data_source": "aic-auto-gap-analysis; silicon_concurrency=64"}
    assert "kv_cache_dtype" not in fidelity.quant(agg, agg["model_path"], None)
    assert "kv_cache_dtype" not in fidelity.quant(aic, aic["model_path"], None)
