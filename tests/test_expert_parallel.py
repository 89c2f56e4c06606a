"""Expert parallelism: the exchange ops and their bytes, the per-rank routed share, the pass on a
tiny graph, and Qwen3-30B-A3B / GLM-4.5-Air end to end (memory, KV cache, graph structure,
overlap, CLI). Every expected number is derived here from named dimensions."""

from __future__ import annotations

import json
import re

import pytest
import sympy
import torch
from moe_graphs import TinyMoE, call_targets, node_values
from torch import nn

import tensor_cast
from tensor_cast.backends.formulas import OpCall, TensorInfo
from tensor_cast.backends.formulas.moe import inclusion_probabilities, routed_counts
from tensor_cast.backends.formulas.registry import CostKnobs
from tensor_cast.cli import main
from tensor_cast.errors import DeploymentError
from tensor_cast.models import registry
from tensor_cast.passes.insert_ep_collectives import insert_ep_collectives
from tensor_cast.passes.node_facts import facts
from tensor_cast.passes.op_args import arg

tc = torch.ops.tensor_cast
BF16 = 2
FP8_WIRE = 1 + sympy.Rational(4, 128)  # DeepEP FP8 dispatch: E4M3 + one fp32 scale per 128 channels


def meta(*shape, dtype=torch.bfloat16):
    return torch.empty(*shape, dtype=dtype, device="meta")


def config(model_id):
    return registry.lookup(model_id).config


# ---- the exchange ops ------------------------------------------------------------------------
def test_opcheck_and_reference_semantics():
    x = torch.randn(3, 4, 16)
    for op, args in ((tc.ep_dispatch.default, (x, 2, 8, 4, 4, 1, "fp8")),
                     (tc.ep_combine.default, (x, 2, 8, 4, 4, 1))):
        torch.library.opcheck(op, args)
        torch.testing.assert_close(op(*args), x)  # every simulated rank holds the same tokens
    with pytest.raises(ValueError, match="unknown dispatch wire dtype 'int3'; known: fp8, nvfp4, bf16"):
        tc.ep_dispatch(x, 2, 8, 4, 4, 1, "int3")


@pytest.mark.parametrize("tp, dp", [(1, 8), (2, 4), (1, 16)])
def test_dispatch_and_combine_bytes_per_rank(h100_cluster, tp, dp):
    batch, seq, hidden, top_k, experts = 4, 8, 2048, 8, 128
    ep, tokens = tp * dp, batch * seq  # T: this replica's tokens
    # uniform routing: the group routes dp·T tokens, k rows each, over ep ranks; each receives
    # dp·T·k/ep = T·k/tp rows (its own T/tp tokens' rows, as many as it sends), (ep-1)/ep from others
    rows = dp * tokens * top_k // ep
    assert rows == tokens * top_k // tp
    x = meta(batch, seq, hidden)
    dispatch = tensor_cast.op_cost(tc.ep_dispatch.default, x, top_k, experts, ep, dp, 1, "fp8",
                                   device=h100_cluster)
    payload = rows * hidden * FP8_WIRE
    assert dispatch.counts.comm.payload_bytes == payload
    assert dispatch.counts.comm_bytes == sympy.Rational(ep - 1, ep) * payload
    assert (dispatch.counts.comm.collective, dispatch.counts.comm.scope, dispatch.counts.comm.group_size) == \
        ("all_to_all", "ep", ep)
    combine = tensor_cast.op_cost(tc.ep_combine.default, x, top_k, experts, ep, dp, 1, device=h100_cluster)
    assert combine.counts.comm_bytes == sympy.Rational(ep - 1, ep) * rows * hidden * BF16
    assert combine.kind == "collective"
    bf16 = tensor_cast.op_cost(tc.ep_dispatch.default, x, top_k, experts, ep, dp, 1, "bf16", device=h100_cluster)
    assert bf16.counts.comm_bytes == combine.counts.comm_bytes
    # NVFP4: E2M1 (half a byte) + one E4M3 scale byte per 16 channels = 9/16 byte per element
    nvfp4 = tensor_cast.op_cost(tc.ep_dispatch.default, x, top_k, experts, ep, dp, 1, "nvfp4", device=h100_cluster)
    assert nvfp4.counts.comm_bytes == sympy.Rational(ep - 1, ep) * rows * hidden * sympy.Rational(9, 16)


def test_exchange_time_intra_and_inter_node(h100_cluster):
    link = h100_cluster.interconnect
    tokens, hidden, top_k, experts = 64, 4096, 8, 256
    x = meta(tokens, hidden)
    m = tokens * top_k * hidden * BF16  # tp = 1: every row of the rank's tokens
    one = tensor_cast.op_cost(tc.ep_combine.default, x, top_k, experts, 8, 8, 1, device=h100_cluster)
    assert one.counts.comm.payload_bytes == m
    assert one.time_s >= link.intra_node_latency_us * 1e-6 + 7 / 8 * m / (link.intra_node_bandwidth_gbps * 1e9)
    # 16 ranks over 2 nodes: 7/16 of the rows stay in the node (NVLink), 8/16 cross InfiniBand, at the same time
    two = tensor_cast.op_cost(tc.ep_combine.default, x, top_k, experts, 16, 16, 2, device=h100_cluster)
    expected = link.inter_node_latency_us * 1e-6 + max(7 / 16 * m / (link.intra_node_bandwidth_gbps * 1e9),
                                                        8 / 16 * m / (link.inter_node_bandwidth_gbps * 1e9))
    assert two.counts.comm_bytes == sympy.Rational(15, 16) * m
    assert two.time_s - two.overhead_s == pytest.approx(expected)


# ---- the rank's share of the routed work ------------------------------------------------------
def _moe_call(tokens, *, experts=128, top_k=8, hidden=2048, inter=768, skew=0.0, ep=1, ep_dp=1):
    t = TensorInfo
    args = (t((tokens, hidden), torch.bfloat16), t((experts, hidden), torch.bfloat16), [],
            t((experts, 2 * inter, hidden), torch.bfloat16), t((experts, hidden, inter), torch.bfloat16), None, None,
            [], [], top_k, "softmax", "silu", "concat", False, "none", ep, ep_dp)
    return OpCall(op=tc.moe.default, args=args, outputs=(t((tokens, hidden), torch.bfloat16),),
                  knobs=CostKnobs(moe_skew=skew))


@pytest.mark.parametrize("ep, dp", [(8, 1), (8, 8), (4, 2)])
def test_routed_work_per_rank_is_the_ranks_share(ep, dp):
    tokens, experts, top_k, hidden, inter = 48, 128, 8, 2048, 768
    counts = routed_counts(_moe_call(tokens, ep=ep, ep_dp=dp))
    pairs = sympy.Rational(dp * tokens * top_k, ep)  # the group's dp·T tokens' pairs, split over ep ranks
    assert counts.flops["bf16"] == 2 * pairs * hidden * 2 * inter + 2 * pairs * inter * hidden
    whole = routed_counts(_moe_call(tokens * dp))  # one GPU routing all dp·T tokens over all experts
    assert ep * counts.flops["bf16"] == whole.flops["bf16"]  # routed FLOPs per rank = total / ep
    # weights read: the local experts hit, (E/ep)·(1 - (1 - k/E)^(dp·T)), 3·H·I bf16 each
    hit = experts / ep * (1 - (1 - top_k / experts) ** (dp * tokens))
    per_expert = 3 * hidden * inter * BF16
    activations = pairs * (4 + hidden * BF16 + 2 * inter * BF16 + inter * BF16 + hidden * BF16)  # ids, x, h, a, y
    assert float(counts.bytes_read) == pytest.approx(float(activations + hit * per_expert), rel=1e-12)


def test_skewed_routing_costs_the_most_loaded_rank():
    tokens, experts, top_k, ep, skew, hidden, inter = 64, 128, 8, 8, 1.0, 2048, 768
    q = inclusion_probabilities(experts, top_k, skew)
    hottest = q[::ep]  # round-robin by popularity: rank 0 holds the 1st, 9th, 17th ... most popular
    assert sum(hottest) == max(sum(q[r::ep]) for r in range(ep))
    pairs = tokens * sum(hottest)
    counts = routed_counts(_moe_call(tokens, skew=skew, ep=ep))
    assert float(counts.flops["bf16"]) == pytest.approx(6 * pairs * hidden * inter)
    uniform = routed_counts(_moe_call(tokens, ep=ep))
    assert counts.flops["bf16"] > uniform.flops["bf16"]  # the hot rank sets the step time
    x = meta(tokens, hidden)
    dispatch = tensor_cast.op_cost(tc.ep_dispatch.default, x, top_k, experts, ep, ep, 1, "bf16", device="h100-sxm",
                                  moe_skew=skew)
    assert float(dispatch.counts.comm.payload_bytes) == pytest.approx(ep * tokens * sum(hottest) * hidden * BF16)


# ---- the pass on a tiny graph (tests/moe_graphs.py) ------------------------------------------------
def test_insert_ep_collectives_places_dispatch_and_combine(capture_module):
    x = torch.randn(3, 16)
    gm, inputs = capture_module(TinyMoE(), x)
    with torch.no_grad():
        expected = gm(*inputs)
    before, count = node_values(gm), len(gm.graph.nodes)
    gm = insert_ep_collectives(gm, ep=4, dp=4, nodes=1)
    targets = call_targets(gm)
    assert targets.count(tc.ep_dispatch.default) == 1 and targets.count(tc.ep_combine.default) == 1
    assert len(gm.graph.nodes) == count + 2
    moe = next(n for n in gm.graph.nodes if n.target is tc.moe.default)
    dispatch, combine = arg(moe, "hidden"), next(iter(moe.users))
    assert dispatch.target is tc.ep_dispatch.default and combine.target is tc.ep_combine.default
    assert [arg(dispatch, k) for k in ("top_k", "num_experts", "group_size", "ep_dp", "nodes", "wire_dtype")] \
        == [2, 8, 4, 4, 1, "fp32"]
    assert combine.args == (moe, 2, 8, 4, 4, 1) and list(moe.users) == [combine]
    assert (arg(moe, "ep"), arg(moe, "ep_dp")) == (4, 4)
    assert node_values(gm).items() >= before.items()  # every earlier node keeps its shape and dtype
    shares = {n.name: facts(n).rank_share for n in gm.graph.nodes if n.op == "placeholder"}
    assert sorted(v for v in shares.values() if v != 1) == [0.25, 0.25]  # gate_up and down; the router stays whole
    assert shares[arg(moe, "router_weight").name] == 1
    with torch.no_grad():
        torch.testing.assert_close(gm(*inputs), expected)  # same numbers (reference exchange)


def test_insert_ep_collectives_near_misses(capture_module):
    x = torch.randn(3, 16)
    gm, _ = capture_module(TinyMoE(), x)
    count = len(gm.graph.nodes)
    assert len(insert_ep_collectives(gm, ep=1, dp=4).graph.nodes) == count  # ep = moe_tp = 1: nothing split
    gm = insert_ep_collectives(gm, ep=4, dp=1)  # dp = 1: every rank holds every token, no exchange
    assert len(gm.graph.nodes) == count and tc.ep_dispatch.default not in call_targets(gm)
    moe = next(n for n in gm.graph.nodes if n.target is tc.moe.default)
    assert (arg(moe, "ep"), arg(moe, "ep_dp")) == (4, 1)
    gm, _ = capture_module(TinyMoE(scheme="fp8"), x)
    wire = next(n for n in insert_ep_collectives(gm, ep=2, dp=2).graph.nodes if n.target is tc.ep_dispatch.default)
    assert wire.args[-1] == "fp8"  # FP8 experts: DeepEP dispatches FP8
    gm, _ = capture_module(TinyMoE(scheme="nvfp4"), x)
    wire = next(n for n in insert_ep_collectives(gm, ep=2, dp=2).graph.nodes if n.target is tc.ep_dispatch.default)
    assert wire.args[-1] == "nvfp4"  # NVFP4 experts: quantized before the all_to_all (TensorRT-LLM post-quant)
    gm, _ = capture_module(TinyMoE(scheme="w4a16"), x)
    wire = next(n for n in insert_ep_collectives(gm, ep=2, dp=2).graph.nodes if n.target is tc.ep_dispatch.default)
    assert wire.args[-1] == "fp32"  # weight-only: the model dtype (fp32 here)
    gm, _ = capture_module(TinyMoE(experts=6), x)
    with pytest.raises(DeploymentError, match="ep=4 does not divide the 6 experts"):
        insert_ep_collectives(gm, ep=4, dp=4)
    gm, _ = capture_module(nn.Linear(16, 16), x)
    with pytest.raises(DeploymentError, match="ep=2: the graph has no MoE layer to split; accepted ep: 1"):
        insert_ep_collectives(gm, ep=2, dp=2)


# ---- Qwen3-30B-A3B end to end -------------------------------------------------------------------
QWEN = "Qwen/Qwen3-30B-A3B"
BATCH, CONTEXT = 64, 4096


@pytest.fixture(scope="module")
def qwen_ep8(h100_cluster):
    """Attention DP8 + MoE EP8 on one 8-GPU node with an all-to-all exchange (SGLang --tp 8
    --enable-dp-attention --dp 8 --ep 8 --moe-a2a-backend deepep; the engines' default all-gather is
    tests/test_moe_exchange.py's)."""
    return tensor_cast.analyze(QWEN, device=h100_cluster, batch_size=BATCH, query_len=1, context_len=CONTEXT,
                               dp=8, ep=8, moe_exchange="all_to_all")


def test_two_exchanges_around_every_moe_op(qwen_ep8):
    c = config(QWEN)
    layer0 = [r.op for r in qwen_ep8.ops if r.layer == 0]
    i = layer0.index("tensor_cast.moe")
    assert layer0[i - 1:i + 2] == ["tensor_cast.ep_dispatch", "tensor_cast.moe", "tensor_cast.ep_combine"]
    for op in ("tensor_cast.ep_dispatch", "tensor_cast.ep_combine"):
        assert sum(1 for r in qwen_ep8.ops if r.op == op) == c["num_hidden_layers"]
    assert not any(r.op == "tensor_cast.all_reduce" for r in qwen_ep8.ops)  # tp = 1: nothing to reduce
    tokens, dp, ep = BATCH // 8, 8, 8  # per-replica tokens at decode
    rows = dp * tokens * c["num_experts_per_tok"] // ep  # received = sent = every row of its own tokens
    per_exchange = (ep - 1) * rows * c["hidden_size"] * BF16 // ep
    assert qwen_ep8.total_comm_bytes == 2 * c["num_hidden_layers"] * per_exchange
    assert qwen_ep8.ep_comm_time_s == pytest.approx(qwen_ep8.comm_time_s)
    assert qwen_ep8.ep_overlapped_time_s == qwen_ep8.total_time_s  # Qwen3-MoE has no shared experts
    assert "no shared experts to overlap it with" in qwen_ep8.summary()


def test_deepseek_v3_ep8_counts_the_whole_model_from_named_dims():
    """Under EP8 + attention DP8 each GPU stores 32 of the 256 routed experts, but the model has
    671B parameters, 37B active per token (DeepSeek-V3 technical report), written out here from
    the config's named dims (e_score_correction_bias is a buffer in transformers, not a parameter)."""
    c = config("deepseek-ai/DeepSeek-V3")
    h, heads, q_rank, kv_rank, nope, rope, v, vocab, layers, dense_layers, experts, top_k, moe_inter, inter, \
        shared = (c[k] for k in ("hidden_size", "num_attention_heads", "q_lora_rank", "kv_lora_rank",
                                 "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "vocab_size", "num_hidden_layers",
                                 "first_k_dense_replace", "n_routed_experts", "num_experts_per_tok",
                                 "moe_intermediate_size", "intermediate_size", "n_shared_experts"))
    attention = (h * q_rank + q_rank + q_rank * heads * (nope + rope) + h * (kv_rank + rope) + kv_rank
                 + kv_rank * heads * (nope + v) + heads * v * h)

    def moe(used):
        return experts * h + used * 3 * h * moe_inter + shared * 3 * h * moe_inter  # router, experts, shared

    base = layers * (attention + 2 * h) + dense_layers * 3 * h * inter + h  # + 2 norms per layer, final norm
    report = tensor_cast.analyze("deepseek-ai/DeepSeek-V3", device="h200", batch_size=8, query_len=1, context_len=1024,
                                 ep=8, dp=8)
    assert report.num_parameters == base + (layers - dense_layers) * moe(experts) + 2 * vocab * h
    assert report.active_parameters == base + (layers - dense_layers) * moe(top_k) + vocab * h  # lm_head, no lookup
    assert report.num_parameters == pytest.approx(671e9, rel=1e-3)
    assert report.active_parameters == pytest.approx(37e9, rel=0.02)


def test_weights_and_kv_cache_per_gpu(qwen_ep8):
    c = config(QWEN)
    h, heads, kv, hd, e, inter, layers, vocab = (c[k] for k in (
        "hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim", "num_experts",
        "moe_intermediate_size", "num_hidden_layers", "vocab_size"))
    ep, dp = 8, 8
    attention = h * heads * hd + 2 * h * kv * hd + heads * hd * h + 2 * hd  # q, k, v, o, q/k norms (whole: tp=1)
    experts = e * 3 * h * inter // ep  # E/ep experts per GPU
    per_layer = attention + e * h + experts + 2 * h  # + router (whole) + 2 norms
    weights = layers * per_layer + 2 * vocab * h + h  # embedding, lm_head (untied), final norm: replicated
    assert qwen_ep8.memory.weights_bytes == BF16 * weights
    assert qwen_ep8.num_parameters == layers * (attention + e * h + e * 3 * h * inter + 2 * h) + 2 * vocab * h + h
    # attention DP: each GPU caches only its own BATCH/dp sequences, with every KV head
    assert qwen_ep8.memory.kv_cache_bytes == layers * 2 * kv * hd * BF16 * (BATCH // dp) * (CONTEXT + 1)
    assert qwen_ep8.fit.fits and qwen_ep8.fit.max_batch_size % dp == 0


def test_moe_work_per_rank_equals_its_own_tokens_alone(qwen_ep8, h100_cluster):
    """Uniform routing with ep = dp: each rank receives dp·T·k/ep = T·k pairs — the routed FLOPs of
    one GPU running its own T tokens through all experts."""
    alone = tensor_cast.analyze(QWEN, device=h100_cluster, batch_size=BATCH // 8, query_len=1, context_len=CONTEXT,
                                num_hidden_layers=2)
    ep_moe = next(r for r in qwen_ep8.ops if r.layer == 0 and r.op == "tensor_cast.moe")
    one_moe = next(r for r in alone.ops if r.layer == 0 and r.op == "tensor_cast.moe")
    assert ep_moe.flops == one_moe.flops
    assert ep_moe.bytes < one_moe.bytes  # but it reads only the weights of its 16 experts


def test_symbolic_ep_matches_the_point(qwen_ep8, h100_cluster):
    sym = tensor_cast.analyze(QWEN, device=h100_cluster, symbolic=True, dp=8, ep=8)
    assert sym.evaluate(BATCH, 1, CONTEXT).total_time_s == pytest.approx(qwen_ep8.total_time_s)
    swept = sym.sweep(batch_size=[BATCH], query_len=1, context_len=CONTEXT)["total_time_s"]
    assert swept[0] == pytest.approx(qwen_ep8.total_time_s)


def test_tp_ep_without_dp_reduces_instead_of_exchanging(h100_cluster):
    c = config(QWEN)
    report = tensor_cast.analyze(QWEN, device=h100_cluster, batch_size=BATCH, query_len=1, context_len=CONTEXT,
                                 tp=8, ep=8)
    ops = [r.op for r in report.ops]
    assert "tensor_cast.ep_dispatch" not in ops
    assert ops.count("tensor_cast.all_reduce") == 2 * c["num_hidden_layers"] + 1  # as under TP
    assert "attention DP1 x TP8 + MoE EP8 (outputs all-reduced)" in report.summary()


def test_ep_across_two_nodes(h100_cluster):
    report = tensor_cast.analyze(QWEN, device=h100_cluster, batch_size=128, query_len=1, context_len=1024,
                                 dp=16, ep=16, num_hidden_layers=2)
    assert (report.context.deployment.nodes, report.context.deployment.ep_nodes) == (2, 2)
    dispatch = next(r for r in report.ops if r.op == "tensor_cast.ep_dispatch")
    link, c = h100_cluster.interconnect, config(QWEN)
    m = (128 // 16) * c["num_experts_per_tok"] * c["hidden_size"] * BF16
    assert dispatch.comm_s == pytest.approx(link.inter_node_latency_us * 1e-6 + max(
        7 / 16 * m / (link.intra_node_bandwidth_gbps * 1e9), 8 / 16 * m / (link.inter_node_bandwidth_gbps * 1e9)))


def test_fp8_dispatch_in_fp8_and_combine_in_bf16(h100_cluster):
    c = config(QWEN)
    report = tensor_cast.analyze(QWEN, device=h100_cluster, batch_size=BATCH, query_len=1, context_len=CONTEXT,
                                 dp=8, ep=8, quant="fp8", num_hidden_layers=2)
    rows = (BATCH // 8) * c["num_experts_per_tok"]
    dispatch = next(r for r in report.ops if r.op == "tensor_cast.ep_dispatch")
    combine = next(r for r in report.ops if r.op == "tensor_cast.ep_combine")
    assert dispatch.bytes == pytest.approx(float(2 * rows * c["hidden_size"] * FP8_WIRE))  # read + written
    assert combine.bytes == 2 * rows * c["hidden_size"] * BF16


# ---- shared experts: replicated, and the exchange hidden behind them --------------------------------
def test_glm_shared_experts_replicated_and_overlap(h100_cluster):
    model, ep = "zai-org/GLM-4.5-Air", 8
    c = config(model)
    h, e, inter = c["hidden_size"], c["n_routed_experts"], c["moe_intermediate_size"]
    moe_layers = c["num_hidden_layers"] - c["first_k_dense_replace"]
    kwargs = dict(device=h100_cluster, batch_size=256, query_len=1, context_len=2048)
    one = tensor_cast.analyze(model, **kwargs, dp=8)
    ep8 = tensor_cast.analyze(model, **kwargs, dp=8, ep=ep)
    routed = moe_layers * e * 3 * h * inter * BF16
    # only the routed experts are split: the shared expert (and everything else) stays on every GPU
    assert one.memory.weights_bytes - ep8.memory.weights_bytes == routed * (1 - 1 / ep)
    assert one.memory.kv_cache_bytes == ep8.memory.kv_cache_bytes
    # the exchange hides behind the shared expert: at most min(exchange, shared) per MoE layer
    hidden = ep8.total_time_s - ep8.ep_overlapped_time_s
    assert 0 < hidden <= ep8.ep_comm_time_s
    assert "EP all_to_all" in ep8.summary() and "overlapped with the shared experts" in ep8.summary()
    data = json.loads(ep8.to_json())
    assert data["totals"]["ep_overlapped_time_s"] == pytest.approx(ep8.ep_overlapped_time_s)


# ---- validation and the CLI ------------------------------------------------------------------------
def test_validation_errors(h100_cluster):
    with pytest.raises(DeploymentError, match=r"ep=3 does not divide the tp·dp = 8 GPUs .*valid ep: 1, 2, 4, 8$"):
        tensor_cast.analyze(QWEN, device=h100_cluster, batch_size=1, query_len=1, dp=8, ep=3)
    with pytest.raises(DeploymentError, match=r"ep=8 does not divide num_experts=60; valid ep: 1, 2, 4$"):
        tensor_cast.analyze("Qwen/Qwen1.5-MoE-A2.7B", device=h100_cluster, batch_size=1, query_len=1, dp=8, ep=8)
    with pytest.raises(DeploymentError, match=r"ep=2 needs MoE layers; meta-llama/Llama-3.2-1B has none"):
        tensor_cast.analyze("meta-llama/Llama-3.2-1B", device=h100_cluster, batch_size=1, query_len=1, dp=2, ep=2)
    with pytest.raises(DeploymentError, match=r"world size tp·dp·pp = 1·8·1 = 8 but nodes × gpus_per_node = 2 × 8"):
        tensor_cast.analyze(QWEN, device=h100_cluster, batch_size=1, query_len=1, dp=8, ep=8, nodes=2, gpus_per_node=8)


def _device_file(tmp_path, h100_cluster):
    """A user's profile file: the H100's with the test interconnect (the CLI takes a path)."""
    import dataclasses
    from importlib import resources

    text = (resources.files("tensor_cast.backends") / "profiles" / "h100_sxm.toml").read_text()
    head, _, rest = text.partition("[interconnect]")
    # a custom profile needs its own name: built-in names and aliases are refused for files
    head = re.sub(r'(?m)^name = .*$', 'name = "h100-test-cluster"', head)
    head = re.sub(r'(?m)^aliases = .*$', 'aliases = []', head)
    tail = rest[rest.index("\n["):] if rest else ""
    rows = "\n".join(f"{k} = {json.dumps(v)}" for k, v in dataclasses.asdict(h100_cluster.interconnect).items()
                     if v is not None)
    head = head.replace('name = "h100-sxm"', 'name = "h100-test-cluster"').replace("aliases = [", "# aliases = [")
    path = tmp_path / "cluster.toml"  # its own name: a user's file may not reuse a built-in device's
    path.write_text(f"{head}[interconnect]\n{rows}\n{tail}")
    return str(path)


def test_cli_ep(tmp_path, capsys, h100_cluster):
    device = _device_file(tmp_path, h100_cluster)
    out = tmp_path / "ep.json"
    code = main(["analyze", QWEN, "--device", device, "--batch-size", str(BATCH), "--context-len", str(CONTEXT),
                 "--dp", "8", "--ep", "8", "--moe-exchange", "all_to_all", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    for needle in ("8 GPUs, EP8, DP8, attention DP8 x TP1 + MoE EP8 (all_to_all dispatch/combine)",
                   "tensor_cast.ep_dispatch", "tensor_cast.ep_combine", "EP all_to_all"):
        assert needle in text
    data = json.loads(out.read_text())
    assert (data["deployment"]["ep"], data["deployment"]["dp"], data["deployment"]["world_size"]) == (8, 8, 8)
    code = main(["analyze", QWEN, "--device", device, "--dp", "8", "--ep", "6"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("tensor-cast: error: ep=6 does not divide the tp·dp = 8 GPUs") and err.endswith("valid ep: 1, 2, 4, 8")


# ---- DeepSeek-V3 (FP8 block checkpoint): 8xH100 vs 8xH200, EP8 + attention DP8 vs TP8 -------------
DEEPSEEK = "deepseek-ai/DeepSeek-V3"
FP8_BLOCK = 1 + sympy.Rational(4, 128 * 128)  # E4M3 + one fp32 scale per 128x128 block (the checkpoint)


def deepseek_ep8_weights(c, ep=8):
    """Bytes per GPU under attention DP8 + MoE EP8 (tp = 1): every weight whole, routed experts / ep.

    Projections are stored FP8-block, kv_b_proj included (as the checkpoint stores it: its
    quantization_config lists no modules_to_not_convert); norms, embeddings, lm_head and the
    router stay bf16."""
    h, heads, layers, dense = c["hidden_size"], c["num_attention_heads"], c["num_hidden_layers"], c["first_k_dense_replace"]
    q_lora, kv_lora, nope, rope, v = (c[k] for k in ("q_lora_rank", "kv_lora_rank", "qk_nope_head_dim",
                                                     "qk_rope_head_dim", "v_head_dim"))
    e, moe_i, shared = c["n_routed_experts"], c["moe_intermediate_size"], c["n_shared_experts"]
    fp8_attention = (h * q_lora + q_lora * heads * (nope + rope) + h * (kv_lora + rope)
                     + kv_lora * heads * (nope + v) + heads * v * h)  # q_a, q_b, kv_a, kv_b, o
    bf16_attention = q_lora + kv_lora + 2 * h  # two latent norms, two layer norms
    per_layer = fp8_attention * FP8_BLOCK + bf16_attention * BF16
    dense_mlp = 3 * h * c["intermediate_size"] * FP8_BLOCK
    moe = (3 * h * moe_i * e * FP8_BLOCK / ep  # routed experts: E/ep per GPU
           + 3 * h * moe_i * shared * FP8_BLOCK  # shared expert: on every GPU
           + e * h * BF16)  # router
    model = (2 * c["vocab_size"] * h + h) * BF16  # embedding, lm_head, final norm: replicated under DP
    return layers * per_layer + dense * dense_mlp + (layers - dense) * moe + model


@pytest.fixture(scope="module")
def deepseek_h100():
    """Both 8xH100 deployments, symbolic (one trace each; every test evaluates its point)."""
    return {name: tensor_cast.analyze(DEEPSEEK, device="h100-sxm", symbolic=True, **kw)
            for name, kw in (("ep8", dict(dp=8, ep=8)), ("tp8", dict(tp=8)))}


def test_deepseek_fp8_ep8_weights_per_gpu(deepseek_h100):
    c = config(DEEPSEEK)
    report = deepseek_h100["ep8"].evaluate(64, 1, 4096)
    assert report.context.deployment.quant == "fp8_block"  # the checkpoint's own format
    assert report.memory.weights_bytes == pytest.approx(float(deepseek_ep8_weights(c)), rel=1e-12)
    one_rank = float(deepseek_ep8_weights(c, ep=1))
    routed = (c["num_hidden_layers"] - c["first_k_dense_replace"]) * c["n_routed_experts"] * 3 * c["hidden_size"] \
        * c["moe_intermediate_size"] * FP8_BLOCK
    assert one_rank - report.memory.weights_bytes == pytest.approx(float(routed * 7 / 8))
    # the MLA latent cache of this GPU's 64/8 sequences only: (kv_lora + rope) per token per layer
    latent = (c["kv_lora_rank"] + c["qk_rope_head_dim"]) * BF16 * c["num_hidden_layers"]
    assert report.memory.kv_cache_bytes == latent * (64 // 8) * (4096 + 1)


def test_deepseek_fp8_does_not_fit_on_8_h100(deepseek_h100):
    """The issue's headline: ~84 GB of FP8 weights per GPU under TP8 (671B / 8); 8xH100-80GB does
    not fit, 8xH200 or 16xH100 would."""
    for name in ("tp8", "ep8"):
        report = deepseek_h100[name].evaluate(64, 1, 4096)
        fit = report.fit
        assert not fit.fits and fit.max_batch_size == 0
        assert any(s.startswith("16 x h100-sxm (2 nodes)") for s in fit.suggestions)
        assert any(s.startswith("8 x h200") for s in fit.suggestions)
        assert "DOES NOT FIT" in report.summary()
    tp8 = deepseek_h100["tp8"].evaluate(64, 1, 4096)
    assert tp8.memory.weights_bytes == pytest.approx(671.03e9 / 8, rel=0.025)
    # EP8 + DP8 holds more per GPU than TP8: attention and the shared expert are not split
    assert deepseek_h100["ep8"].evaluate(64, 1, 4096).memory.weights_bytes > tp8.memory.weights_bytes


def test_deepseek_ep8_dp8_vs_tp8_on_8_h200():
    c = config(DEEPSEEK)
    moe_layers = c["num_hidden_layers"] - c["first_k_dense_replace"]
    ep8 = tensor_cast.analyze(DEEPSEEK, device="h200", batch_size=64, query_len=1, context_len=4096, dp=8, ep=8,
                              moe_exchange="all_to_all")  # DeepEP (vLLM's default all-gather: test_moe_exchange.py)
    tp8 = tensor_cast.analyze(DEEPSEEK, device="h200", batch_size=64, query_len=1, context_len=4096, tp=8)
    assert ep8.fit.fits and tp8.fit.fits
    for op in ("tensor_cast.ep_dispatch", "tensor_cast.ep_combine"):
        assert sum(1 for r in ep8.ops if r.op == op) == moe_layers
        assert not any(r.op == op for r in tp8.ops)
    assert sum(1 for r in tp8.ops if r.op == "tensor_cast.all_reduce") == 2 * c["num_hidden_layers"] + 1
    dispatch = next(r for r in ep8.ops if r.op == "tensor_cast.ep_dispatch")
    assert dispatch.bytes == pytest.approx(float(2 * 8 * c["num_experts_per_tok"] * c["hidden_size"] * FP8_WIRE))
    # TP8 replicates the MLA latent cache on every rank; attention DP splits the sequences
    assert tp8.memory.kv_cache_bytes == 8 * ep8.memory.kv_cache_bytes
    # the shared expert hides the exchange: every layer's dispatch + combine overlapped
    assert ep8.ep_overlapped_time_s < ep8.total_time_s
    assert ep8.total_time_s - ep8.ep_overlapped_time_s <= ep8.ep_comm_time_s + 1e-12


def test_deepseek_tp8_ep8_splits_the_shared_expert_over_tp():
    """vLLM --tensor-parallel-size 8 --enable-expert-parallel: E/8 whole experts hold as many weights
    as E experts of width I/8, and the shared expert is split over the 8 TP ranks either way (its
    width, I·n_shared/8, is no multiple of the whole expert width I: the build resizes it)."""
    c = config(DEEPSEEK)
    kwargs = dict(device="h200", batch_size=64, query_len=1, context_len=4096)
    tp8 = tensor_cast.analyze(DEEPSEEK, **kwargs, tp=8)
    tp8_ep8 = tensor_cast.analyze(DEEPSEEK, **kwargs, tp=8, ep=8)
    assert tp8_ep8.memory.weights_bytes == tp8.memory.weights_bytes
    shared = next(p for p in tp8_ep8.context.params if p.name.endswith("mlp.shared_experts.down_proj.weight"))
    assert shared.numel == c["hidden_size"] * c["moe_intermediate_size"] * c["n_shared_experts"] // 8
    assert not any(r.op == "tensor_cast.ep_dispatch" for r in tp8_ep8.ops)  # dp = 1: all-reduced, not exchanged


def test_fit_suggests_attention_dp_when_tp_replicates_the_mla_cache():
    """DeepSeek-V3 TP8 on 8xH200 at batch 256: every rank holds all 256 sequences' latent cache;
    attention DP + EP on the same 8 GPUs divides it by 8 (and fits, checked by analyzing it)."""
    point = dict(device="h200", query_len=1, context_len=4096)
    tp8 = tensor_cast.analyze(DEEPSEEK, batch_size=256, tp=8, **point).fit
    assert not tp8.fits
    assert tp8.suggestions[0].startswith("attention DP + EP on these 8 GPUs (--tp 1 --dp 8 --ep 8")
    assert tensor_cast.analyze(DEEPSEEK, batch_size=256, dp=8, ep=8, **point).fit.fits
