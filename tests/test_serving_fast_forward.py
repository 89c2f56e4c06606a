"""The serving simulator's decode fast-forward (fast_forward.py) against stepping every step:
runs cut where a hand-over or an arrival lands, runs past waiting requests that provably stay out,
attention-DP runs costed in one vectorized call, and runs costed lazily — each equal to the
step-by-step route (`fast_forward=False`) or to runs costed whole."""

from __future__ import annotations

import numpy as np
import pytest
from serving_costs import ConstantCost, LinearCost

from tensor_cast.serving.engines import engine_profile
from tensor_cast.serving.scheduler import RankScheduler
from tensor_cast.serving.simulator import Worker, simulate_workers
from tensor_cast.serving.workload import make_workload

NO_OVERHEAD = {"step_overhead_s": 0.0, "seq_overhead_s": 0.0, "request_overhead_s": 0.0}


def test_fast_forwarded_decode_run_is_cut_by_a_handover_planned_after_it():
    # Closed loop over a prefill and a decode worker, constant step d, no transfer time. When a
    # request finishes, the decode worker plans its next (fast-forwarded) decode run at the same
    # instant as the prefill worker starts the new request's prefill; the handed-over request must
    # join at the next decode step boundary, not after the run: TTFT <= one prefill step queued
    # behind another (2 d) + one decode step (d). Synchronous scheduling, so that the bound is the
    # cut's alone (async scheduling adds a step per worker: test_async_scheduling_...).
    d = 0.01
    profile = engine_profile("vllm", {**NO_OVERHEAD, "max_num_batched_tokens": 100, "async_scheduling": False})
    pools = {"prefill": [Worker("prefill0", "prefill", [RankScheduler(profile, 10_000, role="prefill")],
                                ConstantCost(d), profile)],
             "decode": [Worker("decode0", "decode", [RankScheduler(profile, 10_000, role="decode")],
                               ConstantCost(d), profile)]}
    workload = make_workload(concurrency=3, rate=None, trace=None, num_requests=30, isl=100, osl=40,
                             range_ratio=0.5, seed=1)
    sim = simulate_workers(pools, workload, transfer_s=lambda r: 0.0)
    ttfts = [r.first_token_s - r.arrival_s for r in sim.requests]
    assert max(ttfts) <= 3 * d + 1e-9


class _ShorterRunSteps(ConstantCost):
    """A step costed alone lasts 10 ms; a fast-forwarded run's further steps 1 ms each."""

    def step_s(self, batch, padded_tokens=None):
        return 0.01

    def decode_many_s(self, count, new, means, tokens):
        return np.full(np.shape(means), 0.001)


def test_a_run_planned_up_to_the_next_arrival_even_when_its_steps_are_shorter_than_the_first():
    # r0 (10 + 200 tokens) arrives at 0 and is prefilled in [0, 10 ms]; its decode run starts at
    # 10 ms with a 10 ms first step, then 1 ms steps. r1 arrives at 50.5 ms: the run keeps every
    # step starting before it, the first and 31 more (starts 20, 21, ..., 50 ms), 32 in all. The
    # planner first costs the steps a run no faster than its first step would reach r1 in (6), finds
    # they fall short of it, and costs the whole run (fast_forward.plan).
    from tensor_cast.serving.workload import TraceEntry

    profile = engine_profile("vllm", {**NO_OVERHEAD, "async_scheduling": False})
    worker = Worker("agg0", "agg", [RankScheduler(profile, 10_000)], _ShorterRunSteps(), profile)
    trace = [TraceEntry(0.0, 10, 200), TraceEntry(0.0505, 10, 5)]
    sim = simulate_workers({"agg": [worker]}, make_workload(concurrency=None, rate=None, trace=trace,
                                                            num_requests=None, isl=None, osl=None),
                           record_steps=True)
    assert [(s.steps, s.prefill_tokens, s.decode_seqs) for s in sim.steps[:2]] == [(1, 10, 0), (32, 0, 1)]
    assert sim.steps[1].start_s == pytest.approx(0.01)
    assert (sim.steps[2].start_s, sim.steps[2].prefill_tokens) == (pytest.approx(0.051), 10)  # r1 joins after it


@pytest.mark.parametrize("async_scheduling", [False, True])
def test_a_disaggregated_decode_run_ends_only_where_its_batch_changes(async_scheduling):
    # Closed loop over a prefill worker (steps of 13 ms) and a decode worker (LinearCost: about 1 ms
    # a step), a 4 ms KV transfer, KV to spare. The prefill worker's step ends (and the client's next
    # requests reaching it) land inside the decode worker's fast-forwarded runs but change nothing
    # there: a decode run may end only where a request finishes or a handed-over request joins (its
    # first token is the step start that admits it). Async scheduling: a hand-over landing during a
    # step is polled at the next step's start, which was scheduled without it, and joins the step
    # after; the run goes on through the polling step (its start a POLL event, no run of its own).
    # And the runs give what stepping every step gives (fast_forward=False), to float rounding.
    profile = engine_profile("vllm", {**NO_OVERHEAD, "async_scheduling": async_scheduling})

    def simulate(fast_forward):
        pools = {"prefill": [Worker("prefill0", "prefill", [RankScheduler(profile, 10_000, role="prefill")],
                                    ConstantCost(0.013), profile)],
                 "decode": [Worker("decode0", "decode", [RankScheduler(profile, 10_000, role="decode")],
                                   LinearCost(), profile)]}
        workload = make_workload(concurrency=4, rate=None, trace=None, num_requests=40, isl=100, osl=60,
                                 range_ratio=0.5, seed=3)
        return simulate_workers(pools, workload, transfer_s=lambda r: 0.004, record_steps=True,
                                fast_forward=fast_forward)

    sim, stepped = simulate(True), simulate(False)
    runs = [s for s in sim.steps if s.worker == "decode0"]
    assert sum(s.steps for s in runs) > 2 * len(runs)  # runs of several steps were planned
    changes = {r.first_token_s for r in sim.requests} | {r.finish_s for r in sim.requests}
    for run in runs[1:]:
        assert min(abs(run.start_s - t) for t in changes) < 1e-12, f"a decode run was cut at {run.start_s}"
    for fast, slow in zip(sim.requests, stepped.requests, strict=True):
        assert (fast.first_token_s, fast.finish_s) == pytest.approx((slow.first_token_s, slow.finish_s), rel=1e-12)


def test_sglang_waiting_request_held_by_the_reservation_fast_forwards_exactly():
    # SGLang, page size 1, 300 KV tokens, new_token_ratio 0.5, three 100-token prompts of 50 output
    # tokens each. Step 1 admits r0 and r1 (reserve 100 + 0.5 x 50 = 125 each: 250 <= 300) and r2
    # waits (125 > 300 - 250). At decode step j the free tokens are 100 - 2 (j - 1) and the running
    # pair reserves 0.5 x 2 x (49 - (j - 1)): available = 52 - j < 125, so r2 waits until the pair
    # finishes after 1 prefill + 49 decode steps; it then prefills in step 51 (TTFT 51 d) and
    # decodes 49 more steps: 100 steps in all, which now run as a few fast-forwarded runs.
    d = 0.01
    profile = engine_profile("sglang", {**NO_OVERHEAD, "new_token_ratio": 0.5})
    worker = Worker("agg0", "agg", [RankScheduler(profile, 300)], ConstantCost(d), profile)
    workload = make_workload(concurrency=3, rate=None, trace=None, num_requests=3, isl=100, osl=50)
    sim = simulate_workers({"agg": [worker]}, workload, record_steps=True)
    ttft = sorted(r.first_token_s - r.arrival_s for r in sim.requests)
    assert ttft == pytest.approx([d, d, 51 * d])
    assert sim.num_steps == 100
    assert len(sim.steps) <= 6  # runs planned (52 before: one per step while r2 waited)


@pytest.mark.parametrize(("engine", "blocks"), [("sglang", 6000), ("vllm", 400), ("trtllm", 250)])
def test_fast_forward_past_waiting_requests_equals_step_by_step(monkeypatch, engine, blocks):
    # A batch-dependent cost, KV short enough that requests wait (SGLang's reservation, vLLM's
    # blocks with preemption, TRT-LLM's whole-request reservation): the run with fast-forward gives
    # the same per-request times as one forced to plan every step.
    def simulate():
        profile = engine_profile(engine, NO_OVERHEAD)
        worker = Worker("agg0", "agg", [RankScheduler(profile, blocks)], LinearCost(0.0), profile)
        workload = make_workload(concurrency=16, rate=None, trace=None, num_requests=60, isl=400, osl=300,
                                 range_ratio=0.5, seed=3)
        return simulate_workers({"agg": [worker]}, workload, record_steps=True)

    fast = simulate()
    from tensor_cast.serving import fast_forward
    monkeypatch.setattr(fast_forward, "run_length", lambda worker, batches: 1)
    slow = simulate()
    assert fast.num_steps == slow.num_steps
    assert len(fast.steps) < len(slow.steps) / 2
    for a, b in zip(fast.requests, slow.requests, strict=True):
        assert (a.first_token_s, a.finish_s, a.preemptions) == pytest.approx((b.first_token_s, b.finish_s,
                                                                             b.preemptions), rel=1e-12)


def _adp_disagg_closed_loop(num_requests: int, fast_forward: bool = True, engine: str = "trtllm",
                            knobs: dict | None = None):
    """A prefill worker handing over to a decode worker of three attention-DP ranks (by default the
    TensorRT-LLM profile, synchronous; a batch-dependent LinearCost so that the ranks' step times
    differ, 3 ms KV transfers): a closed loop of 10 clients, prompts 300 +-50 %, outputs 200 +-50 %."""
    profile = engine_profile(engine, {**NO_OVERHEAD, **(knobs if knobs is not None else {"async_scheduling": False})})
    pools = {"prefill": [Worker("prefill0", "prefill", [RankScheduler(profile, 10_000, role="prefill")],
                                LinearCost(0.0), profile)],
             "decode": [Worker("decode0", "decode", [RankScheduler(profile, 10_000, role="decode") for _ in range(3)],
                               LinearCost(0.0), profile)]}
    workload = make_workload(concurrency=10, rate=None, trace=None, num_requests=num_requests, isl=300, osl=200,
                             range_ratio=0.5, seed=2)
    return simulate_workers(pools, workload, transfer_s=lambda r: 3e-3, record_steps=True, fast_forward=fast_forward)


@pytest.mark.parametrize(("engine", "knobs"), [
    ("trtllm", {"async_scheduling": False}),
    ("trtllm", {"adp_balance_timeout_iters": 5, "adp_batching_wait_iters": 2}),  # async, the ADP balance on
    ("sglang", {}),  # async, every step polls
])
def test_attention_dp_decode_pool_fast_forward_equals_step_by_step(engine, knobs):
    # A disaggregated decode pool of three attention-DP ranks (one worker: each step lasts as long as
    # its slowest rank) fed by KV hand-overs from a prefill worker, with a batch-dependent cost so that
    # the ranks' step times differ. Its fast-forwarded runs (every rank's steps costed in one vectorized
    # call; a run cut where a hand-over lands, or, async, after the step whose start polls it; none
    # planned when one lands inside the first step, synchronous) give the same per-request times as the
    # step-by-step path (Python sums vs numpy: 1e-12 relative).
    def simulate(fast_forward):
        return _adp_disagg_closed_loop(40, fast_forward=fast_forward, engine=engine, knobs=knobs)

    fast, slow = simulate(True), simulate(False)
    assert fast.num_steps == slow.num_steps
    runs = [s for s in fast.steps if s.worker == "decode0" and s.steps > 1]
    assert runs and max(s.steps for s in runs) > 10  # fast-forward ran (the comparison proves something)
    for a, b in zip(fast.requests, slow.requests, strict=True):
        assert (a.first_token_s, a.finish_s) == pytest.approx((b.first_token_s, b.finish_s), rel=1e-12)
    assert fast.itl_durations.sum() == pytest.approx(slow.itl_durations.sum(), rel=1e-12)


def test_attention_dp_runs_costed_lazily_equal_runs_costed_whole(monkeypatch):
    # fast_forward.plan costs a run with nothing queued to bound it only up to LAZY_STEPS steps and
    # the rest later (fast_forward.extend): when the run gets past them (its provisional STEP_END), or
    # when a hand-over pushed later lands past them — inside the run (it is cut there) or past its
    # last step's start (it stands, and its end is where the whole run ends). With several
    # attention-DP ranks (the vectorized route), every request's times, the steps and the ITL
    # samples are the same numbers as with every run costed whole.
    from tensor_cast.serving import fast_forward

    outcomes = []  # per cut asked of a run not costed to its end: (extended by it, cut)
    cut = fast_forward.cut

    def watching(worker, time):
        partial, version = len(worker.run_durations) < worker.ff_steps, worker.version
        poll = cut(worker, time)
        if partial:
            outcomes.append((len(worker.run_durations) >= worker.ff_steps, worker.version != version))
        return poll

    monkeypatch.setattr(fast_forward, "cut", watching)

    def simulate(lazy):
        monkeypatch.setattr(fast_forward, "LAZY_STEPS", lazy)
        return _adp_disagg_closed_loop(60)

    lazy, whole = simulate(1), simulate(10**9)
    assert (True, True) in outcomes and (True, False) in outcomes  # extended, then cut / left standing
    assert max(s.steps for s in whole.steps) > 10  # long runs were planned
    assert [(r.first_token_s, r.finish_s) for r in lazy.requests] == \
        [(r.first_token_s, r.finish_s) for r in whole.requests]
    assert lazy.itl_durations.tobytes() == whole.itl_durations.tobytes()
    assert [(s.start_s, s.duration_s, s.steps) for s in lazy.steps] == \
        [(s.start_s, s.duration_s, s.steps) for s in whole.steps]
