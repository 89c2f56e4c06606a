"""The serving simulator against hand-derived results: constant step costs, closed forms,
Little's law, scheduler limits, preemption, disaggregation, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from serving_costs import ConstantCost

from tensor_cast.errors import InvalidArgumentError
from tensor_cast.serving.engines import engine_profile
from tensor_cast.serving.report import ServingReport
from tensor_cast.serving.scheduler import RankScheduler
from tensor_cast.serving.simulator import Worker, simulate_workers
from tensor_cast.serving.workload import Request, TraceEntry, Workload, make_workload

NO_OVERHEAD = {"step_overhead_s": 0.0, "seq_overhead_s": 0.0, "request_overhead_s": 0.0}


def run(engine="vllm", *, d=0.01, blocks=100_000, engine_args=None, fast_forward=True, **workload):
    profile = engine_profile(engine, {**NO_OVERHEAD, **(engine_args or {})})
    worker = Worker("agg0", "agg", [RankScheduler(profile, blocks)], ConstantCost(d), profile)
    sim = simulate_workers({"agg": [worker]}, make_workload(**{"concurrency": None, "rate": None, "trace": None,
                                                                "num_requests": None, **workload}),
                           fast_forward=fast_forward)
    return sim, ServingReport.build(sim, model="m", device="dev", engine=engine, deployment="1 GPU", num_gpus=1,
                                    workload={}, block_size=profile.block_size, notes=[])


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_closed_loop_with_constant_steps_follows_closed_form(engine):
    c, isl, osl, d, waves = 8, 100, 50, 0.01, 3
    sim, rep = run(engine, d=d, concurrency=c, num_requests=waves * c, isl=isl, osl=osl)
    # c x isl = 800 tokens fit one step's budget: every wave prefills in one step (first token at d),
    # then osl - 1 decode steps of d each; the next wave starts when the previous finishes.
    assert rep.mean_ttft_s == pytest.approx(d)
    assert rep.mean_tpot_s == pytest.approx(d)
    assert rep.e2e.mean == pytest.approx(osl * d)
    assert rep.duration_s == pytest.approx(waves * osl * d)
    assert rep.output_tokens_per_s == pytest.approx(c / d)
    # Little's law: requests in the system = throughput (requests/s) x mean time in the system
    assert (waves * c / rep.duration_s) * rep.e2e.mean == pytest.approx(c)
    assert sim.num_steps == waves * osl
    assert rep.itl.mean == pytest.approx(d)


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_overheads_add_per_step_per_sequence_and_per_request(engine):
    c, isl, osl, d, waves = 8, 100, 50, 0.01, 3
    a, b, r = 0.002, 1e-4, 0.005  # per step, per sequence in the step, per request (front end)
    sim, rep = run(engine, d=d, concurrency=c, num_requests=waves * c, isl=isl, osl=osl,
                   engine_args={"step_overhead_s": a, "seq_overhead_s": b, "request_overhead_s": r,
                                "host_overlap": False})  # vLLM's default overlaps (test below)
    # every step holds the whole wave of c sequences (one prefill step, then osl - 1 decodes):
    step = d + a + b * c  # 12.8 ms
    assert rep.mean_ttft_s == pytest.approx(r + step)
    assert rep.mean_tpot_s == pytest.approx(step)
    assert rep.e2e.mean == pytest.approx(r + osl * step)
    assert rep.duration_s == pytest.approx(waves * (r + osl * step))
    assert sim.num_steps == waves * osl


@pytest.mark.parametrize(("d", "step"), [(0.01, 0.01), (0.001, 0.0028)])
@pytest.mark.parametrize("fast_forward", [True, False])
def test_overlapped_host_overhead_hides_behind_the_kernels_until_it_is_longer(d, step, fast_forward):
    # vLLM's async scheduler prepares step n + 1 while step n runs: a step lasts max(kernels, host),
    # host = a + b x c = 2 ms + 0.1 ms x 8 = 2.8 ms; kernels of 10 ms hide it, kernels of 1 ms do not
    c, isl, osl, waves, a, b = 8, 100, 50, 3, 0.002, 1e-4
    sim, rep = run("vllm", d=d, concurrency=c, num_requests=waves * c, isl=isl, osl=osl, fast_forward=fast_forward,
                   engine_args={"step_overhead_s": a, "seq_overhead_s": b})
    assert engine_profile("vllm").host_overlap
    assert rep.mean_tpot_s == pytest.approx(step)
    assert rep.mean_ttft_s == pytest.approx(step)  # the wave's prefill step, overlapped the same way
    assert rep.duration_s == pytest.approx(waves * osl * step)
    assert sim.num_steps == waves * osl


def test_host_overlap_needs_the_async_scheduler_and_combines_floats_and_arrays():
    # a synchronous engine runs its host work between steps: the overhead adds whatever host_overlap says
    assert engine_profile("vllm", {"async_scheduling": False}).step_s(0.004, 0.003) == pytest.approx(0.007)
    with pytest.raises(InvalidArgumentError, match="host_overlap must be true or false"):
        engine_profile("vllm", {"host_overlap": 1})
    assert not engine_profile("sglang").host_overlap and not engine_profile("trtllm").host_overlap
    vllm, added = engine_profile("vllm"), engine_profile("vllm", {"host_overlap": False})
    assert vllm.step_s(0.004, 0.003) == 0.004 and vllm.step_s(0.002, 0.003) == 0.003
    assert added.step_s(0.004, 0.003) == pytest.approx(0.007)
    assert list(vllm.step_s(np.array([0.004, 0.002]), np.array([0.003, 0.003]))) == [0.004, 0.003]


def test_engine_defaults_carry_the_fitted_overheads_and_reject_negative_ones():
    from tensor_cast.errors import InvalidArgumentError

    for name in ("vllm", "sglang", "trtllm"):
        profile = engine_profile(name)
        assert "fitted" in profile.sources["step_overhead_s, seq_overhead_s"]
        assert profile.overhead_s(10) == pytest.approx(profile.step_overhead_s + 10 * profile.seq_overhead_s)
        assert 0 < profile.overhead_s(1) < 5e-3  # sub-millisecond host work, not a kernel
    with pytest.raises(InvalidArgumentError, match="seq_overhead_s"):
        engine_profile("vllm", {"seq_overhead_s": -1e-6})
    with pytest.raises(InvalidArgumentError, match="step_overhead_s must be a number"):
        engine_profile("sglang", {"step_overhead_s": "1ms"})


def test_poisson_light_load_has_no_queueing():
    d, osl = 0.001, 10
    _, rep = run(d=d, rate=1.0, num_requests=50, isl=64, osl=osl, seed=3)
    # arrivals 1 s apart on average, a request lasts 10 ms: almost never two at once
    assert rep.p90_ttft_s == pytest.approx(d)
    assert rep.mean_tpot_s == pytest.approx(d)


def test_vllm_step_respects_token_budget_and_max_num_seqs():
    profile = engine_profile("vllm", {"max_num_batched_tokens": 100, "max_num_seqs": 3})
    rank = RankScheduler(profile, 10_000)
    for i in range(10):
        rank.add(Request(i, 0.0, 250, 5))
    sizes = []
    for _ in range(12):
        batch = rank.schedule()
        assert sum(n for _, n in batch) <= 100
        assert len(rank.running) <= 3
        sizes.append([(r.rid, n) for r, n in batch])
        rank.complete(batch, 0.0)
    # chunked prefill of 250-token prompts through a 100-token budget, FCFS, decodes first
    assert sizes[:4] == [[(0, 100)], [(0, 100)], [(0, 50), (1, 50)], [(0, 1), (1, 99)]]


def test_sglang_prefill_first_pauses_decodes_trtllm_waits_for_a_whole_prompt():
    sg = RankScheduler(engine_profile("sglang", {"max_num_batched_tokens": 100}), 10_000)
    sg.add(Request(0, 0.0, 50, 5))
    sg.complete(sg.schedule(), 0.0)  # r0 prefilled, now decoding
    sg.add(Request(1, 0.0, 50, 5))
    assert [(r.rid, n) for r, n in sg.schedule()] == [(1, 50)]  # prefill-only step, r0 waits
    tr = RankScheduler(engine_profile("trtllm", {"max_num_batched_tokens": 100}), 10_000)
    tr.add(Request(0, 0.0, 150, 5))  # no context chunking by default: a 150-token prompt never fits 100
    assert tr.schedule() == []


def test_preemption_by_recompute_when_kv_runs_short():
    # 10 blocks x 16 tokens = 160 tokens of KV; two requests of 64 + 64 tokens need 256
    sim, rep = run("vllm", blocks=10, concurrency=2, num_requests=2, isl=64, osl=64)
    assert rep.preemptions > 0
    assert all(r.output_tokens == 64 for r in rep.requests)
    # TRT-LLM's GUARANTEED_NO_EVICT admits only what fits whole: no preemption, one at a time
    _, tr = run("trtllm", blocks=5, concurrency=2, num_requests=2, isl=64, osl=64)  # 5 x 32 = 160 tokens
    assert tr.preemptions == 0
    assert sorted(r.ttft_s for r in tr.requests)[1] >= 64 * 0.01  # the second waits for the first to finish


@pytest.mark.parametrize("fast_forward", [True, False])
@pytest.mark.parametrize("blocks", [220, 221])
def test_sglang_retracts_the_latest_request_when_a_decode_step_runs_out_of_kv(blocks, fast_forward):
    # SGLang: one-token pages, admission reserves need + 0.7 x output = 64 + 44.8 per request, so
    # both 64-token prompts are admitted into 220 (221) tokens and prefill in one step (t = 0.01).
    # Decode step j holds 2 x (64 + j) tokens: step 46 fits, step 47 does not; the first request
    # then finds no free block (220: the second is retracted for it) or takes the last one (221:
    # the second, short of one, retracts itself). Either way the retracted one is the second
    # (fewest outputs, 47 each, then the latest). The first runs its 63 decode steps alone
    # (done at 64 x 0.01); the second waits (its reservation, 111 + 0.7 x 17, exceeds what the
    # first leaves), then recomputes its 64 + 47 tokens in one step that samples its 48th token,
    # and decodes 16 more: done at 0.64 + 17 x 0.01.
    _, rep = run("sglang", blocks=blocks, concurrency=2, num_requests=2, isl=64, osl=64, fast_forward=fast_forward)
    assert rep.preemptions == 1
    first, second = sorted(rep.requests, key=lambda r: r.e2e_s)
    assert all(r.output_tokens == 64 and r.ttft_s == pytest.approx(0.01) for r in rep.requests)
    assert first.e2e_s == pytest.approx(0.64) and second.e2e_s == pytest.approx(0.81)


def test_disagg_ttft_adds_the_kv_transfer():
    d, x = 0.01, 0.005
    profile = engine_profile("vllm", NO_OVERHEAD)
    pools = {"prefill": [Worker("prefill0", "prefill", [RankScheduler(profile, 10_000, role="prefill")],
                                ConstantCost(d), profile)],
             "decode": [Worker("decode0", "decode", [RankScheduler(profile, 10_000, role="decode")],
                               ConstantCost(d), profile)]}
    workload = make_workload(concurrency=1, rate=None, trace=None, num_requests=2, isl=100, osl=20)
    sim = simulate_workers(pools, workload, transfer_s=lambda r: x)
    first = sim.requests[0]
    assert first.first_token_s - first.arrival_s == pytest.approx(d + x)  # prefill step + transfer
    # the decode worker emits tokens 2..20: 19 steps after the KV arrived
    assert first.finish_s - first.first_token_s == pytest.approx(19 * d)


def test_speculative_decoding_emits_accepted_tokens_per_step():
    profile = engine_profile("vllm", NO_OVERHEAD)
    e = 1.85  # one MTP draft accepted 85 % of the time: 1 + 0.85 tokens per step
    worker = Worker("agg0", "agg", [RankScheduler(profile, 10_000, decode_tokens=2, tokens_per_step=e)],
                    ConstantCost(0.01), profile)
    sim = simulate_workers({"agg": [worker]}, make_workload(concurrency=1, rate=None, trace=None, num_requests=1,
                                                            isl=10, osl=38))
    # 1 token from the prefill step, then ceil(37 / 1.85) = 20 decode steps
    assert sim.num_steps == 1 + 20


def test_disagg_decode_queue_wait_is_ttft_not_tpot():
    d, x = 0.01, 0.005
    profile = engine_profile("vllm", NO_OVERHEAD)
    # the decode worker's 8 blocks x 16 tokens hold one request of 100 + 20 tokens, not two
    pools = {"prefill": [Worker("prefill0", "prefill", [RankScheduler(profile, 10_000, role="prefill")],
                                ConstantCost(d), profile)],
             "decode": [Worker("decode0", "decode", [RankScheduler(profile, 8, role="decode")],
                               ConstantCost(d), profile)]}
    workload = make_workload(concurrency=2, rate=None, trace=None, num_requests=2, isl=100, osl=20)
    sim = simulate_workers(pools, workload, transfer_s=lambda r: x)
    first, second = sim.requests
    assert first.first_token_s == pytest.approx(d + x)
    # the second waits on the decode side until the first's 19 decode steps free its blocks
    assert second.first_token_s == pytest.approx(d + x + 19 * d)
    assert second.finish_s - second.first_token_s == pytest.approx(19 * d)


@pytest.mark.parametrize("fast_forward", [True, False])
@pytest.mark.parametrize("prebuilt, expected", [
    # SGLang through 0.5.8: an arrived request gets a prebuilt iteration of its own (no forward: the
    # step overhead o only) that ends with its first token, while the rank's running requests wait
    (True, [(0.019, 0.249), (0.069, 0.297)]),
    # the same-iteration merge (SGLang PR #19568): it joins the next decode step, first token at its start
    (False, [(0.017, 0.245), (0.065, 0.293)]),
])
def test_sglang_disagg_decode_takes_an_arrived_request_in_a_prebuilt_iteration(prebuilt, expected, fast_forward):
    # sync scheduling, step d + o = 12 ms (o = 2 ms of host overhead), transfer x = 5 ms; r0 at 0, r1 at
    # 0.045, each 100 + 20 tokens. r0: prefill ends at 0.012, KV at the decode worker at 0.017. Prebuilt:
    # its iteration 0.017-0.019 (first token), then 19 decode steps: 0.019 + 19 x 0.012 = 0.249. r1: KV
    # at 0.045 + 0.017 = 0.062, inside r0's step 0.055-0.067; prebuilt 0.067-0.069 (r0 waits), then
    # 19 steps: 0.297; r0 had 4 of its decode steps, 15 left from 0.069: 0.249. Merged instead: r0
    # decodes from 0.017 (0.245); r1 joins at the step boundary 0.065 (0.293).
    knobs = {"step_overhead_s": 0.002, "seq_overhead_s": 0.0, "request_overhead_s": 0.0,
             "async_scheduling": False, "prebuilt_iteration": prebuilt}
    profile = engine_profile("sglang", knobs)
    pools = {role: [Worker(f"{role}0", role, [RankScheduler(profile, 10_000, role=role)], ConstantCost(0.01), profile)]
             for role in ("prefill", "decode")}
    workload = make_workload(concurrency=None, rate=None, num_requests=None, isl=None, osl=None,
                             trace=[TraceEntry(0.0, 100, 20), TraceEntry(0.045, 100, 20)])
    sim = simulate_workers(pools, workload, transfer_s=lambda r: 0.005, fast_forward=fast_forward)
    for req, (first_token_s, finish_s) in zip(sim.requests, expected, strict=True):
        assert req.first_token_s == pytest.approx(first_token_s) and req.finish_s == pytest.approx(finish_s)
        assert req.generated == pytest.approx(20)  # the prebuilt iteration emits no token
    with pytest.raises(InvalidArgumentError, match="prebuilt_iteration"):
        engine_profile("vllm", {"prebuilt_iteration": True})


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
@pytest.mark.parametrize("async_scheduling", [True, False])
def test_async_scheduling_new_request_waits_for_the_step_in_flight(engine, async_scheduling):
    # Open-loop trace, constant step d. r0 (20 output tokens) arrives at 0 on an idle engine:
    # prefilled in step 1 [0, d]. r1 arrives at 0.5 d, during step 1. Synchronously, step 2 [d, 2d]
    # admits it: first token at 2d, TTFT 1.5 d. With async scheduling, step 2 was scheduled while
    # step 1 ran (r0's decode alone), so r1 is first scheduled in step 3 [2d, 3d]: TTFT 2.5 d, one
    # step more. r2 arrives at 30 d, after r0 finished (20 d): an idle engine runs it at once (d).
    from tensor_cast.serving.workload import TraceEntry

    d = 0.01
    trace = [TraceEntry(0.0, 10, 20), TraceEntry(0.5 * d, 10, 5), TraceEntry(30 * d, 10, 5)]
    _, rep = run(engine, d=d, trace=trace, isl=None, osl=None, engine_args={"async_scheduling": async_scheduling})
    ttft = [r.ttft_s for r in sorted(rep.requests, key=lambda r: r.arrival_s)]
    assert ttft == pytest.approx([d, (2.5 if async_scheduling else 1.5) * d, d])


class _AShortAndALongClient(Workload):
    """Two closed-loop clients: A's request has 10 output tokens, B's 3, then B's next request 3."""

    def lengths(self):
        return [(10, 10), (10, 3), (10, 3)]


def test_closed_loop_follow_up_misses_the_schedule_made_as_its_reply_went_out():
    # Closed loop of 2 clients, constant step d, vLLM; client A's request has 10 output tokens,
    # client B's 3: B's request is prefilled in step 1 [0, d] and decodes in steps 2-3, finishing at
    # 3d while A still decodes. The engine loops (vLLM EngineCore.step / step_with_batch_queue, SGLang
    # event_loop_normal / event_loop_overlap, TensorRT-LLM's executor loop) send step 3's tokens and
    # schedule the next step at once, before B's client can answer, so B's next request, sent at 3d,
    # misses that schedule. Synchronously that schedule is step 4's [3d, 4d]: the request joins step 5,
    # TTFT 2 d. With async scheduling step 4 was scheduled while step 3 ran and the one made at 3d is
    # step 5's: the request joins step 6, TTFT 3 d.
    d = 0.01
    for async_scheduling, steps in ((True, 3), (False, 2)):
        profile = engine_profile("vllm", {**NO_OVERHEAD, "async_scheduling": async_scheduling})
        worker = Worker("agg0", "agg", [RankScheduler(profile, 10_000)], ConstantCost(d), profile)
        sim = simulate_workers({"agg": [worker]}, _AShortAndALongClient("closed", num_requests=3, concurrency=2),
                               record_steps=True)
        follow_up = sim.requests[2]
        assert follow_up.arrival_s == pytest.approx(3 * d)
        assert follow_up.first_token_s - follow_up.arrival_s == pytest.approx(steps * d)
        # the steps before its own carry A's decode alone
        between = [s for s in sim.steps if 3 * d - 1e-12 <= s.start_s < (3 + steps) * d - 1e-12]
        assert [(s.prefill_tokens, s.decode_seqs) for s in between] == [(0, 1)] * (steps - 1) + [(10, 1)]


def test_a_request_reaching_the_engine_just_after_the_reply_waits_as_a_latecomer_does():
    # The same closed loop with a front end of 1 us (the request reaches the engine core just after
    # step 4 started): the TTFT is that microsecond plus what a request at the step's very start
    # waits, i.e. the same steps: the instant of the reply is not a special case.
    d = 0.01
    for async_scheduling in (True, False):
        ttft = []
        for front_end in (0.0, 1e-6):
            profile = engine_profile("vllm", {**NO_OVERHEAD, "async_scheduling": async_scheduling,
                                              "request_overhead_s": front_end})
            worker = Worker("agg0", "agg", [RankScheduler(profile, 10_000)], ConstantCost(d), profile)
            sim = simulate_workers({"agg": [worker]}, _AShortAndALongClient("closed", num_requests=3, concurrency=2))
            ttft.append(sim.requests[2].first_token_s - sim.requests[2].arrival_s)
        assert ttft[1] == pytest.approx(ttft[0], abs=2e-6)


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_the_default_front_end_adds_10_ms_to_every_request_and_to_the_client_cycle(engine):
    # engines.py "Overheads": every engine's front end is 10 ms by default (vllm-project/vllm PR #54628
    # measured the benchmark client's TTFT 8.4-12.2 ms above the server's). One client, 3 requests of 10
    # tokens out on an otherwise idle engine with 10 ms steps: each request reaches the engine 10 ms
    # after it was sent and is scheduled at once (1 prefill step + 9 decode steps), so every TTFT is
    # 10 ms + d and every cycle (E2E) 10 ms + 10 d; the client's next request goes out as the last
    # token arrives, so request k is sent at k x (10 ms + 10 d).
    d, front_end = 0.01, 10e-3
    profile = engine_profile(engine, {"step_overhead_s": 0.0, "seq_overhead_s": 0.0})
    assert profile.request_overhead_s == front_end
    worker = Worker("agg0", "agg", [RankScheduler(profile, 10_000)], ConstantCost(d), profile)
    sim = simulate_workers({"agg": [worker]}, make_workload(concurrency=1, rate=None, trace=None, num_requests=3,
                                                            isl=100, osl=10))
    cycle = front_end + 10 * d
    for k, r in enumerate(sorted(sim.requests, key=lambda r: r.arrival_s)):
        assert r.arrival_s == pytest.approx(k * cycle)
        assert r.first_token_s - r.arrival_s == pytest.approx(front_end + d)
        assert r.finish_s - r.arrival_s == pytest.approx(cycle)


def test_eager_launch_host_time_floors_steps_run_without_cuda_graphs():
    # host_floor_s: launches x host time for a step with prefill tokens that runs without graphs
    vllm = engine_profile("vllm", {"eager_launch_host_s": 20e-6, "eager_beyond_graphs": True})
    trtllm = engine_profile("trtllm", {"eager_launch_host_s": 20e-6})
    assert vllm.graph_prefill and not trtllm.graph_prefill
    assert vllm.host_floor_s(prefill_tokens=1000, step_tokens=1003, launches=1000) == pytest.approx(0.02)
    assert vllm.host_floor_s(prefill_tokens=500, step_tokens=512, launches=1000) == 0.0  # within vLLM's graphs
    # vLLM's default: piecewise-compiled steps beyond the graphs are not charged; FULL_DECODE_ONLY
    # (no prefill graphs) charges every step with prefill tokens, small ones too
    default = engine_profile("vllm", {"eager_launch_host_s": 20e-6})
    assert not default.eager_beyond_graphs and default.host_floor_s(1000, 1003, 1000) == 0.0
    decode_only = engine_profile("vllm", {"eager_launch_host_s": 20e-6, "graph_prefill": False})
    assert decode_only.host_floor_s(prefill_tokens=500, step_tokens=512, launches=1000) == pytest.approx(0.02)
    assert decode_only.host_floor_s(prefill_tokens=0, step_tokens=64, launches=1000) == 0.0  # decode: a graph
    assert trtllm.host_floor_s(prefill_tokens=500, step_tokens=512, launches=1000) == pytest.approx(0.02)
    assert trtllm.host_floor_s(prefill_tokens=0, step_tokens=64, launches=1000) == 0.0  # pure decode: a graph
    assert engine_profile("vllm").host_floor_s(1000, 1000, 1000) == 0.0  # off by default
    with pytest.raises(InvalidArgumentError, match="eager_launch_host_s"):
        engine_profile("vllm", {"eager_launch_host_s": -1e-6})

    # in the simulator: one client, 1000-token prompt, 1,000 launches x 20 us = 20 ms > d = 10 ms:
    # the prefill step takes 20 ms (TTFT), the decode steps d (TPOT)
    class Launching(ConstantCost):
        launches = 1000

    d = 0.01
    profile = engine_profile("vllm", {**NO_OVERHEAD, "eager_launch_host_s": 20e-6, "graph_prefill": False})
    worker = Worker("agg0", "agg", [RankScheduler(profile, 10_000)], Launching(d), profile)
    sim = simulate_workers({"agg": [worker]}, make_workload(concurrency=1, rate=None, trace=None, num_requests=2,
                                                            isl=1000, osl=5))
    rep = ServingReport.build(sim, model="m", device="dev", engine="vllm", deployment="1 GPU", num_gpus=1,
                              workload={}, block_size=profile.block_size, notes=[])
    assert rep.mean_ttft_s == pytest.approx(0.02)
    assert rep.mean_tpot_s == pytest.approx(d)


def test_engines_default_host_time_per_eager_launch_is_the_cited_measurement():
    # TensorRT-LLM: "CPU dispatch interval (~35us)" per kernel of its PyTorch flow (PR #12653)
    assert engine_profile("trtllm").eager_launch_host_s == pytest.approx(35e-6)
    # SGLang: an eager 1-token DeepSeek-V3 prefill step took 82.6 ms (PR #12160); at tensor_cast's
    # 1,929 launches for DeepSeek-V3 TP8 the default floor gives that step back within 0.5 %
    sglang = engine_profile("sglang")
    assert sglang.host_floor_s(prefill_tokens=1, step_tokens=1, launches=1929) == pytest.approx(82.6e-3, rel=5e-3)
    assert sglang.host_floor_s(prefill_tokens=0, step_tokens=64, launches=1929) == 0.0  # decode: a CUDA graph
    # vLLM: AIConfigurator's ~60 us between eager launches, charged only where no graph covers a
    # prefill step (FULL_DECODE_ONLY): a 1,607-launch step (Llama-3.1-70B FP8 TP8) floors at 96.4 ms
    vllm = engine_profile("vllm")
    assert vllm.eager_launch_host_s == pytest.approx(60e-6)
    assert vllm.host_floor_s(prefill_tokens=884, step_tokens=887, launches=1607) == 0.0  # piecewise-compiled
    decode_only = engine_profile("vllm", {"graph_prefill": False})
    assert decode_only.host_floor_s(prefill_tokens=884, step_tokens=887, launches=1607) == pytest.approx(96.42e-3)
    assert engine_profile("trtllm", {"eager_launch_host_s": 0}).host_floor_s(1000, 1000, 1000) == 0.0

    # in the simulator, with the defaults: one client, a 1000-token prompt, 1,000 launches, GPU
    # steps of d = 10 ms: TensorRT-LLM's eager context step lasts 1,000 x 35 us = 35 ms (TTFT),
    # its generation steps replay graphs (d each); vLLM's stays at d (no floor)
    class Launching(ConstantCost):
        launches = 1000

    d = 0.01
    for engine, ttft in (("trtllm", 0.035), ("sglang", 0.043), ("vllm", d)):
        profile = engine_profile(engine, NO_OVERHEAD)
        worker = Worker("agg0", "agg", [RankScheduler(profile, 10_000)], Launching(d), profile)
        sim = simulate_workers({"agg": [worker]}, make_workload(concurrency=1, rate=None, trace=None,
                                                                num_requests=2, isl=1000, osl=5))
        rep = ServingReport.build(sim, model="m", device="dev", engine=engine, deployment="1 GPU", num_gpus=1,
                                  workload={}, block_size=profile.block_size, notes=[])
        assert rep.mean_ttft_s == pytest.approx(ttft), engine
        assert rep.mean_tpot_s == pytest.approx(d), engine


def balanced_run(balance, trace, *, fast_forward=True, batching=0, d=0.01):
    """Two attention-DP ranks of TensorRT-LLM (async scheduling off, no overheads) stepping a
    constant d, with the attention-DP balance timeout `balance` (0: off)."""
    from tensor_cast.serving.workload import TraceEntry

    profile = engine_profile("trtllm", {**NO_OVERHEAD, "async_scheduling": False,
                                        "adp_balance_timeout_iters": balance, "adp_batching_wait_iters": batching})
    ranks = [RankScheduler(profile, 100_000), RankScheduler(profile, 100_000)]
    worker = Worker("agg0", "agg", ranks, ConstantCost(d), profile)
    entries = [TraceEntry(t * d, 10, out) for t, out in trace]
    return simulate_workers({"agg": [worker]}, make_workload(concurrency=None, rate=None, trace=entries,
                                                             num_requests=None, isl=None, osl=None),
                            fast_forward=fast_forward)


@pytest.mark.parametrize("fast_forward", [True, False])
def test_attention_dp_balance_holds_a_lone_request_until_the_timeout(fast_forward):
    d, timeout = 0.01, 20
    # A and B (round robin: ranks 0 and 1) arrive at 0 and prefill together in the step at 0 (every
    # rank ready: the counter resets). C reaches rank 0 at 10.5 d: rank 1 has nothing to prefill, so
    # C waits while the counter grows by one per step (the step starting at (j-1) d is iteration j,
    # counter j - 1) until it reaches the timeout: the step starting at 20 d admits C, whose first
    # token comes at 21 d (TTFT 10.5 d). Without the balance C joins the step at 11 d (TTFT 1.5 d).
    trace = [(0, 100), (0, 100), (10.5, 50)]
    held = balanced_run(timeout, trace, fast_forward=fast_forward).requests
    free = balanced_run(0, trace, fast_forward=fast_forward).requests
    assert held[2].first_token_s - held[2].arrival_s == pytest.approx(10.5 * d)
    assert free[2].first_token_s - free[2].arrival_s == pytest.approx(1.5 * d)
    assert held[0].first_token_s == pytest.approx(d) and held[1].first_token_s == pytest.approx(d)
    # D reaches rank 1 at 14.5 d: at 15 d both ranks have a request ready, so C and D prefill together
    both = balanced_run(timeout, [*trace, (14.5, 50)], fast_forward=fast_forward).requests
    assert both[2].first_token_s == pytest.approx(16 * d) and both[3].first_token_s == pytest.approx(16 * d)


def test_attention_dp_balance_batching_wait_holds_ready_ranks_that_generate():
    d = 0.01
    # C (rank 0) and D (rank 1) both arrive at 10.5 d, every rank generating: with batching_wait_iters
    # 3 the ready ranks are held 3 iterations (11 d, 12 d, 13 d) and admitted in the step at 14 d
    reqs = balanced_run(60, [(0, 100), (0, 100), (10.5, 50), (10.5, 50)], batching=3).requests
    assert reqs[2].first_token_s == pytest.approx(15 * d) and reqs[3].first_token_s == pytest.approx(15 * d)


def test_attention_dp_balance_knobs_reject_negative_values():
    for knob in ("adp_balance_timeout_iters", "adp_batching_wait_iters"):
        with pytest.raises(InvalidArgumentError, match=f"{knob} must be an integer >= 0"):
            engine_profile("trtllm", {knob: -1})


def test_trtllm_postprocess_workers_drop_the_fitted_overhead():
    # engines.py "Overheads": the TensorRT-LLM overhead was fitted on Dynamo-served rows (no
    # post-processing workers); with trtllm-serve's workers it is not charged
    trtllm = engine_profile("trtllm")
    assert trtllm.overhead_s(4) == pytest.approx(1.02e-3 + 4 * 4.6e-6)
    assert engine_profile("trtllm", {"postprocess_workers": 2}).overhead_s(4) == 0.0
    with pytest.raises(InvalidArgumentError, match="postprocess_workers is TensorRT-LLM's"):
        engine_profile("vllm", {"postprocess_workers": 2})
    with pytest.raises(InvalidArgumentError, match="postprocess_workers must be an integer >= 0"):
        engine_profile("trtllm", {"postprocess_workers": -1})

    # in the simulator, one client decoding alone: TPOT = d + the overhead without workers, d with
    d = 0.005
    fitted = {"step_overhead_s": 1.02e-3, "seq_overhead_s": 4.6e-6}
    tpots = [run("trtllm", d=d, blocks=10_000, engine_args={**fitted, "postprocess_workers": workers},
                 concurrency=1, num_requests=1, isl=100, osl=20)[1].mean_tpot_s for workers in (0, 4)]
    assert tpots[0] == pytest.approx(d + 1.02e-3 + 4.6e-6)  # overlap scheduler: host work adds (host_overlap off)
    assert tpots[1] == pytest.approx(d)


@pytest.mark.parametrize("prefix_caching", [True, False])
def test_vllm_preempted_request_recomputes_only_what_the_prefix_cache_evicted(prefix_caching):
    # 10 blocks of 16 tokens; r0 and r1: 64-token prompts (4 blocks each). They decode in step until
    # both hold 80 tokens (5 blocks each, the pool full); r0's 81st token needs a 6th block, so r1 is
    # preempted (generated 17: recompute target 64 + 17 = 81 tokens). Its 5 full blocks stay cached
    # behind the 0 blocks that were free; every block r0 allocates after that evicts one of them, its
    # last first: r0 grows to 7 blocks (tokens 81-112), evicting 2. r0 (40 output tokens) finishes at
    # 103 tokens; r1 is scheduled again with 3 blocks (48 tokens) still cached and recomputes 81 - 48
    # = 33 tokens. Without the prefix cache it recomputes all 81.
    vllm = engine_profile("vllm", {"max_num_batched_tokens": 1000, "prefix_caching": prefix_caching})
    rank = RankScheduler(vllm, 10)
    r0, r1 = Request(0, 0.0, 64, 40), Request(1, 0.0, 64, 40)
    rank.add(r0)
    rank.add(r1)
    readmitted = None
    for _ in range(200):
        batch = rank.schedule()
        if r1.preemptions and any(r is r1 for r, _ in batch):
            readmitted = dict((r.rid, n) for r, n in batch)[1]
            break
        rank.complete(batch, 0.0)
    assert r1.preemptions == 1 and r0.done
    assert readmitted == (33 if prefix_caching else 81)
    assert r1.computed == (48 if prefix_caching else 0)  # what the step computes on top of
    assert rank.used_blocks == 6  # ceil(81 / 16) blocks either way (r0 finished and freed its 7)
    assert rank.victims == []
