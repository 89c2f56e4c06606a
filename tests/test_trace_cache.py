"""The disk cache of traced, device-independent costs: keys, hits, identity, corruption, CLI."""

from __future__ import annotations

import pytest

import tensor_cast
from tensor_cast import analysis
from tensor_cast.cache.store import MAGIC, CacheStore
from tensor_cast.cli import main

MODEL = "Qwen/Qwen3-0.6B"
POINT = {"batch_size": 4, "query_len": 1, "context_len": 512}


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("TENSOR_CAST_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("TENSOR_CAST_CACHE", raising=False)
    analysis._RECORDS.clear()
    yield CacheStore(tmp_path)
    analysis._RECORDS.clear()


def _no_trace(monkeypatch):
    """Fail if anything traces: a cache hit must not."""
    def refuse(*args, **kwargs):
        raise AssertionError("traced although the cache holds this trace")
    monkeypatch.setattr(analysis, "trace", refuse)


def test_hit_gives_the_uncached_report_without_tracing(store, monkeypatch):
    uncached = tensor_cast.analyze(MODEL, device="h100-sxm", cache=False, **POINT)
    assert store.info().entries == 0  # cache=False neither reads nor writes
    analysis._RECORDS.clear()
    first = tensor_cast.analyze(MODEL, device="h100-sxm", **POINT)
    assert store.info().entries == 1
    analysis._RECORDS.clear()  # a new process: only the disk entry is left
    _no_trace(monkeypatch)
    hit = tensor_cast.analyze(MODEL, device="h100-sxm", **POINT)
    assert hit.to_json() == first.to_json() == uncached.to_json()
    assert hit.table(by="op") == uncached.table(by="op")
    assert hit.memory == uncached.memory and hit.fit == uncached.fit


def test_one_entry_serves_every_device_and_shape_options_make_new_ones(store, monkeypatch):
    tensor_cast.analyze(MODEL, device="h100-sxm", **POINT)
    tensor_cast.analyze(MODEL, device="b200", batch_size=64, query_len=128, context_len=0)
    assert store.info().entries == 1  # device and shape point are not in the key
    b200_uncached = tensor_cast.analyze(MODEL, device="b200", cache=False, **POINT)
    analysis._RECORDS.clear()
    _no_trace(monkeypatch)
    assert tensor_cast.analyze(MODEL, device="b200", **POINT).to_json() == b200_uncached.to_json()
    monkeypatch.undo()
    monkeypatch.setenv("TENSOR_CAST_CACHE_DIR", str(store.directory.parent))
    tensor_cast.analyze(MODEL, device="h100-sxm", kv_cache_dtype="fp8", **POINT)
    assert store.info().entries == 2  # the KV dtype changes the trace: a new key


@pytest.mark.parametrize("damage", ["flip", "truncate", "foreign", "stale_key"])
def test_bad_entries_are_rebuilt_never_trusted(store, capsys, damage):
    good = tensor_cast.analyze(MODEL, device="h100-sxm", **POINT).to_json()
    (path,) = store.entries()
    data = path.read_bytes()
    if damage == "flip":
        data = data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:]
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "foreign":
        data = b"not a cache entry at all"
    else:  # a valid entry stored under another key (a copied / renamed file)
        other = store.path("0" * 64)
        path.rename(other)
        record = store.load("0" * 64)
        assert record is None  # its stored key is not this one: refused, removed
        capsys.readouterr()
        analysis._RECORDS.clear()
        assert tensor_cast.analyze(MODEL, device="h100-sxm", **POINT).to_json() == good
        return
    path.write_bytes(data)
    analysis._RECORDS.clear()
    rebuilt = tensor_cast.analyze(MODEL, device="h100-sxm", **POINT).to_json()
    assert rebuilt == good
    assert "rebuilding it" in capsys.readouterr().err
    assert store.path(path.stem).read_bytes().startswith(MAGIC)  # a fresh, valid entry replaced it
    analysis._RECORDS.clear()
    assert store.load(path.stem) is not None


def test_cache_off_by_environment(store, monkeypatch):
    monkeypatch.setenv("TENSOR_CAST_CACHE", "0")
    tensor_cast.analyze(MODEL, device="h100-sxm", **POINT)
    assert store.info().entries == 0


def test_cli_no_cache_info_and_clear(store, capsys):
    args = ["analyze", MODEL, "--device", "h100-sxm", "--batch-size", "4", "--context-len", "512"]
    assert main([*args, "--no-cache"]) == 0
    assert store.info().entries == 0
    assert main(args) == 0
    capsys.readouterr()
    assert main(["cache", "info"]) == 0
    assert "holds 1 entries" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert "removed 1 entries" in capsys.readouterr().out
    assert store.info().entries == 0
