"""The disk cache of traced, device-independent costs: keys, hits, identity, corruption, CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import tensor_cast
from tensor_cast import analysis
from tensor_cast.cache.store import MAGIC, CacheStore
from tensor_cast.cli import main
from tensor_cast.models import registry

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


# ---- the warm path: no torch, no transformers; side entries (specs, re-timed records) --------------

WARM_PROBE = """
import sys
from tensor_cast.cli import main
from tensor_cast.models import registry
status = main({argv!r})
heavy = sorted(m for m in ("torch", "transformers") if m in sys.modules)
print("HEAVY=" + ",".join(heavy), "STATUS=" + str(status), file=sys.stderr)
"""


def test_warm_analyze_imports_neither_torch_nor_transformers(store, capsys):
    import os
    import subprocess
    import sys

    args = ["analyze", MODEL, "--device", "h100-sxm", "--batch-size", "4", "--context-len", "512", "--tp", "2"]
    assert main(args) == 0  # cold: stores the record, the spec, the re-timed record and the family's TP plan
    cold = capsys.readouterr().out
    assert {p.parent.name for p in store.root.rglob("*.trace")} == {"traces", "specs", "timed", "tp_plans"}
    env = {**os.environ, "TENSOR_CAST_CACHE_DIR": str(store.root)}
    done = subprocess.run([sys.executable, "-c", WARM_PROBE.format(argv=args)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.stderr.strip().splitlines()[-1] == "HEAVY= STATUS=0", done.stderr
    assert done.stdout == cold  # the same report, to the character


def test_lazy_calls_give_the_uncached_ep_overlap(store, monkeypatch):
    """The EP overlap model reads each MoE node's OpCall: from the cache it is unpickled on use."""
    from tensor_cast.costed import LazyCall

    kwargs = dict(device="h100-sxm", batch_size=64, query_len=1, context_len=1024, dp=8, ep=8,
                  num_hidden_layers=2)  # GLM-4.5-Air: one dense layer, one MoE layer with a shared expert
    uncached = tensor_cast.analyze("zai-org/GLM-4.5-Air", cache=False, **kwargs)
    tensor_cast.analyze("zai-org/GLM-4.5-Air", **kwargs)
    analysis._RECORDS.clear()
    _no_trace(monkeypatch)
    hit = tensor_cast.analyze("zai-org/GLM-4.5-Air", **kwargs)
    lazy = [n for n in hit._costed.nodes if isinstance(n.call, LazyCall)]
    assert len(lazy) == len(hit._costed.nodes)
    assert hit.ep_overlapped_time_s < hit.total_time_s  # the shared expert hides part of the exchange
    assert hit.ep_overlapped_time_s == uncached.ep_overlapped_time_s
    assert hit.to_json() == uncached.to_json()
    moe = next(n for n in hit._costed.nodes if n.op == "tensor_cast.moe")
    fresh = next(n for n in uncached._costed.nodes if n.name == moe.name)
    assert moe.op_call().op is fresh.op_call().op and moe.op_call().args == fresh.op_call().args


def test_an_edited_device_profile_or_config_is_a_new_side_entry(store, tmp_path):
    """Side entries are keyed by contents: an edited profile re-times, an edited config re-reads."""
    source = Path(__file__).resolve().parents[1] / "backends" / "profiles" / "h100_sxm.toml"
    slower = tmp_path / "slow.toml"
    text = source.read_text()
    bandwidth = re.search(r"^bandwidth_gbps\s*=\s*([0-9.]+)", text, re.M)  # [memory] bandwidth_gbps
    assert bandwidth is not None
    slower.write_text(text.replace(bandwidth.group(0), f"bandwidth_gbps = {float(bandwidth.group(1)) / 2}"))
    fast = tensor_cast.analyze(MODEL, device="h100-sxm", **POINT)
    slow = tensor_cast.analyze(MODEL, device=str(slower), **POINT)
    assert len(list((store.root / "timed").glob("*.trace"))) == 2
    decode_memory = sum(r.memory_s for r in fast.ops)
    # half the bandwidth, not the cached timing (the decode attention's split-KV CTA floor does not scale with HBM)
    assert sum(r.memory_s for r in slow.ops) > 1.3 * decode_memory

    model_dir = tmp_path / "tiny"
    model_dir.mkdir()
    config = dict(registry.lookup(MODEL).config)
    (model_dir / "config.json").write_text(json.dumps(config))
    first = tensor_cast.load_model(str(model_dir))
    (model_dir / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))
    again = tensor_cast.load_model(str(model_dir))
    assert first.num_layers == config["num_hidden_layers"] and again.num_layers == 3
    assert len(list((store.root / "specs").glob("*.trace"))) == 3  # the registry id's, then one per contents
