"""BatchCost: one symbolic trace -> the step time of any (new, cached) batch."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tensor_cast
from tensor_cast.serving.batch_cost import BatchCost

MODEL = "Qwen/Qwen3-0.6B"


@pytest.fixture(scope="module")
def traced():
    sym = tensor_cast.analyze(MODEL, device="h100-sxm", symbolic=True, num_hidden_layers=2)
    return sym, BatchCost.from_report(sym, table_tokens=4096)


@pytest.mark.parametrize(("batch", "new", "cached"), [(1, 1024, 0), (64, 1, 1000), (8, 128, 300), (600, 1, 10)])
def test_uniform_batch_equals_analyze(traced, batch, new, cached):
    _, cost = traced
    # second route: a concrete analyze() of the same step (its own costing pass, not the symbolic report)
    report = tensor_cast.analyze(MODEL, device="h100-sxm", batch_size=batch, query_len=new, context_len=cached,
                                 num_hidden_layers=2)
    assert cost.step_s([(new, cached)] * batch) == pytest.approx(report.total_time_s, rel=1e-9)


def test_split_groups_gemms_by_total_tokens_attention_per_sequence(traced):
    sym, cost = traced
    # the token-linear part depends on the token count only: 4 x 16 tokens cost what 64 x 1 tokens cost
    assert cost.linear_s(64) == pytest.approx(float(sym.evaluate(batch_size=64, query_len=1, context_len=0).total_time_s)
                                              - cost.group_fn(64, 1, 0.0, 64), rel=1e-9)
    # attention is not token-linear: it grows with the cached tokens at a fixed token count
    assert cost.group_fn(1, 1, 4000.0, 1) > cost.group_fn(1, 1, 10.0, 1)
    assert {str(s) for s in cost.linear_expr.free_symbols} == {"T"}


def test_mixed_batch_is_linear_at_total_tokens_plus_each_group(traced):
    _, cost = traced
    decodes = [(1, 2000 + 10 * i) for i in range(16)]  # mean cached 2075
    prefill = [(512, 0)]
    expected = (cost.linear_s(16 + 512) + cost.group_fn(16, 1, 2075.0, 16 + 512)
                + cost.group_fn(1, 512, 0.0, 16 + 512))
    assert cost.step_s(decodes + prefill) == pytest.approx(expected, rel=1e-12)
    # padding to a CUDA-graph size only moves the token-linear part
    assert cost.step_s(decodes, padded_tokens=24) - cost.step_s(decodes) == pytest.approx(
        cost.linear_s(24) - cost.linear_s(16) + cost.group_fn(16, 1, 2075.0, 24) - cost.group_fn(16, 1, 2075.0, 16))


def test_vectorized_decode_steps_match_single_calls(traced):
    _, cost = traced
    means = np.array([100.0, 101.0, 102.0])
    vec = cost.decode_steps_s(8, 1, means, 8)
    for m, v in zip(means, vec):
        assert v == pytest.approx(cost.step_s([(1, int(m))] * 8), rel=1e-12)


def test_launches_per_step_count_every_layer(traced):
    sym, cost = traced
    # second route: the per-op rows of a concrete report (one row per op per layer instance)
    report = tensor_cast.analyze(MODEL, device="h100-sxm", batch_size=1, query_len=1024, num_hidden_layers=2)
    assert cost.launches == sum(row.launches for row in report.ops) > 0
    assert sum(row.launches for row in report.ops if row.layer == 1) > 0  # the second layer's ops counted too


def test_bad_sequence_is_an_error(traced):
    _, cost = traced
    with pytest.raises(ValueError, match="new tokens >= 1"):
        cost.step_s([(0, 10)])


def _groups_by_a_plain_loop(batch):
    """The reference `BatchCost.groups`: one pass, groups in first-appearance order, sums in batch order."""
    groups = {}
    for new, cached in batch:
        entry = groups.setdefault(new, [0, 0])
        entry[0] += 1
        entry[1] += cached
    return sum(n for n, _ in batch), groups


@given(st.lists(st.tuples(st.sampled_from([1, 1, 1, 2, 7, 512, 2048]),
                          st.one_of(st.integers(0, 10**6), st.floats(0, 1e6, allow_nan=False))),
                min_size=1, max_size=60))
@settings(max_examples=300, deadline=None)
def test_grouping_is_a_plain_loops(batch):
    # groups() takes C-level passes (the first group by count and subtraction, the rest by one
    # compress pass): its groups, their order and their sums (to the bit, floats too) are one loop's.
    total, groups = BatchCost.groups(batch)
    want_total, want = _groups_by_a_plain_loop(batch)
    assert total == want_total
    assert list(groups) == list(want)
    for new, (n, c) in want.items():
        assert groups[new][0] == n
        assert groups[new][1] == c or (math.isnan(c) and math.isnan(groups[new][1]))


@pytest.mark.parametrize("bad", [[(1, 5), (0, 3)], [(1, 5), (4, -1), (4, 2)], [(1, -2)], [(0, 1)]])
def test_grouping_names_the_bad_sequence(bad):
    with pytest.raises(ValueError, match="new tokens >= 1 and cached >= 0"):
        BatchCost.groups(bad)
