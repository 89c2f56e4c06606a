"""SGLang's attention-DP division (engines.py, "Attention-DP division"): chunked_prefill_size and a
given max_running_requests are the worker's, divided among its DP ranks, and the KV reservation
ratio is 0.7 x 0.3; vLLM's and TensorRT-LLM's knobs are per rank. Checked on the per-rank profile,
on a rank's admission against a reservation worked out by hand, and end to end through simulate()
(the prefill chunks one rank runs)."""

from __future__ import annotations

import pytest

import tensor_cast
from tensor_cast.errors import InvalidArgumentError
from tensor_cast.serving.engines import engine_profile
from tensor_cast.serving.scheduler import RankScheduler
from tensor_cast.serving.workload import Request

NO_OVERHEAD = {"step_overhead_s": 0.0, "seq_overhead_s": 0.0, "request_overhead_s": 0.0}


def test_sglang_rank_profile_divides_the_budget_and_a_given_cap():
    sglang = engine_profile("sglang", {"max_num_batched_tokens": 16384, "max_num_seqs": 1024})
    rank = sglang.attention_dp_rank(8, max_num_seqs_given=True)
    # server_args.py: chunked_prefill_size // dp_size; max_running_requests // dp_size; 0.7 x 0.3
    assert (rank.max_num_batched_tokens, rank.max_num_seqs) == (2048, 128)
    assert rank.new_token_ratio == pytest.approx(0.21)
    # no --max-running-requests: each rank's own bound, undivided
    assert sglang.attention_dp_rank(8, max_num_seqs_given=False).max_num_seqs == 1024
    # 16384 // 3 rounds down as SGLang's integer division does
    assert sglang.attention_dp_rank(3, max_num_seqs_given=False).max_num_batched_tokens == 5461
    assert sglang.attention_dp_rank(1, max_num_seqs_given=True) is sglang  # dp 1: enable_dp_attention is off


@pytest.mark.parametrize("engine", ["vllm", "trtllm"])
def test_vllm_and_trtllm_ranks_keep_their_knobs(engine):
    profile = engine_profile(engine, {"max_num_seqs": 64})
    assert profile.attention_dp_rank(8, max_num_seqs_given=True) is profile


def test_division_that_leaves_nothing_per_rank_is_an_error():
    sglang = engine_profile("sglang", {"max_num_seqs": 4})
    with pytest.raises(InvalidArgumentError, match="among 8 attention-DP ranks, leaving none per rank"):
        sglang.attention_dp_rank(8, max_num_seqs_given=True)
    with pytest.raises(InvalidArgumentError, match="attention-DP ranks must be an integer >= 1, got 0"):
        sglang.attention_dp_rank(0, max_num_seqs_given=False)
    with pytest.raises(InvalidArgumentError, match="dp_attention_conservativeness must be a number in"):
        engine_profile("sglang", {"dp_attention_conservativeness": 1.5})


@pytest.mark.parametrize("dp, admitted", [(1, False), (2, True)])
def test_reservation_ratio_under_attention_dp_admits_what_the_plain_ratio_refuses(dp, admitted):
    # 1,000 KV tokens (page size 1). A runs with 100 cached tokens and 1,000 outputs to go. B: 200-token
    # prompt, 400 outputs. Ratio 0.7: free 900 - 0.7 x 1,000 = 200 < 200 + 0.7 x 400 = 480: B waits.
    # Under attention DP 0.21: 900 - 210 = 690 >= 200 + 84 = 284: B is admitted with its whole prompt.
    rank_engine = engine_profile("sglang", NO_OVERHEAD).attention_dp_rank(dp, max_num_seqs_given=False)
    rank = RankScheduler(rank_engine, 1000)
    a = Request(0, 0.0, 100, 1000)
    rank.add(a)
    assert rank.schedule() == [(a, 100)]
    rank.complete([(a, 100)], 0.0)  # A's prompt done: it decodes from now on
    b = Request(1, 0.0, 200, 400)
    rank.add(b)
    batch = rank.schedule()
    assert ((b, 200) in batch) is admitted
    assert batch == ([(b, 200)] if admitted else [(a, 1)])


@pytest.mark.slow
def test_simulate_runs_one_ranks_prompt_in_chunks_of_its_share():
    # Qwen3-30B-A3B (2 layers) on 2 H100s, attention DP2 + EP2, one 3,000-token prompt, SGLang with
    # chunked_prefill_size 2048: each rank gets 1,024, so the prompt runs as 1,024 + 1,024 + 952 over
    # three prefill steps; without the division (the knob off) as 2,048 + 952.
    def prefill_chunks(args):
        rep = tensor_cast.simulate("Qwen/Qwen3-30B-A3B", device="h100-sxm", engine="sglang", dp=2, ep=2,
                                   num_hidden_layers=2, concurrency=1, num_requests=1, isl=3000, osl=2,
                                   record_steps=True, engine_args={**NO_OVERHEAD, "max_num_batched_tokens": 2048,
                                                                   **args})
        return [s.prefill_tokens for s in rep.step_records if s.prefill_tokens], rep.notes

    chunks, notes = prefill_chunks({})
    assert chunks == [1024, 1024, 952]
    assert any("attention DP2: per rank max_num_batched_tokens 1024" in n for n in notes)
    chunks, notes = prefill_chunks({"dp_attention_divides": False})
    assert chunks == [2048, 952]
    assert not any("attention DP2" in n for n in notes)
