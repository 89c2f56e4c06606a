"""The decode fast-forward's quick routes against their reference routes, bit for bit.

`BatchCost.decode_many_s` costs one rank's fast-forwarded run with its sizes as numpy scalars
(the expression's terms without C evaluated once) instead of arrays spread over the steps, and a
short run (at most `SHORT_RUN` steps) one math-module call on Python floats per step; each must
give the arrays route's bits, so that a simulation's JSON does not depend on the route (the
speed-up was checked byte-identical on full-size runs; here on a 2-layer model). The reference
is the arrays route itself, which the vectorized fast-forward always took before."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import tensor_cast
from tensor_cast.serving import api, hoist
from tensor_cast.serving.batch_cost import SHORT_RUN, BatchCost, T
from tensor_cast.sizes import B, C, S

MODEL = "Qwen/Qwen3-0.6B"
DEVICE = "h100-sxm"


@pytest.fixture(scope="module")
def cost():
    sym = tensor_cast.analyze(MODEL, device=DEVICE, symbolic=True, num_hidden_layers=2)
    return BatchCost.from_report(sym, table_tokens=512)


def _arrays(cost, count, new, means, tokens):
    k = len(means)
    return cost.decode_many_s(np.full(k, count), np.full(k, new), means, np.full(k, tokens))


@pytest.mark.parametrize("steps", [3, SHORT_RUN, 44])  # up to SHORT_RUN: one math-module call a step
@pytest.mark.parametrize(("count", "new", "tokens"), [
    (1, 1, 1), (7, 1, 8), (64, 1, 64), (3, 4, 16),  # MTP: 1 + 3 drafts per sequence
    (300, 1, 320), (600, 1, 600),  # 600 tokens: beyond the 512-token table (the linear part's function)
])
def test_scalar_route_equals_the_arrays_route_bit_for_bit(cost, count, new, tokens, steps):
    assert cost._scalar_exact  # else both calls take the arrays route and this compares nothing
    assert cost._group_fn_hoisted is not None  # else a short run takes the numpy scalar route
    rng = np.random.default_rng(count)
    means = np.concatenate(([0.0, 1.0, 127.5, 128.0], np.sort(rng.uniform(0, 30000, 40))))[:steps]
    fast = cost.decode_many_s(count, new, means, tokens)
    slow = _arrays(cost, count, new, means, tokens)
    assert fast.shape == slow.shape == means.shape
    assert fast.tobytes() == slow.tobytes()
    assert np.all(np.diff(fast[4:]) >= 0)  # sanity: longer contexts never cost less


def test_which_expressions_take_the_scalar_route():
    table = np.linspace(0.0, 1e-3, 65)
    exact = BatchCost.from_parts(T * 1e-6, sympy.ceiling(C / 32) * B * 1e-7 + sympy.Max(0, S - 1) / (B + T), table, 1)
    assert exact._scalar_exact
    # a power other than x**-1 (numpy special-cases x**2 and x**0.5 on arrays) or a transcendental
    # function: the scalar and array forms might round differently, so the arrays route is taken
    for group in (B * C * 1e-9 + S ** 2 * 1e-9, sympy.sqrt(B * T) * C * 1e-9, sympy.log(C + 1) * B * 1e-9):
        cost = BatchCost.from_parts(T * 1e-6, group, table, 1)
        assert not cost._scalar_exact, group
        means = np.array([10.0, 1000.0, 7777.7])
        assert cost.decode_many_s(8, 2, means, 16).tobytes() == _arrays(cost, 8, 2, means, 16).tobytes()
    with pytest.raises(ValueError):  # a bad size still fails loudly through either route
        BatchCost.from_parts(T * 1e-6, B * C * 1e-9, table, 1).step_s([(0, 5)])


def test_disagg_json_is_the_same_bytes_through_either_route(monkeypatch):
    # a disaggregated closed loop with spread lengths: the decode pool plans many short runs
    spec = tensor_cast.load_model(MODEL, num_hidden_layers=2)
    kwargs = dict(device=DEVICE, concurrency=24, num_requests=120, isl=300, osl=200, range_ratio=0.2, seed=4,
                  disagg="prefill: 1x tp1; decode: 1x tp1")
    routes = []  # per run costed: True where a quick route (scalar sizes, or Python floats) took it
    many, short = BatchCost.decode_many_s, BatchCost.decode_short_s

    def counting(self, count, new, means, tokens):
        routes.append(np.ndim(count) == 0 and self._scalar_exact)
        return many(self, count, new, means, tokens)

    def counting_short(self, count, new, means, tokens):
        seconds = short(self, count, new, means, tokens)
        if seconds is not None:
            routes.append(True)
        return seconds

    monkeypatch.setattr(BatchCost, "decode_many_s", counting)
    monkeypatch.setattr(BatchCost, "decode_short_s", counting_short)
    fast = tensor_cast.simulate(spec, **kwargs).to_json(requests=True)
    assert sum(routes) > 20  # the scalar route costed the runs
    routes.clear()
    for _, stages in api._COST_CACHE.values():  # every cached step cost takes the arrays route now
        for stage in stages:
            monkeypatch.setitem(stage.__dict__, "_scalar_exact", False)
    slow = tensor_cast.simulate(spec, **kwargs).to_json(requests=True)
    assert routes and not any(routes)
    assert fast == slow


def test_hoisted_terms_are_the_same_bits_and_cached(cost):
    hoisted = cost._group_hoisted
    assert hoisted is not None and hoisted.count > 5  # the decode run's C-free terms were split out
    hoisted.cache.clear()
    means = np.array([0.0, 17.0, 2048.5, 31999.0])
    for b, s, t in ((64.0, 1.0, 64.0), (5.0, 2.0, 16.0), (64.0, 1.0, 64.0)):
        args = (np.float64(b), np.float64(s), means, np.float64(t))
        assert np.asarray(hoisted(*args)).tobytes() == np.asarray(cost.group_np(*args)).tobytes()
    assert len(hoisted.cache) == 2  # (64, 1, 64) came back from the cache
    # the math-module function that costs one step (BatchCost.grouped_s), its T <= 512 branch on both sides
    one = cost._group_fn_hoisted
    assert one is not None and one.count > 5
    for n, new, tokens in ((64, 1, 64), (64, 1, 600), (3, 128, 400), (1, 1024, 1024)):
        for c in (0.0, 1000.0, 1234.5):
            assert one(n, new, c, tokens) == cost.group_fn(n, new, c, tokens)
            assert repr(one(n, new, c, tokens)) == repr(cost.group_fn(n, new, c, tokens))


def test_hoist_refuses_what_it_cannot_split_exactly():
    def conditional(B, S, C, T):  # a branch: its subtrees are not all evaluated
        return B * S if T > 4 else C * B

    def c_free(B, S, C, T):
        return C + 0

    def wrong_args(B, S, T):
        return B * S

    def plain(B, S, C, T):
        return B * S * C

    def branch_without_c(B, S, C, T):  # hoisted whole: evaluated once, as it was
        return (B * S if T > 4 else B) * C

    assert hoist.build(plain) is not None  # (a nested function's source is read too)
    h = hoist.build(branch_without_c)
    assert h is not None and h.count == 1
    assert [h(2.0, 3.0, 5.0, t) for t in (1.0, 9.0)] == [10.0, 30.0]
    assert hoist.build(conditional) is None
    assert hoist.build(wrong_args) is None
    assert hoist.build(c_free) is None  # nothing to hoist: the caller keeps the function itself
    assert hoist.build(len) is None  # no Python source


def test_hoist_cache_is_bounded(monkeypatch):
    def fn(B, S, C, T):
        return (B * S + T) * C

    monkeypatch.setattr(hoist, "CACHE_SIZE", 3)
    h = hoist.build(fn)
    assert h is not None and h.count == 1
    for b in range(7):
        assert h(float(b), 2.0, 3.0, 1.0) == fn(float(b), 2.0, 3.0, 1.0)
        assert len(h.cache) <= 3


@pytest.mark.parametrize(("count", "new", "tokens", "steps"), [(64, 1, 64, 5), (3, 4, 16, SHORT_RUN), (600, 1, 600, 2)])
def test_short_run_as_python_floats_is_the_short_routes_bits(cost, count, new, tokens, steps):
    # BatchCost.decode_short_s: the short route of decode_many_s without the numpy around it
    # (fast_forward.decode_durations takes it for one rank's short run); 600 tokens: beyond the table
    means = [float(m) for m in np.linspace(3.0, 29000.5, steps)]
    floats = cost.decode_short_s(count, new, means, tokens)
    assert floats is not None and all(type(x) is float for x in floats)
    assert np.array(floats).tobytes() == cost.decode_many_s(count, new, np.array(means), tokens).tobytes()
    assert np.array(floats).tobytes() == _arrays(cost, count, new, np.array(means), tokens).tobytes()
    assert cost.decode_short_s(count, new, means * SHORT_RUN, tokens) is None  # longer: the arrays route


def test_runs_costed_lazily_give_the_same_bytes_as_runs_costed_whole(monkeypatch):
    # fast_forward.plan costs only a run's first LAZY_STEPS steps when nothing queued bounds it; the
    # rest when the run gets there (its provisional STEP_END) or when an event pushed later lands
    # past them (fast_forward.cut), with or without cutting the run. At 1 step every run of more
    # than one step is costed so; the results must not change by a bit from runs costed whole.
    from tensor_cast.serving import fast_forward

    spec = tensor_cast.load_model(MODEL, num_hidden_layers=2)
    base = dict(device=DEVICE, concurrency=16, num_requests=150, isl=300, osl=120, range_ratio=0.3, seed=7)
    cases = [dict(base), dict(base, engine="sglang", disagg="prefill: 2x tp1; decode: 1x tp1"),
             dict(base, disagg="prefill: 1x tp1; decode: 1x tp1"), dict(base, engine="trtllm", concurrency=None,
                                                                        rate=40.0)]
    extended = []
    extend = fast_forward.extend

    def counting(worker):
        extended.append(len(worker.run_durations) < worker.ff_steps)
        extend(worker)

    monkeypatch.setattr(fast_forward, "extend", counting)
    for kwargs in cases:
        outputs = []
        for lazy in (1, 10**9):
            monkeypatch.setattr(fast_forward, "LAZY_STEPS", lazy)
            outputs.append(tensor_cast.simulate(spec, **kwargs).to_json(requests=True))
        assert outputs[0] == outputs[1], kwargs
    assert sum(extended) > 50  # runs were costed lazily, then extended


_CALLS: list[float] = []


def _ceil_counted(x):
    _CALLS.append(x)
    return float(np.ceil(x))


def test_hoist_computes_a_repeated_subtree_once_with_the_same_bits():
    # hoist.py's common-subexpression step: an operation that occurs twice (the same text) is
    # evaluated once, before the return; repeated C-free terms share one hoisted value
    def fn(B, S, C, T):
        return _ceil_counted((C + S) / 128) * B + _ceil_counted((C + S) / 128) / (B * S) + (B * S) * C

    h = hoist.build(fn)
    assert h is not None and h.count == 1  # B * S, twice in the text, hoisted once
    for c in (0.0, 127.0, 128.5, 4096.25):
        _CALLS.clear()
        want = fn(3.0, 2.0, c, 8.0)
        assert len(_CALLS) == 2
        _CALLS.clear()
        got = h(3.0, 2.0, c, 8.0)
        assert len(_CALLS) == 1  # the repeated _ceil_counted(...) evaluated once
        assert repr(got) == repr(want)
