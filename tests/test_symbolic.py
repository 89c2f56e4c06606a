"""One symbolic trace serves every shape: its evaluation equals the concrete analysis."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import tensor_cast
from tensor_cast.sizes import B, C, S

POINTS = [(1, 2048, 0), (64, 1, 4096), (8, 512, 1000), (3, 7, 11)]


@pytest.mark.parametrize("point", POINTS)
def test_symbolic_evaluation_equals_concrete_analysis(llama8b, point):
    batch, query, context = point
    concrete = tensor_cast.analyze("meta-llama/Llama-3.1-8B", device="h100-sxm", batch_size=batch,
                                   query_len=query, context_len=context)
    evaluated = llama8b.evaluate(batch_size=batch, query_len=query, context_len=context)
    for name in ("total_time_s", "total_flops", "total_bytes"):
        assert getattr(evaluated, name) == pytest.approx(getattr(concrete, name), rel=1e-12)
    assert evaluated.memory == concrete.memory
    assert [(r.name, r.flops, r.bytes, r.time_s) for r in evaluated.ops] == \
        [(r.name, r.flops, r.bytes, r.time_s) for r in concrete.ops]


def test_totals_are_expressions_in_batch_query_context(llama8b):
    assert llama8b.symbolic
    for expr in (llama8b.total_flops, llama8b.total_bytes, llama8b.total_time_s, llama8b.memory.kv_cache_bytes):
        assert isinstance(expr, sympy.Basic)
        assert expr.free_symbols <= {B, S, C}
    # FLOPs grow linearly in the batch at fixed S, C
    f = sympy.lambdify((B, S, C), llama8b.total_flops)
    assert f(4, 1, 100) == pytest.approx(2 * f(2, 1, 100))


def test_sweep_matches_evaluate(llama8b):
    batches = np.array([1, 2, 8, 32, 128, 256])
    swept = llama8b.sweep(batch_size=batches, query_len=1, context_len=2048)
    for i, batch in enumerate(batches):
        point = llama8b.evaluate(batch_size=int(batch), query_len=1, context_len=2048)
        assert swept["total_time_s"][i] == pytest.approx(point.total_time_s, rel=1e-9)
        assert swept["tokens_per_s"][i] == pytest.approx(point.tokens_per_s, rel=1e-9)
        assert swept["total_flops"][i] == pytest.approx(point.total_flops, rel=1e-9)


def test_sweep_broadcasts_a_grid(llama8b):
    grid = llama8b.sweep(batch_size=np.arange(1, 41)[:, None], query_len=1, context_len=np.arange(0, 25) * 512)
    assert grid["total_time_s"].shape == (40, 25)
    assert np.all(np.diff(grid["total_time_s"], axis=0) >= 0)  # more sequences never take less time
    assert np.all(np.diff(grid["total_time_s"], axis=1) >= 0)  # a longer context never takes less time


def test_smax_smin_keep_sympys_value_without_its_pairwise_simplification():
    """smax / smin leave symbolic extrema unevaluated (numbers folded, repeats collapsed); at every
    point they equal sympy's own evaluated Max / Min and Python's max / min of the substituted values."""
    from tensor_cast.sizes import smax, smin, substitute

    args = (2 * B, sympy.Integer(7), 3, B * S + C, 2 * B, sympy.ceiling(C / 64))
    hi, lo = smax(*args), smin(*args)
    assert isinstance(hi, sympy.Max) and isinstance(lo, sympy.Min)
    assert len(hi.args) == 4 and sympy.Integer(7) in hi.args and sympy.Integer(3) not in hi.args
    assert sympy.Integer(3) in lo.args and sympy.Integer(7) not in lo.args
    assert smax(B, 4, B) == sympy.Max(4, B, evaluate=False) and smin(S) == S and smax(3, 5.5) == 5.5
    for b, s, c in [(1, 1, 0), (3, 1, 100), (64, 2, 4095), (7, 512, 8192)]:
        point = {B: b, S: s, C: c}
        values = [int(substitute(sympy.sympify(a), point)) for a in args]
        assert substitute(hi, point) == max(values) == sympy.Max(*args).xreplace(point)
        assert substitute(lo, point) == min(values) == sympy.Min(*args).xreplace(point)
