"""Pipeline parallelism in the serving simulator: stage costs, the batches-in-flight schedule, the
KV pool per stage, and bad input. Expected numbers come from a second route: `analyze()` of the
same deployment at a point (its `pipeline.stages`), the model's named dimensions, and a
hand-written recurrence of two request groups alternating through two stages."""

from __future__ import annotations

import itertools
import math

import pytest

import tensor_cast
from tensor_cast.cli import main
from tensor_cast.errors import TensorCastError
from tensor_cast.models import registry
from tensor_cast.serving.api import kv_pool, step_cost, step_costs
from tensor_cast.serving.engines import engine_profile

MODEL = "Qwen/Qwen3-0.6B"
LAYERS = 4
DEVICE = "h100-sxm"
FRONT_END = 10e-3  # vLLM's front end per request (engines.py "Overheads": vllm-project/vllm PR #54628's +8-12 ms)


@pytest.fixture(scope="module")
def spec():
    return tensor_cast.load_model(MODEL, num_hidden_layers=LAYERS)


@pytest.fixture(scope="module")
def device():
    return tensor_cast.load_device(DEVICE)


def _stage_times(spec, device, **point):
    """Each stage's time (its layers + its outgoing send/recv) from analyze() at a point."""
    report = tensor_cast.analyze(spec, device=device, pp=2, **point)
    return [float(s.time_s) for s in report.pipeline.stages]


def test_stage_costs_match_analyze_per_stage_and_add_up(spec, device):
    sym, stages = step_costs(spec, device=device, pp=2, table_tokens=4096)
    assert len(stages) == 2 and sym.context.deployment.stages == ((0, 1), (2, 3))
    for n, s, c in ((4, 1, 300), (3, 256, 0), (16, 1, 1024)):
        expected = _stage_times(spec, device, batch_size=n, query_len=s, context_len=c)
        got = [cost.step_s([(s, c)] * n) for cost in stages]
        assert got == pytest.approx(expected, rel=1e-9)
        whole = tensor_cast.analyze(spec, device=device, pp=2, batch_size=n, query_len=s, context_len=c)
        assert sum(got) == pytest.approx(float(whole.total_time_s), rel=1e-9)
    # the first stage's cost includes its send/recv of the activations to the second (2 tensors of
    # B x S x hidden), timed as analyze's pp_send_recv row at the same point; the last sends nothing
    from tensor_cast.deployment.pipeline import stage_multiplicities
    from tensor_cast.serving.batch_cost import BatchCost

    split = stage_multiplicities(sym)
    boundary = [i for i, n in enumerate(sym._costed.nodes) if n.phase == "pp_boundary"]
    assert [split[0][i] for i in boundary] == [1] and [split[1][i] for i in boundary] == [0]
    no_send = BatchCost.from_report(sym, table_tokens=64, multiplicities=[
        0 if i in boundary else m for i, m in enumerate(split[0])])
    point = tensor_cast.analyze(spec, device=device, pp=2, batch_size=4, query_len=8, context_len=40)
    (row,) = [r for r in point.ops if r.phase == "pp_boundary"]
    hidden = registry.lookup(MODEL).config["hidden_size"]
    assert row.shapes == f"(2, 4, 8, {hidden})" and row.time_s > 0
    assert stages[0].step_s([(8, 40)] * 4) - no_send.step_s([(8, 40)] * 4) == pytest.approx(row.time_s, rel=1e-9)


def test_uneven_split_is_vllms(spec, device):
    """pp=3 over 4 layers is accepted, as the engines do: vLLM's get_pp_indices gives 4 // 3 layers
    to each stage and the remainder to the stages just before the last ([1, 2, 1])."""
    sym, stages = step_costs(spec, device=device, pp=3, table_tokens=1024)
    assert sym.context.deployment.stages == ((0,), (1, 2), (3,))
    whole = tensor_cast.analyze(spec, device=device, pp=3, batch_size=4, query_len=1, context_len=100)
    assert sum(s.step_s([(1, 100)] * 4) for s in stages) == pytest.approx(float(whole.total_time_s), rel=1e-9)


def test_decode_closed_loop_pp2_by_hand(spec, device):
    """8 clients, a 1,024-token step budget and 256-token prompts: vLLM admits 4 prompts into each of
    the two batches it keeps in flight (group A = requests 0-3, B = 4-7); each group then decodes
    alone, scheduled again the moment its previous batch leaves the last stage. Stage times from
    analyze(pp=2) at each step's point; the host's step overhead on the last stage, overlapped with
    its kernels (vLLM's default). Every request reaches the engine FRONT_END after its client sent it."""
    isl, osl, overhead = 256, 6, 2e-4
    engine_args = {"max_num_batched_tokens": 4 * isl, "step_overhead_s": overhead, "seq_overhead_s": 0.0}
    rep = tensor_cast.simulate(spec, device=DEVICE, pp=2, concurrency=8, num_requests=8, isl=isl, osl=osl,
                               engine_args=engine_args, record_steps=True)
    prefill = _stage_times(spec, device, batch_size=4, query_len=isl, context_len=0)
    decodes = [_stage_times(spec, device, batch_size=4, query_len=1, context_len=isl + j) for j in range(osl - 1)]
    free = [0.0, 0.0]

    def run(start, times):
        t = start
        for i, duration in enumerate(times):
            # the last stage holds the host's step work, overlapped by vLLM's async scheduler:
            # max(kernels, overhead) (engines.py "Host overlap")
            t = max(t, free[i]) + (max(duration, overhead) if i == 1 else duration)
            free[i] = t
        return t

    ends = {"A": [run(FRONT_END, prefill)], "B": [run(FRONT_END, prefill)]}
    for j in range(osl - 1):
        for group in "AB":
            ends[group].append(run(ends[group][-1], decodes[j]))
    assert rep.num_gpus == 2
    for r in rep.requests:
        e = ends["A" if r.rid < 4 else "B"]
        assert r.ttft_s == pytest.approx(e[0], rel=1e-9)
        assert r.e2e_s == pytest.approx(e[-1], rel=1e-9)
        assert r.tpot_s == pytest.approx((e[-1] - e[0]) / (osl - 1), rel=1e-9)
    assert rep.output_tokens_per_s == pytest.approx(8 * osl / ends["B"][-1], rel=1e-9)
    # the step trace: one event per stage per batch, a stage never runs two batches at once
    for stage in ("agg0.stage0", "agg0.stage1"):
        spans = sorted((s.start_s, s.start_s + s.duration_s) for s in rep.step_records if s.worker == stage)
        assert len(spans) == 2 * osl and all(a[1] <= b[0] + 1e-15 for a, b in itertools.pairwise(spans))
    last = max(s.start_s + s.duration_s for s in rep.step_records if s.worker == "agg0.stage1")
    assert last == pytest.approx(ends["B"][-1], rel=1e-12)
    # steady state: a group's token takes max(its latency through both stages, two slowest-stage times)
    d0, d1 = decodes[2][0], max(decodes[2][1], overhead)
    period = ends["A"][4] - ends["A"][3]
    assert period == pytest.approx(max(d0 + d1, 2 * max(d0, d1)), rel=0.02)


def test_long_prompt_chunks_fill_the_pipeline(spec, device):
    """A 3,072-token prompt with a 1,024-token budget: vLLM schedules its second chunk while the
    first is still in the pipeline (num_computed_tokens advances at scheduling), and the third when
    the first leaves it (two batches in flight at most); the first token comes with the third. The
    request reaches the engine FRONT_END after it was sent."""
    isl, chunk = 3 * 1024, 1024
    rep = tensor_cast.simulate(spec, device=DEVICE, pp=2, concurrency=1, num_requests=1, isl=isl, osl=2,
                               engine_args={"max_num_batched_tokens": chunk, "step_overhead_s": 0.0,
                                            "seq_overhead_s": 0.0})
    free = [0.0, 0.0]

    def run(start, times):
        t = start
        for i, duration in enumerate(times):
            t = max(t, free[i]) + duration
            free[i] = t
        return t

    c1, c2, c3 = (_stage_times(spec, device, batch_size=1, query_len=chunk, context_len=k * chunk) for k in range(3))
    end1 = run(FRONT_END, c1)
    run(FRONT_END, c2)  # scheduled at once: its first chunk is in flight, the prompt is not
    first_token = run(end1, c3)
    (r,) = rep.requests
    assert r.ttft_s == pytest.approx(first_token, rel=1e-9)
    decode = _stage_times(spec, device, batch_size=1, query_len=1, context_len=isl)
    assert r.e2e_s == pytest.approx(run(first_token, decode), rel=1e-9)
    assert r.ttft_s - FRONT_END < sum(c1) + sum(c2) + sum(c3)  # the chunks overlap across the stages


def test_one_group_gets_no_overlap(spec, device):
    """All 4 clients fit one batch: vLLM keeps them together (a request joins the group of the
    batch that admitted it), so every token pays both stages back to back — the pipeline's
    worst case (RBLN-SW/vllm-rbln#243 describes it)."""
    isl, osl = 64, 4
    rep = tensor_cast.simulate(spec, device=DEVICE, pp=2, concurrency=4, num_requests=4, isl=isl, osl=osl,
                               engine_args={"step_overhead_s": 0.0, "seq_overhead_s": 0.0})
    expected = sum(sum(_stage_times(spec, device, batch_size=4, query_len=1, context_len=isl + j))
                   for j in range(osl - 1)) / (osl - 1)
    assert rep.mean_tpot_s == pytest.approx(expected, rel=1e-9)


def test_kv_capacity_per_stage(spec, device):
    """Each stage's GPUs hold half the layers' KV: bytes per token halve (from the named
    dimensions), and the pool (weights per GPU fall too) holds more than twice the tokens."""
    config = registry.lookup(MODEL).config
    per_layer = 2 * config["num_key_value_heads"] * config["head_dim"] * 2  # K and V, bf16
    engine = engine_profile("vllm")
    pools = {}
    for pp in (1, 2):
        sym, _ = step_costs(spec, device=device, pp=pp, table_tokens=1024)
        pools[pp] = kv_pool(sym, device, engine, 512, engine.memory_utilization)
    assert pools[1].bytes_per_token == pytest.approx(LAYERS * per_layer, rel=1e-12)
    assert pools[2].bytes_per_token == pytest.approx(LAYERS // 2 * per_layer, rel=1e-12)
    assert pools[2].blocks == math.floor(pools[2].budget_bytes / (pools[2].bytes_per_token * engine.block_size))
    assert pools[2].blocks > 2 * pools[1].blocks
    rep = tensor_cast.simulate(spec, device=DEVICE, pp=2, concurrency=2, num_requests=2, isl=256, osl=256)
    assert rep.kv_cache_blocks == pools[2].blocks  # the report's pool is the stage pool (isl + osl = 512)


def test_disagg_decode_pool_with_pp(spec):
    rep = tensor_cast.simulate(spec, device=DEVICE, concurrency=4, num_requests=8, isl=128, osl=8,
                               disagg="prefill: 1x tp1; decode: 1x tp1 pp2")
    assert rep.num_gpus == 3 and len(rep.requests) == 8
    assert all(r.kv_transfer_s > 0 and r.tpot_s > 0 for r in rep.requests)


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"pp": 0}, "pp must be a positive integer, got 0"),
    ({"pp": 5}, "pp=5 exceeds the 4 layers"),
    ({"disagg": "prefill: 1x tp1; decode: 1x pp0"}, "pp must be an integer >= 1"),
    ({"disagg": "prefill: 1x tp1; decode: 1x pq2"}, "bad disagg spec"),
])
def test_bad_pipeline_input(spec, kwargs, needle):
    with pytest.raises(TensorCastError, match=needle):
        tensor_cast.simulate(spec, device=DEVICE, concurrency=2, num_requests=2, isl=64, osl=4, **kwargs)


def test_step_cost_refuses_stages(spec, device):
    with pytest.raises(TensorCastError, match="pp=1, or step_costs"):
        step_cost(spec, device=device, pp=2)


def test_cli_pp_beyond_layers_exits_2(capsys):
    code = main(["serve", MODEL, "--device", DEVICE, "--concurrency", "2", "--isl", "64", "--osl", "4",
                 "--num-hidden-layers", "4", "--pp", "8"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "pp=8 exceeds the 4 layers" in err, err


def test_a_stage_split_that_loses_work_fails_loudly(spec, device, monkeypatch):
    """The run-time check: stages that do not add up to the whole model (here the send/recv of
    the first stage dropped) stop the run instead of simulating a wrong pipeline."""
    from tensor_cast.serving import pipeline

    sym, _ = step_costs(spec, device=device, pp=2, table_tokens=1024)
    split = pipeline.stage_multiplicities(sym)
    boundary = [i for i, n in enumerate(sym._costed.nodes) if n.phase == "pp_boundary"]
    split[0] = [0 if i in boundary else m for i, m in enumerate(split[0])]
    monkeypatch.setattr(pipeline, "stage_multiplicities", lambda report: split)
    with pytest.raises(AssertionError, match="pipeline stages cost"):
        pipeline.stage_costs(sym, table_tokens=1024)


def test_preemption_with_batches_in_flight(spec):
    """KV short (a sliver of memory): vLLM preempts, sometimes a request with a prefill chunk in
    flight, whose work there is void. Every request still ends with all its tokens, the pool is
    never overdrawn and nothing stays in flight at the end (both checked inside the simulator)."""
    rep = tensor_cast.simulate(spec, device=DEVICE, pp=2, concurrency=32, num_requests=48, isl=2000, osl=600,
                               range_ratio=0.5, memory_utilization=0.0093,
                               engine_args={"max_num_batched_tokens": 1024})
    assert rep.preemptions > 0 and rep.kv_peak_use == pytest.approx(1.0, abs=0.02)
    assert len(rep.requests) == 48 and all(r.e2e_s > r.ttft_s > 0 for r in rep.requests)
