"""The pipeline decode ring (serving/decode_ring.py) against the step-by-step path: the same runs
with `fast_forward=False` (every batch through the scheduler) are the second route. Per-request
TTFT / TPOT / E2E, every statistic of the report and the per-stage step records must agree to
float rounding (1e-12 relative: the ring's stage times come from numpy, the step path's from
Python math), and each case must actually have run batches through the ring (else the
comparison would prove nothing)."""

from __future__ import annotations

import dataclasses
import math

import pytest

import tensor_cast
from tensor_cast.serving import decode_ring

MODEL = "Qwen/Qwen3-0.6B"
DEVICE = "h100-sxm"
REL = 1e-12


@pytest.fixture(scope="module")
def spec():
    return tensor_cast.load_model(MODEL, num_hidden_layers=4)


def _close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= REL * max(abs(a), abs(b))


def _both(spec, monkeypatch, **kwargs):
    """(fast-forwarded report, step-by-step report, batches the ring issued)."""
    issued = []
    schedule = decode_ring.DecodeRing.schedule

    def counting(self, worker, now):
        flight = schedule(self, worker, now)
        issued.append(flight is not None)
        return flight

    monkeypatch.setattr(decode_ring.DecodeRing, "schedule", counting)
    fast = tensor_cast.simulate(spec, device=DEVICE, record_steps=True, **kwargs)
    ringed = sum(issued)
    issued.clear()
    slow = tensor_cast.simulate(spec, device=DEVICE, record_steps=True, fast_forward=False, **kwargs)
    assert not issued, "fast_forward=False must not use the ring"
    return fast, slow, ringed


def _assert_same(fast, slow):
    assert len(fast.requests) == len(slow.requests)
    for a, b in zip(fast.requests, slow.requests, strict=True):
        assert (a.rid, a.preemptions, a.output_tokens) == (b.rid, b.preemptions, b.output_tokens)
        for name in ("ttft_s", "tpot_s", "e2e_s", "kv_transfer_s"):
            assert _close(getattr(a, name), getattr(b, name)), (a.rid, name, getattr(a, name), getattr(b, name))
    for name in ("duration_s", "output_tokens_per_s", "total_tokens_per_s", "kv_peak_use", "kv_mean_use"):
        assert _close(getattr(fast, name), getattr(slow, name)), name
    for name in ("ttft", "tpot", "itl", "e2e"):
        for field in dataclasses.fields(getattr(fast, name)):
            a, b = getattr(getattr(fast, name), field.name), getattr(getattr(slow, name), field.name)
            assert _close(a, b), (name, field.name, a, b)
    assert (fast.steps, fast.preemptions, fast.kv_cache_blocks) == (slow.steps, slow.preemptions, slow.kv_cache_blocks)
    assert len(fast.step_records) == len(slow.step_records)
    for a, b in zip(fast.step_records, slow.step_records, strict=True):
        assert (a.worker, a.steps, a.prefill_tokens, a.decode_seqs, a.running) == \
            (b.worker, b.steps, b.prefill_tokens, b.decode_seqs, b.running)
        assert _close(a.start_s, b.start_s) and _close(a.duration_s, b.duration_s)


@pytest.mark.parametrize("kwargs", [
    # closed loop, lengths spread 10 % around L (completions all through the run)
    dict(pp=2, concurrency=16, num_requests=48, isl=256, osl=96, range_ratio=0.1),
    # Poisson arrivals on SGLang, pp=4 (four groups in the ring)
    dict(pp=4, engine="sglang", rate=40.0, num_requests=40, isl=200, osl=80, range_ratio=0.2, seed=3),
    # TensorRT-LLM (KV reserved at admission), two independent replicas (two workers, interleaved events)
    dict(pp=2, dp=2, engine="trtllm", concurrency=12, num_requests=36, isl=128, osl=64),
    # one group only (fewer groups than stages)
    dict(pp=2, concurrency=2, num_requests=4, isl=64, osl=120, engine_args={"max_num_batched_tokens": 64}),
], ids=["closed-vllm", "poisson-sglang-pp4", "trtllm-dp2", "one-group"])
def test_ring_matches_step_by_step(spec, monkeypatch, kwargs):
    fast, slow, ringed = _both(spec, monkeypatch, **kwargs)
    _assert_same(fast, slow)
    assert ringed > fast.steps // 4, (ringed, fast.steps)


def test_ring_with_preemption_matches(spec, monkeypatch):
    """KV short: rings stop where a round's blocks do not fit (the scheduler preempts), and run
    while requests wait for blocks that cannot come free (vLLM admission refused)."""
    fast, slow, ringed = _both(spec, monkeypatch, pp=2, concurrency=32, num_requests=40, isl=2000, osl=600,
                               range_ratio=0.5, memory_utilization=0.0093,
                               engine_args={"max_num_batched_tokens": 1024})
    assert slow.preemptions > 0
    _assert_same(fast, slow)
    assert ringed > 0


def test_ring_in_a_disaggregated_decode_pool(spec, monkeypatch):
    """pp=2 decode workers receive requests by KV transfer while their rings run: every hand-over
    ends the receiving worker's ring at that instant."""
    fast, slow, ringed = _both(spec, monkeypatch, concurrency=8, num_requests=24, isl=256, osl=64, range_ratio=0.2,
                               disagg="prefill: 1x tp1; decode: 2x tp1 pp2")
    _assert_same(fast, slow)
    assert ringed > 0


def test_cli_no_fast_forward(capsys):
    from tensor_cast.cli import main

    args = ["serve", MODEL, "--device", DEVICE, "--concurrency", "4", "--num-requests", "8", "--isl", "64",
            "--osl", "40", "--num-hidden-layers", "4", "--pp", "2"]
    assert main(args) == 0
    fast = capsys.readouterr().out
    assert main([*args, "--no-fast-forward"]) == 0
    assert capsys.readouterr().out == fast


@pytest.mark.parametrize(("engine", "free", "running", "expected"), [
    ("vllm", 3, 1, True),  # the head's first 64-token chunk needs 4 blocks of 16, 3 free
    ("vllm", 4, 1, False),  # ... 4 free: admitted
    ("vllm", 100, 2, True),  # max_num_seqs (2) reached
    ("trtllm", 10, 1, True),  # no_evict reserves prompt + output + 1 = 321 tokens: 11 blocks of 32
    ("trtllm", 11, 1, False),
    ("trtllm", 100, 0, True),  # no chunked prefill: the 256-token prompt exceeds a 64-token budget
    ("sglang", 0, 1, False),  # prefill_first: its reservations move as others decode; not decided here
])
def test_admission_refused_agrees_with_the_policy(engine, free, running, expected):
    """`RankScheduler.admission_refused` (the ring runs while it holds) against the scheduler
    itself: where it says refused, a schedule leaves the head waiting; where it says admissible
    (vLLM, TRT-LLM), a schedule admits it."""
    from tensor_cast.serving.engines import engine_profile
    from tensor_cast.serving.scheduler import RankScheduler
    from tensor_cast.serving.workload import Request

    tokens = 64 if engine == "vllm" or not running else 256  # TRT-LLM does not chunk: room for the prompt
    profile = engine_profile(engine, {"max_num_seqs": 2, "max_num_batched_tokens": tokens + running})
    rank = RankScheduler(profile, kv_blocks=200)
    for i in range(running):
        r = Request(i, 0.0, 100, 50)
        r.computed, r.prefill_target, r.generated, r.blocks = 120.0, 100, 21.0, 8
        rank.running.append(r)
    rank.free_blocks = free
    rank.total_blocks = free + 8 * running
    head = Request(99, 0.0, 256, 64)
    head.prefill_target = 256
    rank.add(head)
    budget = profile.max_num_batched_tokens - running  # what the running decodes leave
    assert rank.admission_refused(budget) is expected
    if engine != "sglang":
        rank.schedule()
        assert (head in rank.waiting) is expected
