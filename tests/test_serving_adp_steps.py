"""Attention-DP steps: the MoE share of a step runs at the ranks' combined tokens when nothing is
padded (simulator.py, "Attention-DP steps"), and each engine's rule for a new request's rank
(engines.py, "Attention-DP routing")."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tensor_cast
from tensor_cast.errors import InvalidArgumentError
from tensor_cast.serving.batch_cost import BatchCost
from tensor_cast.serving.engines import engine_profile
from tensor_cast.serving.scheduler import RankScheduler
from tensor_cast.serving.simulator import Worker, simulate_workers
from tensor_cast.serving.workload import Request, TraceEntry, make_workload

MOE = "Qwen/Qwen3-30B-A3B"
# ops whose work is every rank's tokens (batch_cost.py): an all_to_all stays with each rank's own tokens,
# the engines' default all-gather / reduce-scatter moves every rank's (deployment/moe_exchange.py)
SHARED_OPS = {"all_to_all": ("tensor_cast.moe",),
              "allgather": ("tensor_cast.moe", "tensor_cast.ep_allgather", "tensor_cast.ep_reducescatter")}
EXCHANGE_OPS = {"all_to_all": {"tensor_cast.ep_dispatch", "tensor_cast.ep_combine"},
                "allgather": {"tensor_cast.ep_allgather", "tensor_cast.ep_reducescatter"}}
NO_OVERHEAD = {"step_overhead_s": 0.0, "seq_overhead_s": 0.0, "request_overhead_s": 0.0, "async_scheduling": False}


@pytest.fixture(scope="module", params=["all_to_all", "allgather"])
def moe_dp2(request):
    sym = tensor_cast.analyze(MOE, device="h100-sxm", dp=2, ep=2, num_hidden_layers=2, symbolic=True,
                              moe_exchange=request.param)
    return sym, BatchCost.from_report(sym, table_tokens=256), request.param


@pytest.mark.parametrize("tokens", [1, 96, 300])  # 300: beyond the table (the expression in T)
def test_shared_share_is_the_moe_ops_of_analyze(moe_dp2, tokens):
    _, cost, exchange = moe_dp2
    # second route: a concrete analyze() of `tokens` one-token sequences per rank (batch_size is both
    # replicas' batch), its shared rows summed over the layers (an all_to_all is in, but not shared)
    report = tensor_cast.analyze(MOE, device="h100-sxm", dp=2, ep=2, num_hidden_layers=2, batch_size=2 * tokens,
                                 query_len=1, context_len=64, moe_exchange=exchange)
    expected = sum(float(r.time_s) for r in report.ops if r.op in SHARED_OPS[exchange])
    assert {r.op for r in report.ops} >= {"tensor_cast.moe"} | EXCHANGE_OPS[exchange]
    assert cost.shared_s(tokens) == pytest.approx(expected, rel=1e-9)
    assert 0 < cost.shared_s(tokens) < cost.linear_s(tokens)


def test_dense_model_has_no_shared_share():
    sym = tensor_cast.analyze("Qwen/Qwen3-0.6B", device="h100-sxm", symbolic=True, num_hidden_layers=1)
    cost = BatchCost.from_report(sym, table_tokens=64)
    assert cost.shared_s(32) == 0.0 and cost.shared_s(1000) == 0.0


class SplitCost:
    """A step of T tokens on one rank costs A·T of its own ops plus M·T of MoE share, as if every
    rank had T tokens (what a trace costs); no per-sequence part, no launches."""

    A, M = 1e-5, 4e-5
    launches = 0

    def step_s(self, batch, padded_tokens=None):
        tokens = max(sum(n for n, _ in batch), padded_tokens or 0)
        return (self.A + self.M) * tokens

    def shared_s(self, tokens):
        return self.M * tokens

    def decode_many_s(self, count, new, means, tokens):  # tokens: each step's padded token count
        return (self.A + self.M) * np.asarray(tokens, dtype=float)


def first_step_s(engine, prompts):
    """Seconds of the first step of two attention-DP ranks that admit `prompts` together at 0
    (the first token of every request comes at its end: no overheads, synchronous scheduling)."""
    profile = engine_profile(engine, NO_OVERHEAD)
    worker = Worker("agg0", "agg", [RankScheduler(profile, 100_000), RankScheduler(profile, 100_000)],
                    SplitCost(), profile)
    trace = [TraceEntry(0.0, p, 4) for p in prompts]
    result = simulate_workers({"agg": [worker]}, make_workload(concurrency=None, rate=None, trace=trace,
                                                               num_requests=None, isl=None, osl=None))
    firsts = {r.first_token_s for r in result.requests}
    assert len(firsts) == 1
    return firsts.pop()


def test_eager_prefill_step_runs_the_moe_at_the_ranks_combined_tokens():
    a, m = SplitCost.A, SplitCost.M
    # vLLM, 2000 + 10 prompt tokens (beyond its 512-token graphs: eager, not padded): the slower rank
    # runs its own 2000 tokens, the MoE the ranks' 2010 tokens, i.e. 1005 per rank, not 2000
    assert first_step_s("vllm", [2000, 10]) == pytest.approx(a * 2000 + m * math.ceil(2010 / 2))
    # one request, the other rank idle (vLLM's dummy batch of no tokens): the MoE at 2000 / 2
    assert first_step_s("vllm", [2000]) == pytest.approx(a * 2000 + m * 1000)
    # SGLang and TensorRT-LLM run every prefill step eager: 400 + 10 tokens -> MoE at 205 per rank
    for engine in ("sglang", "trtllm"):
        assert first_step_s(engine, [400, 10]) == pytest.approx(a * 400 + m * 205)


def test_graph_step_pads_every_rank_to_the_largest():
    a, m = SplitCost.A, SplitCost.M
    # vLLM replays piecewise graphs up to 512 tokens and pads the ranks to the largest (dp_utils)
    assert first_step_s("vllm", [400, 10]) == pytest.approx((a + m) * 400)


def _rank_with(profile, running, waiting):
    rank = RankScheduler(profile, 100_000)
    rank.running.extend(Request(i, 0.0, 10, 10) for i in range(running))
    rank.waiting.extend(Request(100 + i, 0.0, 10, 10) for i in range(waiting))
    return rank


def test_least_loaded_routing_scores_waiting_four_times_running():
    profile = engine_profile("vllm", NO_OVERHEAD)
    # scores 4 x waiting + running: rank 0 = 3, rank 1 = 4 -> rank 0; a tie goes to the lower rank
    worker = Worker("agg0", "agg", [_rank_with(profile, 3, 0), _rank_with(profile, 0, 1)], SplitCost(), profile)
    assert [worker._route() for _ in range(3)] == [0, 0, 0]
    worker = Worker("agg0", "agg", [_rank_with(profile, 2, 0), _rank_with(profile, 1, 0)], SplitCost(), profile)
    req = Request(7, 0.0, 10, 10)
    worker.assign(req)
    assert req.rank == 1 and worker._route() == 0  # rank 1 now 1 running + 1 waiting = 5 > 2


def test_round_robin_routing_ignores_load():
    profile = engine_profile("sglang", NO_OVERHEAD)
    worker = Worker("agg0", "agg", [_rank_with(profile, 5, 0), _rank_with(profile, 0, 0)], SplitCost(), profile)
    assert [worker._route() for _ in range(4)] == [0, 1, 0, 1]


def test_unknown_dp_routing_is_an_error():
    with pytest.raises(InvalidArgumentError, match="dp_routing must be one of round_robin, least_loaded, got 'random'"):
        engine_profile("vllm", {"dp_routing": "random"})
