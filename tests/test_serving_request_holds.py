"""Knobs that hold new requests back while decodes run, against TTFTs derived by hand on a
constant-step engine: TensorRT-LLM's batch waiting (`batch_wait_timeout_iters`,
`batch_wait_max_tokens_ratio`) and SGLang's receive interval (`scheduler_recv_interval`); and
TensorRT-LLM's CUDA-graph batch sizes (`trtllm_graph_sizes`)."""

from __future__ import annotations

import numpy as np
import pytest
from serving_costs import ConstantCost, LinearCost

from tensor_cast.errors import InvalidArgumentError
from tensor_cast.serving.engines import engine_profile, trtllm_graph_sizes
from tensor_cast.serving.scheduler import RankScheduler
from tensor_cast.serving.simulator import Worker, simulate_workers
from tensor_cast.serving.workload import TraceEntry, make_workload

D = 0.01  # every step lasts D seconds
NO_OVERHEAD = {"step_overhead_s": 0.0, "seq_overhead_s": 0.0, "request_overhead_s": 0.0}


def ttfts(engine, args, trace, *, ranks=1, fast_forward=True):
    """TTFT (in steps of D) of each request of `trace` [(arrival in steps, prompt, output)]."""
    profile = engine_profile(engine, {**NO_OVERHEAD, **args})
    worker = Worker("agg0", "agg", [RankScheduler(profile, 100_000) for _ in range(ranks)], ConstantCost(D), profile)
    entries = [TraceEntry(t * D, prompt, output) for t, prompt, output in trace]
    sim = simulate_workers({"agg": [worker]}, make_workload(concurrency=None, rate=None, trace=entries,
                                                            num_requests=None, isl=None, osl=None),
                           fast_forward=fast_forward)
    return [round((r.first_token_s - r.arrival_s) / D, 9) for r in sim.requests]


TRT = {"async_scheduling": False}  # a request reaching the engine between steps joins the next schedule


@pytest.mark.parametrize("fast_forward", [True, False])
def test_batch_wait_holds_a_new_context_for_the_timeout(fast_forward):
    # A (10-token prompt) prefills in the step at 0 and decodes from D on. B arrives at 10.5 D; the
    # step at 11 D would schedule it beside A's decode: 10 + 1 tokens < 0.9 x 8192, counter 0 < 5, so
    # it is held (counter 1), and again at 12, 13, 14, 15 D (counter 5); the step at 16 D finds the
    # counter at the timeout and admits it: first token at 17 D, TTFT 6.5 D (1.5 D without the wait).
    trace = [(0, 10, 100), (10.5, 10, 50)]
    wait = {**TRT, "batch_wait_timeout_iters": 5, "batch_wait_max_tokens_ratio": 0.9}
    assert ttfts("trtllm", wait, trace, fast_forward=fast_forward) == [1, 6.5]
    assert ttfts("trtllm", TRT, trace, fast_forward=fast_forward) == [1, 1.5]


@pytest.mark.parametrize("fast_forward", [True, False])
def test_batch_wait_admits_once_the_scheduled_tokens_reach_the_ratio(fast_forward):
    # Budget 8192 x 0.002 = 16.4 tokens. B (10 tokens) arrives at 10.5 D: 10 + 1 decode < 16.4, held
    # at 11 and 12 D. C arrives at 12.5 D: at 13 D both prompts would fit, 10 + 10 + 1 = 21 >= 16.4,
    # so both are admitted in the step at 13 D: first tokens at 14 D (TTFT 3.5 D and 1.5 D).
    wait = {**TRT, "batch_wait_timeout_iters": 20, "batch_wait_max_tokens_ratio": 0.002}
    got = ttfts("trtllm", wait, [(0, 10, 100), (10.5, 10, 50), (12.5, 10, 50)], fast_forward=fast_forward)
    assert got == [1, 3.5, 1.5]


def test_batch_wait_counter_keeps_its_count_between_waits_and_needs_a_generation_request():
    wait = {**TRT, "batch_wait_timeout_iters": 5, "batch_wait_max_tokens_ratio": 0.9}
    # nothing generates when A and B arrive together: the rule is not consulted (no dead wait)
    assert ttfts("trtllm", wait, [(0, 10, 100), (0, 10, 100)]) == [1, 1]
    # B is held 5 iterations (11-15 D) and admitted at 16 D (counter back to 0); C arrives at 30.5 D and
    # is held at 31-35 D, admitted at 36 D: TTFT 6.5 D each time
    assert ttfts("trtllm", wait, [(0, 10, 200), (10.5, 10, 100), (30.5, 10, 50)]) == [1, 6.5, 6.5]


def test_batch_wait_is_off_under_attention_dp():
    # TensorRT-LLM consults it only without attention DP: two ranks stepping together ignore it
    wait = {**TRT, "batch_wait_timeout_iters": 5, "batch_wait_max_tokens_ratio": 0.9}
    assert ttfts("trtllm", wait, [(0, 10, 100), (0, 10, 100), (10.5, 10, 50)], ranks=2) == [1, 1, 1.5]


@pytest.mark.parametrize("fast_forward", [True, False])
@pytest.mark.parametrize(("interval", "expected"), [(1, 2.5), (10, 11.5), (30, 21.5)])
def test_sglang_receive_interval_delays_the_poll_during_decode(fast_forward, interval, expected):
    # A prefills in the step at 0 (weight 1000: the poll at its start resets the counter), then decodes
    # from D on, each step adding 1 at its start: the step at j D brings the counter to j (mod the
    # interval). B arrives at 10.5 D, while the step at 10 D runs (async: it waits in the inbox). With
    # interval 1 every step polls: the step at 11 D moves B to the queue, it prefills at 12 D, first
    # token at 13 D (TTFT 2.5 D). Interval 10: the poll at 10 D came before B; the next is at 20 D
    # (counter 10), B prefills at 21 D: TTFT 11.5 D. Interval 30: polled at 30 D, TTFT 21.5 D.
    args = {"scheduler_recv_interval": interval, "async_scheduling": True}
    assert ttfts("sglang", args, [(0, 10, 100), (10.5, 10, 50)], fast_forward=fast_forward) == [1, expected]


def test_sglang_receive_interval_polls_an_idle_engine_at_once():
    args = {"scheduler_recv_interval": 30}
    # B arrives after A finished (A: prefill at 0, 4 decode steps to 5 D): the idle loop polls at once
    assert ttfts("sglang", args, [(0, 10, 5), (7.5, 10, 5)]) == [1, 1]


def test_trtllm_cuda_graph_sizes_follow_the_engine_rule():
    # padding: 1, 2, 4, multiples of 8 to 128, powers of two from 256 below the max, then the max
    assert trtllm_graph_sizes(1024, True) == (1, 2, 4, *range(8, 129, 8), 256, 512, 1024)
    assert trtllm_graph_sizes(64, True) == (1, 2, 4, *range(8, 65, 8))
    assert trtllm_graph_sizes(100, True) == (1, 2, 4, *range(8, 97, 8), 100)
    assert trtllm_graph_sizes(256, False) == (*range(1, 32), 32, 64, 128, 256)
    with pytest.raises(InvalidArgumentError, match="max_batch_size must be an integer >= 1"):
        trtllm_graph_sizes(0, True)


def test_hold_knobs_reject_bad_values():
    with pytest.raises(InvalidArgumentError, match="batch_wait_timeout_iters is TensorRT-LLM's"):
        engine_profile("vllm", {"batch_wait_timeout_iters": 5})
    with pytest.raises(InvalidArgumentError, match=r"batch_wait_max_tokens_ratio must be a number in \[0, 1\]"):
        engine_profile("trtllm", {"batch_wait_max_tokens_ratio": 1.5})
    with pytest.raises(InvalidArgumentError, match="batch_wait_timeout_iters must be an integer >= 0"):
        engine_profile("trtllm", {"batch_wait_timeout_iters": -1})
    with pytest.raises(InvalidArgumentError, match="scheduler_recv_interval must be an integer >= 1"):
        engine_profile("sglang", {"scheduler_recv_interval": 0})
    with pytest.raises(InvalidArgumentError, match="needs async_scheduling=true"):
        engine_profile("sglang", {"scheduler_recv_interval": 10, "async_scheduling": False})
    profile = engine_profile("sglang", {"scheduler_recv_interval": 10})
    with pytest.raises(InvalidArgumentError, match="not modelled with pipeline parallelism"):
        Worker("agg0", "agg", [RankScheduler(profile, 1000)], ConstantCost(D), profile,
               stages=(ConstantCost(D), ConstantCost(D)))


@pytest.mark.parametrize(("engine", "args"), [
    ("trtllm", {"batch_wait_timeout_iters": 7, "batch_wait_max_tokens_ratio": 0.5, "max_num_batched_tokens": 2048}),
    ("sglang", {"scheduler_recv_interval": 10}),
])
def test_held_runs_fast_forward_exactly(monkeypatch, engine, args):
    # A closed loop of 16 clients with jittered lengths and a batch-dependent cost, KV short enough that
    # requests also wait for blocks: fast-forwarded held runs give the per-request times of stepping
    # every step, and plan far fewer runs.
    def simulate(knobs):
        profile = engine_profile(engine, {**NO_OVERHEAD, **knobs})
        worker = Worker("agg0", "agg", [RankScheduler(profile, 300 if engine == "trtllm" else 20_000)], LinearCost(),
                        profile)
        workload = make_workload(concurrency=16, rate=None, trace=None, num_requests=60, isl=400, osl=300,
                                 range_ratio=0.5, seed=3)
        return simulate_workers({"agg": [worker]}, workload, record_steps=True)

    fast = simulate(args)
    free = simulate({k: v for k, v in args.items() if k == "max_num_batched_tokens"})
    mean_ttft = [np.mean([r.first_token_s - r.arrival_s for r in sim.requests]) for sim in (fast, free)]
    assert mean_ttft[0] > 1.05 * mean_ttft[1]  # the holds bind in this run
    from tensor_cast.serving import fast_forward
    monkeypatch.setattr(fast_forward, "run_length", lambda worker, batches: 1)
    slow = simulate(args)
    assert fast.num_steps == slow.num_steps and len(fast.steps) < len(slow.steps) / 2
    for a, b in zip(fast.requests, slow.requests, strict=True):
        assert (a.first_token_s, a.finish_s) == pytest.approx((b.first_token_s, b.finish_s), rel=1e-12)
