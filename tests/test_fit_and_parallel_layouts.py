"""Memory fit (fits / max batch / max context / what would fit), pipeline stages, DP replicas, CLI."""

from __future__ import annotations

import dataclasses
import json
import re
from importlib import resources

import pytest

import tensor_cast
from tensor_cast.cli import main
from tensor_cast.models import registry

GIB = 2**30
UTILIZATION = 0.9  # vLLM's default gpu_memory_utilization


def config(model_id):
    return registry.lookup(model_id).config


def llama_weights_per_rank(c, tp):
    """bf16 bytes of one TP rank of a Llama: sharded projections, replicated norms, vocab split."""
    hidden, heads, kv, inter, vocab, layers = (c[k] for k in ("hidden_size", "num_attention_heads",
                                                              "num_key_value_heads", "intermediate_size",
                                                              "vocab_size", "num_hidden_layers"))
    hd = hidden // heads
    sharded = hidden * (heads + 2 * kv) * hd + heads * hd * hidden + 3 * hidden * inter
    padded_vocab = -(-vocab // 64) * 64
    return 2 * (layers * (sharded // tp + 2 * hidden) + 2 * -(-padded_vocab // tp) * hidden + hidden)


def kv_bytes_per_token(c, tp):
    hd = c["hidden_size"] // c["num_attention_heads"]
    return 2 * max(c["num_key_value_heads"] // tp, 1) * hd * c["num_hidden_layers"] * 2  # K and V, bf16


def test_llama_405b_bf16_does_not_fit_on_8_h100(h100_cluster):
    c = config("meta-llama/Llama-3.1-405B")
    report = tensor_cast.analyze("meta-llama/Llama-3.1-405B", device=h100_cluster, batch_size=1, query_len=1,
                                 context_len=4096, tp=8)
    weights = llama_weights_per_rank(c, 8)
    assert report.memory.weights_bytes == weights
    assert weights > 80 * GIB  # ~101.5 GB per GPU: more than the whole device
    fit = report.fit
    assert not fit.fits and fit.max_batch_size == 0
    assert fit.usable_bytes == UTILIZATION * 80 * GIB
    # twice the GPUs halve the weights per GPU: ~51 GB fits
    assert any(s.startswith("16 x h100-sxm (2 nodes)") for s in fit.suggestions)
    assert "DOES NOT FIT" in report.summary() and "would fit: 16 x h100-sxm" in report.summary()


def test_llama_405b_pp2_stages(h100_cluster):
    c = config("meta-llama/Llama-3.1-405B")
    report = tensor_cast.analyze("meta-llama/Llama-3.1-405B", device=h100_cluster, batch_size=8, query_len=1,
                                 context_len=4096, tp=8, pp=2)
    pipe = report.pipeline
    assert [len(s.layers) for s in pipe.stages] == [c["num_hidden_layers"] // 2] * 2
    assert sum(s.weights_bytes for s in pipe.stages) == llama_weights_per_rank(c, 8)
    assert report.memory.weights_bytes == max(s.weights_bytes for s in pipe.stages)
    assert report.fit.fits
    sends = [r for r in report.ops if r.op == "tensor_cast.send_recv"]
    assert len(sends) == 1 and sends[0].layer is None
    # hidden states and residual, B·S·H bf16 each, handed from stage 0 (node 0) to stage 1 (node 1)
    assert sends[0].bytes == 2 * (2 * 8 * 1 * c["hidden_size"] * 2)
    link = h100_cluster.interconnect
    assert sends[0].comm_s == pytest.approx(link.inter_node_latency_us * 1e-6
                                            + 2 * 8 * c["hidden_size"] * 2 / (link.inter_node_bandwidth_gbps * 1e9))
    assert pipe.latency_s == pytest.approx(sum(s.time_s for s in pipe.stages))
    assert pipe.step_s == max(s.time_s for s in pipe.stages)
    assert 0 <= pipe.bubble < 0.05  # 63 + 63 equal layers: nearly balanced
    assert "pipeline          2 stages" in report.summary()


@pytest.fixture(scope="module")
def llama70b_tp4_decode(h100_cluster):
    return tensor_cast.analyze("meta-llama/Llama-3.1-70B", device=h100_cluster, batch_size=64, query_len=1,
                               context_len=4096, tp=4)


def test_llama_70b_tp4_fits_with_max_batch_and_context(llama70b_tp4_decode):
    c = config("meta-llama/Llama-3.1-70B")
    usable = UTILIZATION * 80 * GIB
    free = usable - llama_weights_per_rank(c, 4)
    per_sequence = kv_bytes_per_token(c, 4) * (4096 + 1)
    fit = llama70b_tp4_decode.fit
    assert fit.fits
    derived = int(free // per_sequence)  # ignoring the (small) activation peak
    assert fit.max_batch_size in (derived - 1, derived)
    report = llama70b_tp4_decode
    assert report.evaluate(fit.max_batch_size, 1, 4096).fit.fits
    assert not report.evaluate(fit.max_batch_size + 1, 1, 4096).fit.fits
    context = int(free // (64 * kv_bytes_per_token(c, 4))) - 1  # C + 1 tokens held per sequence
    assert context - 8 <= fit.max_context_len <= context


def test_data_parallel_replicas_split_the_batch(h100_cluster):
    one = tensor_cast.analyze("meta-llama/Llama-3.2-1B", device=h100_cluster, batch_size=32, query_len=1,
                              context_len=1024)
    two = tensor_cast.analyze("meta-llama/Llama-3.2-1B", device=h100_cluster, batch_size=64, query_len=1,
                              context_len=1024, dp=2)
    assert two.total_time_s == one.total_time_s  # each replica runs 32 sequences
    assert two.tokens_per_s == pytest.approx(2 * one.tokens_per_s)
    assert two.memory.kv_cache_bytes == one.memory.kv_cache_bytes
    assert two.fit.max_batch_size == 2 * one.fit.max_batch_size
    sym = tensor_cast.analyze("meta-llama/Llama-3.2-1B", device=h100_cluster, symbolic=True, dp=2)
    swept = sym.sweep(batch_size=[64], query_len=1, context_len=1024)["total_time_s"]
    assert swept[0] == pytest.approx(one.total_time_s)


def _profile_file(tmp_path, h100_cluster):
    """A user's own profile file: the H100's, with the test interconnect numbers."""
    text = (resources.files("tensor_cast.backends") / "profiles" / "h100_sxm.toml").read_text()
    head, _, rest = text.partition("[interconnect]")
    # a custom profile needs its own name: built-in names and aliases are refused for files
    head = re.sub(r'(?m)^name = .*$', 'name = "h100-test-cluster"', head)
    head = re.sub(r'(?m)^aliases = .*$', 'aliases = []', head)
    tail = rest[rest.index("\n["):] if rest else ""
    link = dataclasses.asdict(h100_cluster.interconnect)
    rows = "\n".join(f"{k} = {json.dumps(v)}" for k, v in link.items() if v is not None)
    path = tmp_path / "cluster.toml"
    path.write_text(f"{head}[interconnect]\n{rows}\n{tail}")
    return str(path)


def test_cli_deployment_flags(tmp_path, capsys, h100_cluster):
    device = _profile_file(tmp_path, h100_cluster)
    out = tmp_path / "report.json"
    code = main(["analyze", "meta-llama/Llama-3.2-1B", "--device", device, "--batch-size", "16", "--context-len", "2048",
                 "--tp", "2", "--pp", "2", "--quant", "fp8", "--kv-cache-dtype", "fp8", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    for needle in ("4 GPUs, TP2, PP2, weights fp8, KV cache fp8", "tensor_cast.all_reduce", "tensor_cast.quant_linear",
                   "tensor_cast.send_recv", "fit               fits", "pipeline          2 stages"):
        assert needle in text
    data = json.loads(out.read_text())
    assert data["deployment"]["tp"] == 2 and data["deployment"]["world_size"] == 4
    assert data["fit"]["fits"] is True and len(data["pipeline"]["stages"]) == 2


def test_cli_deployment_errors_exit_2(tmp_path, capsys, h100_cluster):
    device = _profile_file(tmp_path, h100_cluster)
    code = main(["analyze", "meta-llama/Llama-3.2-1B", "--device", device, "--tp", "3"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err == "tensor-cast: error: tp=3 does not divide num_attention_heads=32; valid tp: 1, 2, 4, 8, 16, 32"
    code = main(["analyze", "meta-llama/Llama-3.2-1B", "--device", device, "--quant", "int3"])
    assert code == 2 and "unknown quant 'int3'; accepted: none, fp8" in capsys.readouterr().err
