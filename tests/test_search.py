"""Deployment search: memory pruning, Pareto frontier, SLO filtering, recommend's minimum, launch
commands, quantity parsing and bad input. Metrics are hand-made where the logic under test does
not simulate; expected values come from named dimensions and brute force, not from the code."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import random
import re
from pathlib import Path

import pytest

from tensor_cast.backends.device import load_device
from tensor_cast.cli import main
from tensor_cast.errors import InvalidArgumentError
from tensor_cast.models import registry
from tensor_cast.search import engine_flags, units
from tensor_cast.search.launch import ENGINES, launch
from tensor_cast.search.metrics import SLO, Metrics
from tensor_cast.search.pareto import frontier
from tensor_cast.search.run import FitTask, _fit_variant
from tensor_cast.search.select import Row, binding, fewest_gpus, meeting, pareto
from tensor_cast.search.space import Candidate, Layout, Variant, layouts

PROFILES = Path(__file__).resolve().parents[1] / "backends" / "profiles"


def _metrics(ttft_ms: float, tpot_ms: float, tok_s: float, gpus: int, osl: int = 500) -> Metrics:
    return Metrics(mean_ttft_s=ttft_ms / 1e3, mean_tpot_s=tpot_ms / 1e3, p90_ttft_s=1.5 * ttft_ms / 1e3,
                   p90_tpot_s=1.2 * tpot_ms / 1e3, output_tokens_per_s=tok_s, unit_gpus=gpus,
                   requests_per_s=tok_s / osl)


def _row(device: str, tp: int, ttft_ms: float, tpot_ms: float, tok_s: float, concurrency: int = 8) -> Row:
    variant = Variant(Layout(tp=tp))
    return Row(Candidate(device=device, gpus=tp, variant=variant, concurrency=concurrency),
               _metrics(ttft_ms, tpot_ms, tok_s, tp))


# ---- Pareto ------------------------------------------------------------------------------------


def test_frontier_of_hand_made_points():
    points = [(1, 10), (2, 9), (2, 5), (3, 3), (1, 4), (4, 1), (3, 3), (0.5, 10)]
    # (1,10) beats (0.5,10) and (1,4); (2,9) beats (2,5); (3,3) twice: one kept; (4,1) alone at x=4
    assert [points[i] for i in frontier(points)] == [(1, 10), (2, 9), (3, 3), (4, 1)]


def test_frontier_matches_brute_force():
    rng = random.Random(7)
    for _ in range(20):
        points = [(rng.randint(0, 9), rng.randint(0, 9)) for _ in range(25)]
        dominated = {i for i, j in itertools.product(range(len(points)), repeat=2)
                     if points[j][0] >= points[i][0] and points[j][1] >= points[i][1] and points[j] != points[i]}
        expected = sorted({points[i] for i in range(len(points)) if i not in dominated})
        assert sorted(points[i] for i in frontier(points)) == expected


def test_pareto_uses_per_gpu_and_per_user_throughput():
    a = _row("h200", 1, 100, 10, 4000)   # 4000 tok/s/GPU, 100 tok/s/user
    b = _row("h200", 2, 100, 5, 4000)    # 2000 tok/s/GPU, 200 tok/s/user
    c = _row("h200", 4, 100, 5, 4000)    # 1000 tok/s/GPU, 200 tok/s/user: dominated by b
    assert pareto([a, b, c]) == [a, b]


# ---- SLO ---------------------------------------------------------------------------------------


def test_slo_filter_and_statistic():
    rows = [_row("h100-sxm", 1, 250, 9, 100), _row("h100-sxm", 1, 350, 9, 100), _row("h100-sxm", 1, 250, 11, 100)]
    assert meeting(rows, SLO(ttft_s=0.3, tpot_s=0.01)) == rows[:1]
    # p90 here is 1.5x TTFT and 1.2x TPOT: 375 ms / 10.8 ms for the first row
    assert meeting(rows, SLO(ttft_s=0.4, tpot_s=0.0105, stat="p90")) == []
    # p90: 375 / 525 / 375 ms TTFT, 10.8 / 10.8 / 13.2 ms TPOT
    assert meeting(rows, SLO(ttft_s=0.55, tpot_s=0.012, stat="p90")) == rows[:2]


def test_binding_constraint_and_closest():
    rows = [_row("h200", 1, 200, 15, 100), _row("h200", 2, 250, 12, 100), _row("h200", 4, 900, 11, 100)]
    slo = SLO(ttft_s=0.3, tpot_s=0.01)
    found = binding(rows, slo, closest=2)
    assert found.constraint == "tpot" and found.missed_by == {"tpot": 3, "ttft": 1}
    # misses: TP1 1.5x (15 ms TPOT), TP2 1.2x (12 ms), TP4 3x (900 ms TTFT): TP2, then TP1
    assert [r.candidate.variant.layout.tp for r in found.closest] == [2, 1]
    assert "binding: TPOT (TPOT missed by 3 of 3; TTFT missed by 1 of 3)" in found.describe(slo)
    assert binding([], slo).constraint == "memory"


# ---- recommend ---------------------------------------------------------------------------------


def test_fewest_gpus_for_a_rate():
    osl = 500
    rows = [_row("h100-sxm", 1, 100, 8, 3000), _row("h100-sxm", 2, 100, 6, 5000), _row("h200", 4, 100, 5, 16000)]
    rate = 20.0
    # requests/s per unit = tok/s / osl: 6, 10, 32 -> units ceil(20/6)=4 (4 GPUs), 2 (4 GPUs), 1 (4 GPUs)
    sized = fewest_gpus(rows, rate)
    assert [s.gpus for s in sized] == [4, 4, 4]
    assert sized[0].row is rows[2]  # tie on GPUs: the highest throughput per GPU wins (4000 tok/s/GPU)
    expected = min(math.ceil(rate / (r.metrics.output_tokens_per_s / osl)) * r.candidate.unit_gpus for r in rows)
    assert sized[0].gpus == expected
    assert fewest_gpus(rows, 7.0)[0].gpus == 2  # TP1: 2 units of 6 req/s; TP2: 1 unit; TP4: 4 GPUs


# ---- memory pruning ----------------------------------------------------------------------------


def _qwen06_weight_bytes() -> int:
    c = registry.lookup("Qwen/Qwen3-0.6B").config
    h, i, v, hd = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["head_dim"]
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    layer = h * q + 2 * h * kv + q * h + 3 * h * i + 2 * h + 2 * hd  # projections, 2 norms, q/k norms
    params = v * h + c["num_hidden_layers"] * layer + h  # tied embeddings, final norm
    return 2 * params  # bf16


def _small_profile(tmp_path: Path, weights: int) -> Path:
    """An H100 profile whose usable memory is 0.75 x `weights`."""
    capacity_gib = 0.75 * weights / 0.9 / 2**30
    text = (PROFILES / "h100_sxm.toml").read_text()
    text = re.sub(r"(?m)^capacity_gib = .*$", f"capacity_gib = {capacity_gib:.6f}", text)
    text = re.sub(r'(?m)^name = .*$', 'name = "small-h100"', text)
    text = re.sub(r'(?m)^aliases = .*$', 'aliases = ["x-small"]', text)
    profile = tmp_path / "small.toml"
    profile.write_text(text)
    return profile


def test_memory_pruning_from_named_dims(tmp_path):
    weights = _qwen06_weight_bytes()
    profile = _small_profile(tmp_path, weights)  # usable = 0.75 x the TP1 weights
    assert load_device(str(profile)).memory_bytes * 0.9 < weights
    fits = {f.variant.layout.tp: f for layout in (Layout(tp=1), Layout(tp=2))
            for f in _fit_variant(FitTask("Qwen/Qwen3-0.6B", Variant(layout), (str(profile),), 128, 128, True))}
    assert fits[1].weights_bytes == pytest.approx(weights, rel=1e-9)
    assert fits[1].reason.startswith("does not fit") and fits[1].max_batch == 0
    assert not fits[2].reason and fits[2].max_batch >= 1  # half the weights per GPU fit


# ---- launch commands ---------------------------------------------------------------------------

LAYOUTS = [Layout(tp=8), Layout(tp=1, dp=8, ep=8), Layout(tp=8, ep=8), Layout(tp=2, dp=4, ep=8), Layout(tp=4, pp=2)]


@pytest.mark.parametrize("engine", ENGINES)
def test_every_generated_flag_is_documented(engine):
    for layout, quant, kv in itertools.product(LAYOUTS, (None, "fp8", "w4a16"), (None, "fp8")):
        cand = Candidate(device="h200", gpus=8, variant=Variant(layout, quant, kv), concurrency=64)
        for cmd in launch("deepseek-ai/DeepSeek-V3", cand, engine, 4500):
            assert set(cmd.flags) <= set(engine_flags.ENGINE_FLAGS[engine]), cmd.flags
            assert all(src.startswith("https://") for src in engine_flags.ENGINE_FLAGS[engine].values())


def test_launch_spellings():
    cand = Candidate(device="h200", gpus=16, variant=Variant(Layout(tp=1, dp=8, ep=8), "fp8", "fp8"),
                     concurrency=256, replicas=2)
    (vllm,) = launch("deepseek-ai/DeepSeek-V3", cand, "vllm", 4500)
    assert vllm.argv[:3] == ("vllm", "serve", "deepseek-ai/DeepSeek-V3") and vllm.instances == 2
    assert " --tensor-parallel-size 1 --data-parallel-size 8 --enable-expert-parallel " in " ".join(vllm.argv)
    assert "--kv-cache-dtype fp8" in vllm.shell() and "--max-num-seqs 256" in vllm.shell()
    (sgl,) = launch("deepseek-ai/DeepSeek-V3", cand, "sglang", 4500)
    assert " --tp-size 8 --dp-size 8 --enable-dp-attention --ep-size 8 " in " ".join(sgl.argv)
    assert "--kv-cache-dtype fp8_e4m3" in sgl.shell()
    (trt,) = launch("deepseek-ai/DeepSeek-V3", cand, "trtllm", 4500)
    assert trt.argv[0] == "trtllm-serve" and "--ep_size 8" in trt.shell()
    assert "enable_attention_dp: true" in trt.yaml and "dtype: fp8" in trt.yaml


def test_launch_spellings_pipeline():
    """PP as each engine spells it (vLLM engine args, SGLang server arguments, trtllm-serve options)."""
    cand = Candidate(device="h100-sxm", gpus=16, variant=Variant(Layout(tp=8, pp=2)), concurrency=64)
    expected = {"vllm": "--tensor-parallel-size 8 --pipeline-parallel-size 2", "sglang": "--tp-size 8 --pp-size 2",
                "trtllm": "--tp_size 8 --pp_size 2"}
    for engine, text in expected.items():
        (cmd,) = launch("meta-llama/Llama-3.1-70B", cand, engine, 2048)
        assert text in cmd.shell(), cmd.shell()


# ---- quantities and bad input ------------------------------------------------------------------


def test_units():
    assert units.duration("300ms") == pytest.approx(0.3) and units.duration("0.01s") == pytest.approx(0.01)
    assert units.rate("20/s") == 20 and units.rate("1200/min") == pytest.approx(20)
    assert units.prices(["h100-sxm=2.5/h,b200=6"]) == {"h100-sxm": 2.5, "b200": 6.0}
    for bad in ("fast", "10 parsecs", "-3ms"):
        with pytest.raises(InvalidArgumentError, match="duration|> 0"):
            units.duration(bad)
    with pytest.raises(InvalidArgumentError, match="DEVICE=DOLLARS/h"):
        units.price("h100-sxm:2.5")


@pytest.mark.parametrize(("extra", "needle"), [
    (["--devices", "h900"], "unknown device 'h900'; accepted: "),
    (["--engine", "tgi"], "unknown engine 'tgi'; accepted: vllm, sglang, trtllm"),
    (["--ttft", "soon"], "--ttft 'soon' is not a duration"),
    (["--price", "h100-sxm=cheap"], "price 'h100-sxm=cheap' is not DEVICE=DOLLARS/h"),
    (["--gpus", "0"], "--gpus value 0 must be a positive integer"),
])
def test_bad_input_one_line_exit_2(capsys, extra, needle):
    args = ["search", "Qwen/Qwen3-0.6B", "--devices", "h100-sxm", "--gpus", "8", "--isl", "100", "--osl", "10",
            "--ttft", "300ms", "--tpot", "10ms"]
    for flag, value in zip(extra[::2], extra[1::2]):
        args[args.index(flag) + 1] = value if flag in args else args.extend([flag, value]) or value
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def test_gpu_count_no_fitting_parallelism_divides(tmp_path, capsys):
    """TP1 does not fit the small profile (above) and one GPU has no other layout; 2 GPUs do (TP2)."""
    profile = _small_profile(tmp_path, _qwen06_weight_bytes())
    code = main(["search", "Qwen/Qwen3-0.6B", "--devices", str(profile), "--gpus", "1", "--isl", "128",
                 "--osl", "128", "--kv-cache-dtype", "auto", "--jobs", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "--gpus 1: no parallelism of Qwen/Qwen3-0.6B" in err and "accepted GPU counts (up to 2): 2" in err


def test_pipeline_stages_in_a_node_only_when_nothing_else_fits(tmp_path):
    """3 GPUs: 3 divides neither 16 heads nor 8 KV heads (no TP3) and TP1 does not fit, so the
    search fits PP3 (28 layers as 10 + 9 + 9, vLLM's split): a third of the layers per GPU."""
    from tensor_cast.api import load_model
    from tensor_cast.search import search

    profile = _small_profile(tmp_path, _qwen06_weight_bytes())
    spec = load_model("Qwen/Qwen3-0.6B")
    gpn = load_device("h100-sxm").interconnect.gpus_per_node
    assert layouts(spec, load_device(str(profile)), 3) == []
    assert layouts(spec, load_device(str(profile)), 3, pp_in_node=True) == [Layout(tp=1, pp=3)]
    # across nodes PP comes with TP filling a node, without asking
    assert Layout(tp=gpn, pp=2) in layouts(spec, load_device("h100-sxm"), 2 * gpn)
    assert all(lay.pp == 1 for lay in layouts(spec, load_device("h100-sxm"), gpn))
    res = search("Qwen/Qwen3-0.6B", devices=str(profile), gpus="3", isl=128, osl=16, concurrency="4",
                 kv_cache_dtype="auto", jobs=1, requests_per_client=2)
    assert {row.candidate.variant.layout for row in res.rows} == {Layout(tp=1, pp=3)}


def test_ray_gives_the_local_results():
    """`--ray`: the same search as Ray tasks on a local Ray returns the local run's numbers."""
    ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'tensor-cast[ray]')")
    from tensor_cast.search import search

    kwargs = dict(devices="h100-sxm", gpus="1", isl=128, osl=16, ttft="1s", tpot="50ms", concurrency="2,8",
                  kv_cache_dtype="auto", requests_per_client=2)
    local = search("Qwen/Qwen3-0.6B", jobs=1, **kwargs)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = search("Qwen/Qwen3-0.6B", ray="local", **kwargs)
    finally:
        ray.shutdown()
    assert remote.to_json() == local.to_json()


def test_search_end_to_end_small(tmp_path):
    """The real simulator on a small model: the answers are consistent with the rows they come from."""
    from tensor_cast.search import recommend, search

    kwargs = dict(devices="h100-sxm", isl=128, osl=16, concurrency="2,8", kv_cache_dtype="auto",
                  requests_per_client=2, jobs=1)
    result = search("Qwen/Qwen3-0.6B", gpus="1,2", ttft="1s", tpot="50ms", prices="h100-sxm=2/h", **kwargs)
    # 1 GPU: TP1 at 2 concurrency levels; 2 GPUs: 2xTP1 and 1xTP2, each at 2 levels
    assert sorted((r.candidate.gpus, r.candidate.describe(), r.candidate.concurrency) for r in result.rows) == sorted(
        [(1, "1xTP1 ckpt", c) for c in (2, 8)] + [(2, "2xTP1 ckpt", c) for c in (2, 8)]
        + [(2, "1xTP2 ckpt", c) for c in (2, 8)])
    ok = [r for r in result.rows if r.metrics.mean_ttft_s <= 1 and r.metrics.mean_tpot_s <= 0.05]
    assert result.meeting == ok and ok
    best = max(ok, key=lambda r: r.metrics.tokens_per_s_per_gpu)
    assert result.per_device["h100-sxm"].metrics.tokens_per_s_per_gpu == best.metrics.tokens_per_s_per_gpu
    row = result.row_dict(best)
    assert row["usd_per_m_tokens"] == pytest.approx(2 * 1e6 / (best.metrics.tokens_per_s_per_gpu * 3600))
    assert len(result.to_csv().splitlines()) == 1 + len(result.rows)
    (serve,) = result.launches[0]
    assert serve.argv[:3] == ("vllm", "serve", "Qwen/Qwen3-0.6B")
    from tensor_cast.search.html import search_html

    page = search_html(result, "Qwen/Qwen3-0.6B")
    assert "<script" not in page and "//" not in re.sub(r"(?s)<pre>.*?</pre>", "", page).replace("</", "")
    assert len(page.encode()) <= 2_000_000 and page.count("<circle") == len(result.rows)
    assert "Per-op breakdown" in page and "Step timeline" in page
    assert "# measured accuracy on similar runs: vllm Qwen3-dense agg on h100_sxm" in page  # each launch says it
    # nothing meets a 1 µs TPOT: TPOT binds, the closest configurations are named
    none = search("Qwen/Qwen3-0.6B", gpus="1", ttft="1s", tpot="1us", **kwargs)
    assert not none.meeting and none.binding is not None and none.binding.constraint == "tpot"
    assert none.binding.closest and "binding: TPOT" in none.summary()
    # recommend: the fewest GPUs for a rate are units x the unit's GPUs, units = ceil(rate / unit rate)
    rec = recommend("Qwen/Qwen3-0.6B", rate="5/s", ttft="1s", tpot="50ms", max_gpus_per_instance=2, **kwargs)
    top = rec.sized[0]
    assert top.units == math.ceil(5 / top.row.metrics.requests_per_s - 1e-9)
    assert top.gpus == min(math.ceil(5 / s.row.metrics.requests_per_s - 1e-9) * s.row.candidate.unit_gpus
                           for s in rec.sized)
    assert rec.launches[0][0].instances == top.units


def test_disaggregated_launch_has_both_roles():
    from tensor_cast.search.space import Pool

    decode = Variant(Layout(tp=1, dp=8, ep=8))
    cand = Candidate(device="h200", gpus=32, variant=decode, concurrency=512, replicas=2,
                     prefill=Pool(Variant(Layout(tp=8)), 1), decode=Pool(decode, 1))
    assert cand.unit_gpus == 16
    prefill, dec = launch("deepseek-ai/DeepSeek-V3", cand, "sglang", 4500)
    assert (prefill.role, prefill.instances, dec.role, dec.instances) == ("prefill", 2, "decode", 2)
    assert "--disaggregation-mode prefill" in prefill.shell() and "--tp-size 8" in prefill.shell()
    assert "--disaggregation-mode decode" in dec.shell() and "--enable-dp-attention" in dec.shell()
    vllm_p, vllm_d = launch("deepseek-ai/DeepSeek-V3", cand, "vllm", 4500)
    assert "--kv-transfer-config" in vllm_p.flags and "--kv-transfer-config" in vllm_d.flags
    # TensorRT-LLM's context servers run without the overlap scheduler, as simulated
    trt_p, trt_d = launch("deepseek-ai/DeepSeek-V3", cand, "trtllm", 4500)
    assert "disable_overlap_scheduler: true" in trt_p.yaml
    assert "disable_overlap_scheduler" not in (trt_d.yaml or "")


def test_cli_defaults_equal_their_owners():
    from tensor_cast.search import cli, space

    assert cli.DEFAULT_CONCURRENCY == space.DEFAULT_CONCURRENCY


def test_levels_above_a_missed_slo_are_screened_and_listed():
    """A stand-in simulator whose TPOT is 1 ms per client: with a 10 ms target, 1..8 clients meet it,
    16 misses (1.6x) and 32, 64 are screened (listed with the level and the factor), not simulated;
    `screen=False` simulates them and they miss too."""
    from types import SimpleNamespace

    from tensor_cast.search import search

    calls: list[int] = []

    def simulate(model, *, concurrency, osl, **kwargs):
        calls.append(concurrency)
        tpot = 1e-3 * concurrency
        return SimpleNamespace(mean_ttft_s=0.01, p90_ttft_s=0.01, mean_tpot_s=tpot, p90_tpot_s=tpot,
                               output_tokens_per_s=concurrency / tpot / 2, num_gpus=1)

    kwargs = dict(devices="h100-sxm", gpus="1", isl=128, osl=16, tpot="10ms", kv_cache_dtype="auto",
                  concurrency="1,2,4,8,16,32,64", jobs=1, simulator=simulate)
    result = search("Qwen/Qwen3-0.6B", **kwargs)
    assert calls == [1, 2, 4, 8, 16]
    assert [r.candidate.concurrency for r in result.meeting] == [1, 2, 4, 8]
    assert [(c.concurrency, s.below, s.missed) for c, s in result.screened] == [(32, 16, {"tpot": 1.6}),
                                                                                (64, 16, {"tpot": 1.6})]
    data = result.to_dict()
    assert [s["concurrency"] for s in data["screened"]] == [32, 64]
    assert "concurrency 16 already misses the SLOs (TPOT 1.60x its target)" in data["screened"][0]["reason"]
    assert "2 configurations screened out unsimulated" in result.summary()
    table = list(csv.DictReader(io.StringIO(result.to_csv())))
    assert len(table) == len(result.rows) + 2
    assert {r["status"] for r in table[:len(result.rows)]} == {"simulated"}
    assert [(int(r["concurrency"]), r["mean_tpot_ms"], r["meets_slo"]) for r in table[len(result.rows):]] == [
        (32, "", "False"), (64, "", "False")]
    assert table[-1]["status"].startswith("not simulated: concurrency 16 already misses the SLOs")
    from tensor_cast.search.html import search_html

    page = search_html(result, "Qwen/Qwen3-0.6B")
    assert "Screened out, not simulated (2)" in page and page.count("already misses the SLOs") == 2
    calls.clear()
    full = search("Qwen/Qwen3-0.6B", screen=False, **kwargs)
    assert calls == [1, 2, 4, 8, 16, 32, 64] and not full.screened
    assert [r.candidate.concurrency for r in full.meeting] == [1, 2, 4, 8]


def test_mixed_moe_splits_offered_to_engines_that_split_experts():
    """SGLang and TensorRT-LLM split each expert over an EP group's ranks (`--tp 8 --ep-size 2`:
    moe_tp 4), vLLM does not: the mixed EPs appear only when asked (the search asks for those two
    engines), only under TP attention, and launch with the engines' own tp / ep flags."""
    from tensor_cast.api import load_model

    spec, h100 = load_model("Qwen/Qwen3-30B-A3B"), load_device("h100-sxm")
    plain, mixed = layouts(spec, h100, 8), layouts(spec, h100, 8, mixed_ep=True)
    assert set(mixed) - set(plain) == {Layout(tp=8, ep=2), Layout(tp=8, ep=4)}
    assert Layout(tp=8, ep=2).describe() == "TP8+EP2(MoE-TP4)" and Layout(tp=8, ep=8).describe() == "TP8+EP8"
    candidate = Candidate(device="h100-sxm", gpus=8, variant=Variant(Layout(tp=8, ep=2)), concurrency=16)
    (sglang,) = launch("Qwen/Qwen3-30B-A3B", candidate, "sglang", 4096)
    assert " --tp-size 8 --ep-size 2 " in " ".join(sglang.argv) + " "
    (trtllm,) = launch("Qwen/Qwen3-30B-A3B", candidate, "trtllm", 4096)
    assert " --tp_size 8 --ep_size 2 " in " ".join(trtllm.argv) + " "


def test_quants_the_checkpoint_serves_as_its_own_are_not_searched_twice():
    """DeepSeek-V3 ships block FP8: fp8 (served at the checkpoint's blocks) and fp8_block are its own
    configurations; nvfp4 re-quantizes and is searched; a 16-bit checkpoint searches fp8."""
    from tensor_cast.search.run import _inputs

    def quants(model, asked):
        return _inputs(model, devices="h200", gpus="8", isl=100, osl=10, ttft="1s", tpot="50ms", engine="vllm",
                       quant=asked, kv_cache_dtype="auto", concurrency="8", prices={}, slo_stat="mean",
                       requests_per_client=2, cache=False, jobs=1, ray=None, simulator=None).quants

    assert quants("deepseek-ai/DeepSeek-V3", "fp8,fp8_block,nvfp4") == (None, "nvfp4")
    assert quants("Qwen/Qwen3-0.6B", "fp8,fp8_block") == (None, "fp8", "fp8_block")


def test_length_spread_reaches_every_simulation_and_the_summary(capsys):
    """range_ratio is passed to every simulation (a stand-in records it), said in the summary and the
    JSON; fixed lengths say so too; a ratio outside [0, 1) is one line, exit 2."""
    from types import SimpleNamespace

    from tensor_cast.search import search

    seen: list[float] = []

    def simulate(model, *, concurrency, osl, range_ratio, **kwargs):
        seen.append(range_ratio)
        return SimpleNamespace(mean_ttft_s=0.01, p90_ttft_s=0.01, mean_tpot_s=1e-3, p90_tpot_s=1e-3,
                               output_tokens_per_s=1000.0, num_gpus=1)

    kwargs = dict(devices="h100-sxm", gpus="1", isl=128, osl=16, tpot="10ms", kv_cache_dtype="auto",
                  concurrency="1,2", jobs=1, simulator=simulate)
    spread = search("Qwen/Qwen3-0.6B", range_ratio=0.2, **kwargs)
    assert seen == [0.2, 0.2] and "ISL 128 / OSL 16 (each ±20%)" in spread.summary()
    assert json.loads(spread.to_json())["range_ratio"] == 0.2
    # each recommendation carries the measured accuracy of similar runs (Qwen3-dense vLLM agg rows on H100)
    assert "# measured accuracy on similar runs: vllm Qwen3-dense agg on h100_sxm" in spread.summary()
    assert json.loads(spread.to_json())["recommended"][0]["measured_accuracy"].startswith("measured accuracy")
    # the launch admits the longest request drawn: round(128 x 1.2) + round(16 x 1.2) = 154 + 19 tokens
    argv = spread.launches[0][0].argv
    assert argv[argv.index("--max-model-len") + 1] == "173"
    with pytest.raises(InvalidArgumentError, match=r"the longest request, \(isl \+ osl\) x 1.5 = 46500, exceeds "
                                                   r"Qwen/Qwen3-0.6B's context of 40960 tokens"):
        search("Qwen/Qwen3-0.6B", **{**kwargs, "isl": 30000, "osl": 1000}, range_ratio=0.5)
    assert "(fixed lengths)" in search("Qwen/Qwen3-0.6B", **kwargs).summary() and seen[2:] == [0.0, 0.0]
    args = ["search", "Qwen/Qwen3-0.6B", "--devices", "h100-sxm", "--gpus", "1", "--isl", "100", "--osl", "10",
            "--range-ratio", "1.5"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err == "tensor-cast: error: range_ratio must be a fraction in [0, 1), got 1.5"


def test_several_engines_are_compared_in_one_search():
    """--engine vllm,sglang: every configuration under each engine (each simulation told its engine), the best
    per device and engine, each recommendation launched with its own engine's command."""
    from types import SimpleNamespace

    from tensor_cast.search import search

    seen: list[str] = []
    speed = {"vllm": 1000.0, "sglang": 1200.0}  # the stand-in makes SGLang the faster engine

    def simulate(model, *, engine, concurrency, osl, **kwargs):
        seen.append(engine)
        return SimpleNamespace(mean_ttft_s=0.01, p90_ttft_s=0.01, mean_tpot_s=1e-3, p90_tpot_s=1e-3,
                               output_tokens_per_s=speed[engine], num_gpus=1)

    result = search("Qwen/Qwen3-0.6B", devices="h100-sxm", gpus="1", isl=128, osl=16, tpot="10ms",
                    kv_cache_dtype="auto", concurrency="1", jobs=1, simulator=simulate, engine="vllm,sglang")
    assert sorted(seen) == ["sglang", "vllm"]
    assert result.engine == "vllm,sglang"
    assert sorted(result.per_device) == ["h100-sxm sglang", "h100-sxm vllm"]
    assert {r.candidate.engine for r in result.rows} == {"vllm", "sglang"}
    best = result.chosen[0]
    assert best.candidate.engine == "sglang" and best.candidate.describe().startswith("sglang ")
    commands = [ls[0].shell() for ls in result.launches]
    assert commands[0].startswith("python -m sglang.launch_server") and commands[1].startswith("vllm serve")
    data = json.loads(result.to_json())
    assert {r["engine"] for r in data["rows"]} == {"vllm", "sglang"}
    assert "engine" in result.to_csv().splitlines()[0].split(",")
    with pytest.raises(InvalidArgumentError, match="unknown engine 'tgi'"):
        search("Qwen/Qwen3-0.6B", devices="h100-sxm", gpus="1", isl=128, osl=16, engine="vllm,tgi", simulator=simulate)


def test_slo_attainment_judges_each_requests_share():
    """--slo-stat attainment[:share]: at least that share of the requests within both targets (DistServe's
    attainment, vLLM's goodput); the violation is the required share over the attained one."""
    from dataclasses import replace as with_

    from tensor_cast.search.metrics import SLO, Metrics

    slo = SLO(ttft_s=0.3, tpot_s=0.02, stat="attainment")
    assert (slo.stat, slo.attainment) == ("attainment", 0.9)
    assert SLO(ttft_s=0.3, stat="attainment:0.95").attainment == 0.95
    base = Metrics(mean_ttft_s=1.0, mean_tpot_s=1.0, p90_ttft_s=1.0, p90_tpot_s=1.0, output_tokens_per_s=1.0,
                   unit_gpus=1, requests_per_s=1.0)  # every mean and p90 misses: attainment ignores them
    assert slo.met(with_(base, ttft_share=0.95, tpot_share=0.97, joint_share=0.92))
    assert slo.violations(with_(base, ttft_share=0.8, tpot_share=0.97, joint_share=0.78)) == {"ttft": pytest.approx(0.9 / 0.8)}
    # each target alone attained, both together not: the joint constraint binds
    assert slo.violations(with_(base, ttft_share=0.93, tpot_share=0.93, joint_share=0.86)) == {
        "ttft+tpot": pytest.approx(0.9 / 0.86)}
    for bad, message in (("attainment:1.5", r"must be a share in \(0, 1\]"), ("p90:0.9", "is not one of"),
                         ("median", "is not one of")):
        with pytest.raises(InvalidArgumentError, match=message):
            SLO(ttft_s=0.3, stat=bad)


def test_search_with_attainment_measures_the_shares():
    """The search asks each simulated report for its goodput at the targets (a stand-in's, here): the level whose
    joint share falls below 0.9 misses, the table shows the share."""
    from types import SimpleNamespace

    from tensor_cast.search import search

    asked = []

    def simulate(model, *, concurrency, osl, **kwargs):
        def goodput(targets):
            asked.append(dict(targets))
            share = 0.95 if concurrency == 1 else 0.6  # 2 clients: 60 % of the requests within the targets
            return SimpleNamespace(share=share)
        return SimpleNamespace(mean_ttft_s=0.01, p90_ttft_s=0.01, mean_tpot_s=1e-3, p90_tpot_s=1e-3,
                               output_tokens_per_s=1000.0 * concurrency, num_gpus=1, goodput=goodput)

    result = search("Qwen/Qwen3-0.6B", devices="h100-sxm", gpus="1", isl=128, osl=16, ttft="50ms", tpot="10ms",
                    kv_cache_dtype="auto", concurrency="1,2", jobs=1, simulator=simulate, slo_stat="attainment",
                    screen=False)
    assert {"ttft": 50.0, "tpot": 10.0} in asked and {"ttft": 50.0} in asked
    assert [r.candidate.concurrency for r in result.meeting] == [1]  # the means meet at 2 clients; 60 % does not
    assert "in SLO" in result.summary() and "95.0%" in result.summary()
    assert json.loads(result.to_json())["slo"]["attainment"] == 0.9
