"""Report renderings: per-op rows, tables, JSON, Chrome trace, graph dumps, the CLI outputs."""

from __future__ import annotations

import itertools
import json

import pytest

import tensor_cast
from tensor_cast.cli import main

LLAMA = "meta-llama/Llama-3.2-1B"
LAYERS = 16


@pytest.fixture(scope="module")
def decode():
    return tensor_cast.analyze(LLAMA, device="h100-sxm", batch_size=8, query_len=1, context_len=1024)


def test_rows_cover_every_layer_in_execution_order(decode):
    layers = [r.layer for r in decode.ops if r.layer is not None]
    assert sorted(set(layers)) == list(range(LAYERS))
    assert layers == sorted(layers)
    assert decode.ops[0].phase == "prologue" and decode.ops[-1].module == "lm_head"
    starts = [r.start_s for r in decode.ops]
    assert starts == sorted(starts)
    assert decode.ops[-1].start_s + decode.ops[-1].time_s == pytest.approx(decode.total_time_s)
    assert sum(r.time_s for r in decode.ops) == pytest.approx(decode.total_time_s)
    from tensor_cast.backends.formulas import KINDS

    assert {r.kind for r in decode.ops} <= set(KINDS)


def test_row_fields(decode):
    row = next(r for r in decode.ops if r.kind == "attention")
    assert row.layer == 0 and row.module == "model.layers.0.self_attn"
    assert row.shapes.startswith("(8, 32, 1, 64)")
    assert row.dtype == "bfloat16" and row.bound in ("memory", "compute", "overhead")
    assert row.time_s == pytest.approx(max(row.compute_s, row.memory_s, row.comm_s) + row.latency_s + row.overhead_s)


@pytest.mark.parametrize("by", ["op", "kind", "layer", "module", "node"])
def test_tables(decode, by):
    text = decode.table(by=by)
    assert "share" in text or by == "node"
    if by == "layer":
        assert "prologue" in text and "epilogue" in text
    if by == "module":
        assert "model.layers.*.self_attn" in text


def test_json_round_trip(decode):
    data = json.loads(decode.to_json())
    assert data["model"] == LLAMA and data["point"] == {"batch_size": 8, "query_len": 1, "context_len": 1024}
    assert data["totals"]["time_s"] == pytest.approx(decode.total_time_s)
    assert len(data["ops"]) == len(decode.ops)
    assert set(data["memory"]) == {"weights_bytes", "kv_cache_bytes", "activation_peak_bytes"}
    assert data["num_parameters"] == decode.num_parameters
    assert any(f["op"] == "Tensor.view" for f in data["free_ops"])


def test_chrome_trace(decode):
    trace = decode.chrome_trace()
    ops = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["cat"] != "layer"]
    layers = [e for e in trace["traceEvents"] if e.get("cat") == "layer"]
    assert len(ops) == len(decode.ops) and len(layers) == LAYERS
    assert all(b["ts"] >= a["ts"] for a, b in itertools.pairwise(ops))


def test_symbolic_report_has_no_trace():
    symbolic = tensor_cast.analyze(LLAMA, device="h100-sxm", symbolic=True)
    with pytest.raises(tensor_cast.TensorCastError, match="needs a concrete point"):
        symbolic.chrome_trace()


def test_cli_writes_every_output(tmp_path, capsys):
    out, trace, graphs = tmp_path / "out.json", tmp_path / "trace.json", tmp_path / "graphs"
    status = main(["analyze", LLAMA, "--device", "h100-sxm", "--batch-size", "4", "--query-len", "1",
                   "--context-len", "512", "--json", str(out), "--trace", str(trace), "--dump-graph", str(graphs),
                   "--by", "layer"])
    printed = capsys.readouterr().out
    assert status == 0
    assert "tokens/s" in printed and "KV cache" in printed and "share" in printed
    assert json.loads(out.read_text())["point"]["batch_size"] == 4
    assert json.loads(trace.read_text())["traceEvents"]
    dumps = sorted(p.name for p in graphs.iterdir() if p.name != ".tensor_cast_dumps")  # the manifest
    assert dumps[0] == "00_capture.txt" and "01_verify_attention_replaced.txt" in dumps
    assert "tensor_cast.attention" in (graphs / dumps[-1]).read_text()


def test_models_command_lists_the_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for model_id in tensor_cast.list_models():
        assert model_id in out
