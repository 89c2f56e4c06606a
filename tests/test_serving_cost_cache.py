"""The disk cache of step-cost builds (serving/cost_cache.py): a hit skips `from_report` and gives
the same numbers as a fresh build (the second route), a damaged entry is a miss, and the cache is
off where the trace cache is."""

from __future__ import annotations

import pytest

import tensor_cast
from tensor_cast.cache.store import CacheStore
from tensor_cast.serving import cost_cache
from tensor_cast.serving.batch_cost import BatchCost
from tensor_cast.serving.pipeline import stage_multiplicities

BATCHES = ([(1, 300)] * 7, [(1, 5000)] * 3 + [(200, 40), (17, 0)], [(250, 0)], [(1, 10)] * 300)


@pytest.fixture(scope="module")
def traced():
    spec = tensor_cast.load_model("Qwen/Qwen3-0.6B", num_hidden_layers=4)
    return tensor_cast.analyze(spec, device="h100-sxm", symbolic=True, pp=2)


@pytest.fixture
def sym(traced, tmp_path, monkeypatch):
    monkeypatch.setenv("TENSOR_CAST_CACHE_DIR", str(tmp_path))  # an empty cache of its own
    return traced


def _builds(monkeypatch):
    calls = []
    build = BatchCost.from_report.__func__

    def counting(cls, *args, **kwargs):
        calls.append(1)
        return build(cls, *args, **kwargs)

    monkeypatch.setattr(BatchCost, "from_report", classmethod(counting))
    return calls


def test_hit_skips_the_build_and_gives_the_same_numbers(sym, monkeypatch, tmp_path):
    fresh = [BatchCost.from_report(sym, table_tokens=256, multiplicities=m) for m in stage_multiplicities(sym)]
    calls = _builds(monkeypatch)
    stored = [cost_cache.batch_cost(sym, table_tokens=256, multiplicities=m) for m in stage_multiplicities(sym)]
    assert len(calls) == 2 and len(list((tmp_path / "step_costs").glob("*.trace"))) == 2
    loaded = [cost_cache.batch_cost(sym, table_tokens=256, multiplicities=m) for m in stage_multiplicities(sym)]
    assert len(calls) == 2  # both from disk
    for a, b, c in zip(fresh, stored, loaded, strict=True):
        assert c.launches == a.launches and (c.linear_table == a.linear_table).all()
        for batch in BATCHES:  # within and beyond the 256-token table
            assert c.step_s(batch) == b.step_s(batch) == a.step_s(batch)
    # another table size, or the whole model instead of a stage, is another entry
    cost_cache.batch_cost(sym, table_tokens=128, multiplicities=stage_multiplicities(sym)[0])
    cost_cache.batch_cost(sym, table_tokens=256)
    assert len(calls) == 4


def test_damaged_entry_is_a_miss(sym, monkeypatch, tmp_path):
    multiplicities = stage_multiplicities(sym)[1]
    cost_cache.batch_cost(sym, table_tokens=64, multiplicities=multiplicities)
    key = cost_cache.step_cost_key(sym, 64, multiplicities)
    CacheStore().store_side(cost_cache.KIND, key, ("not", "a", "build"))
    calls = _builds(monkeypatch)
    cost = cost_cache.batch_cost(sym, table_tokens=64, multiplicities=multiplicities)
    assert len(calls) == 1 and cost.linear_table.shape == (65,)


def test_off_with_the_trace_cache(sym, monkeypatch, tmp_path):
    monkeypatch.setenv("TENSOR_CAST_CACHE", "0")
    calls = _builds(monkeypatch)
    cost_cache.batch_cost(sym, table_tokens=64)
    cost_cache.batch_cost(sym, table_tokens=64)
    assert len(calls) == 2 and not (tmp_path / "step_costs").exists()
