"""Mixed MoE splits: moe_tp x ep over the tp x dp ranks (TensorRT-LLM's moe_tensor_parallel_size x
moe_expert_parallel_size, SGLang `--tp N --ep-size E`), and MoE TP across attention-DP ranks
(the all-gather / reduce-scatter exchange). The exchange ops and their bytes, one rank's routed
work, the pass on a tiny graph, Qwen3-30B-A3B end to end (graph, weights per GPU, comm bytes),
the CLI and the disagg spec. Every expected number is derived here from named dimensions."""

from __future__ import annotations

import pytest
import sympy
import torch
from moe_graphs import TinyMoE, call_targets, node_values

import tensor_cast
from tensor_cast.backends.formulas import OpCall, TensorInfo
from tensor_cast.backends.formulas.moe import routed_counts
from tensor_cast.backends.formulas.registry import CostKnobs
from tensor_cast.cli import main
from tensor_cast.models import registry
from tensor_cast.passes.insert_ep_collectives import insert_ep_collectives
from tensor_cast.passes.node_facts import facts
from tensor_cast.passes.op_args import arg
from tensor_cast.serving.disagg import parse_disagg

tc = torch.ops.tensor_cast
BF16 = 2
FP8_WIRE = 1 + sympy.Rational(4, 128)  # E4M3 + one fp32 scale per 128 channels


def meta(*shape, dtype=torch.bfloat16):
    return torch.empty(*shape, dtype=dtype, device="meta")


# ---- the exchange ops --------------------------------------------------------------------------
def test_opcheck_and_reference_semantics():
    x = torch.randn(3, 4, 16)
    for op, args in ((tc.ep_allgather.default, (x, 4, 4, 1, "fp8")), (tc.ep_reducescatter.default, (x, 4, 4, 1))):
        torch.library.opcheck(op, args)
        torch.testing.assert_close(op(*args), x)  # shape-preserving: the gathered rows live in the cost
    with pytest.raises(ValueError, match="unknown dispatch wire dtype 'int3'; known: fp8, nvfp4, bf16"):
        tc.ep_allgather(x, 4, 4, 1, "int3")


@pytest.mark.parametrize("dp", [2, 4, 8])
def test_allgather_and_reducescatter_bytes(h100_cluster, dp):
    tokens, hidden = 24, 2048  # T: this replica's tokens
    x = meta(tokens, hidden)
    gathered = dp * tokens  # N: every replica's tokens on every rank
    gather = tensor_cast.op_cost(tc.ep_allgather.default, x, dp, dp, 1, "fp8", device=h100_cluster)
    payload = gathered * hidden * FP8_WIRE  # the gathered output, in the wire dtype
    assert (gather.counts.comm.collective, gather.counts.comm.scope, gather.counts.comm.group_size) == \
        ("all_gather", "ep", dp)
    assert gather.counts.comm.payload_bytes == payload
    assert gather.counts.comm_bytes == sympy.Rational(dp - 1, dp) * payload  # ring: (n-1)/n of the output
    assert gather.counts.bytes_read == tokens * hidden * FP8_WIRE and gather.counts.bytes_written == payload
    scatter = tensor_cast.op_cost(tc.ep_reducescatter.default, x, dp, dp, 1, device=h100_cluster)
    full = gathered * hidden * BF16  # the partial outputs of all N tokens
    assert scatter.counts.comm.collective == "reduce_scatter" and scatter.counts.comm.payload_bytes == full
    assert scatter.counts.comm_bytes == sympy.Rational(dp - 1, dp) * full
    assert scatter.counts.bytes_written == tokens * hidden * BF16  # this rank keeps its own rows
    assert scatter.counts.flops == {"vector": sympy.Rational(dp - 1, dp) * gathered * hidden}
    assert scatter.kind == "collective"


# ---- one rank's routed work ----------------------------------------------------------------------
def _moe_call(tokens, *, experts, inter, top_k=8, hidden=2048, ep=1, ep_dp=1):
    """A tensor_cast::moe call as one rank holds it: `inter` is already the rank's I/moe_tp."""
    t = TensorInfo
    args = (t((tokens, hidden), torch.bfloat16), t((experts, hidden), torch.bfloat16), [],
            t((experts, 2 * inter, hidden), torch.bfloat16), t((experts, hidden, inter), torch.bfloat16), None, None,
            [], [], top_k, "softmax", "silu", "concat", False, "none", ep, ep_dp)
    return OpCall(op=tc.moe.default, args=args, outputs=(t((tokens, hidden), torch.bfloat16),),
                  knobs=CostKnobs(moe_skew=0.0))


@pytest.mark.parametrize("moe_tp, ep, dp", [(2, 2, 1), (2, 4, 1), (4, 1, 4), (2, 2, 4)])
def test_rank_routed_work_is_its_experts_columns(moe_tp, ep, dp):
    """A rank runs E/ep experts' I/moe_tp columns over the (token, expert) pairs of the N = dp·T tokens
    its EP group serves: N·k/ep pairs. Second route: the moe_tp·ep ranks together do the routed FLOPs
    of one GPU running all N tokens through all experts whole."""
    tokens, experts, top_k, hidden, inter = 40, 128, 8, 2048, 768
    counts = routed_counts(_moe_call(tokens, experts=experts, inter=inter // moe_tp, ep=ep, ep_dp=dp))
    pairs = sympy.Rational(dp * tokens * top_k, ep)
    columns = inter // moe_tp
    assert counts.flops["bf16"] == 2 * pairs * hidden * 2 * columns + 2 * pairs * columns * hidden
    whole = routed_counts(_moe_call(dp * tokens, experts=experts, inter=inter))
    assert moe_tp * ep * counts.flops["bf16"] == whole.flops["bf16"]
    # weights read: the rank's experts hit, (E/ep)·(1 - (1 - k/E)^N), 3·H·(I/moe_tp) bf16 each
    hit = experts / ep * (1 - (1 - top_k / experts) ** (dp * tokens))
    activations = pairs * (4 + hidden * BF16 + 2 * columns * BF16 + columns * BF16 + hidden * BF16)
    assert float(counts.bytes_read) == pytest.approx(float(activations + hit * 3 * hidden * columns * BF16), rel=1e-12)


# ---- the pass on a tiny graph ----------------------------------------------------------------------
@pytest.mark.parametrize("ep, moe_tp", [(2, 2), (1, 4)])
def test_pass_gathers_and_reduce_scatters_under_moe_tp(capture_module, ep, moe_tp):
    x = torch.randn(3, 16)
    gm, inputs = capture_module(TinyMoE(inter=8 // moe_tp), x)
    with torch.no_grad():
        expected = gm(*inputs)
    before, count = node_values(gm), len(gm.graph.nodes)
    gm = insert_ep_collectives(gm, ep=ep, dp=4, nodes=1, moe_tp=moe_tp)
    targets = call_targets(gm)
    assert targets.count(tc.ep_allgather.default) == 1 and targets.count(tc.ep_reducescatter.default) == 1
    assert tc.ep_dispatch.default not in targets and tc.ep_combine.default not in targets  # no all_to_all with MoE TP
    assert len(gm.graph.nodes) == count + 2
    moe = next(n for n in gm.graph.nodes if n.target is tc.moe.default)
    gather, scatter = arg(moe, "hidden"), next(iter(moe.users))
    assert gather.target is tc.ep_allgather.default and scatter.target is tc.ep_reducescatter.default
    assert [arg(gather, k) for k in ("group_size", "ep_dp", "nodes", "wire_dtype")] == [4, 4, 1, "fp32"]
    assert scatter.args == (moe, 4, 4, 1) and list(moe.users) == [scatter]
    assert (arg(moe, "ep"), arg(moe, "ep_dp")) == (ep, 4)
    assert node_values(gm).items() >= before.items()
    shares = sorted(facts(n).rank_share for n in gm.graph.nodes if n.op == "placeholder")
    assert shares == [1 / ep, 1 / ep, 1, 1]  # gate_up and down: E/ep experts (their columns are in the shapes)
    with torch.no_grad():
        torch.testing.assert_close(gm(*inputs), expected)


def test_pass_near_misses(capture_module):
    x = torch.randn(3, 16)
    gm, _ = capture_module(TinyMoE(), x)
    count = len(gm.graph.nodes)
    assert len(insert_ep_collectives(gm, ep=1, dp=4, moe_tp=1).graph.nodes) == count  # nothing split
    gm = insert_ep_collectives(gm, ep=2, dp=1, moe_tp=2)  # TP attention: every rank holds every token
    assert len(gm.graph.nodes) == count
    moe = next(n for n in gm.graph.nodes if n.target is tc.moe.default)
    assert (arg(moe, "ep"), arg(moe, "ep_dp")) == (2, 1)


# ---- Qwen3-30B-A3B end to end ---------------------------------------------------------------------
QWEN = "Qwen/Qwen3-30B-A3B"
LAYERS, BATCH, CONTEXT = 2, 32, 1024


def _config():
    return registry.lookup(QWEN).config


@pytest.fixture(scope="module")
def attention_dp_moe_tp(h100_cluster):
    """Attention DP4 with MoE TP4 (TensorRT-LLM enable_attention_dp, tp_size 4, ep_size 1)."""
    return tensor_cast.analyze(QWEN, device=h100_cluster, batch_size=BATCH, query_len=1, context_len=CONTEXT,
                               dp=4, moe_tp=4, num_hidden_layers=LAYERS)


def test_attention_dp_with_moe_tp_end_to_end(attention_dp_moe_tp):
    c, dp = _config(), 4
    h, e, inter, k = c["hidden_size"], c["num_experts"], c["moe_intermediate_size"], c["num_experts_per_tok"]
    layer0 = [r.op for r in attention_dp_moe_tp.ops if r.layer == 0]
    i = layer0.index("tensor_cast.moe")
    assert layer0[i - 1:i + 2] == ["tensor_cast.ep_allgather", "tensor_cast.moe", "tensor_cast.ep_reducescatter"]
    assert not any(r.op == "tensor_cast.all_reduce" for r in attention_dp_moe_tp.ops)  # tp = 1
    n = BATCH  # every replica's tokens gathered: dp·(BATCH/dp)
    per_layer = sympy.Rational(dp - 1, dp) * n * h * BF16 * 2  # all-gather + reduce-scatter, bf16 both ways
    assert attention_dp_moe_tp.total_comm_bytes == float(LAYERS * per_layer)
    moe = next(r for r in attention_dp_moe_tp.ops if r.layer == 0 and r.op == "tensor_cast.moe")
    pairs, columns = n * k, inter // dp
    router = 2 * (BATCH // dp) * e * h  # the router runs on the rank's own tokens
    assert moe.flops >= router + 2 * pairs * h * 2 * columns + 2 * pairs * columns * h
    # weights per GPU: attention whole (tp = 1), every expert with I/4 of its columns, router whole
    heads, kv, hd, vocab = (c[k] for k in ("num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size"))
    attention = h * heads * hd + 2 * h * kv * hd + heads * hd * h + 2 * hd  # q, k, v, o, q/k norms
    per_layer = attention + e * h + e * 3 * h * (inter // dp) + 2 * h  # + router, experts' columns, 2 norms
    assert attention_dp_moe_tp.memory.weights_bytes == BF16 * (LAYERS * per_layer + 2 * vocab * h + h)
    summary = attention_dp_moe_tp.summary()
    assert "attention DP4 x TP1 + MoE TP4 (all-gather/reduce-scatter)" in summary and "MoE all-gather" in summary


def test_tp_with_mixed_moe_split_reduces_once(h100_cluster):
    """TP4 attention, MoE TP2 x EP2 (SGLang --tp 4 --ep-size 2): no exchange, the MoE block's partial
    sums (experts split two ways, columns two ways) all-reduced once over the 4 ranks as under TP."""
    c = _config()
    h, e, inter = c["hidden_size"], c["num_experts"], c["moe_intermediate_size"]
    mixed = tensor_cast.analyze(QWEN, device=h100_cluster, batch_size=BATCH, query_len=1, context_len=CONTEXT,
                                tp=4, ep=2, num_hidden_layers=LAYERS)
    plain = tensor_cast.analyze(QWEN, device=h100_cluster, batch_size=BATCH, query_len=1, context_len=CONTEXT,
                                tp=4, num_hidden_layers=LAYERS)
    ops = [r.op for r in mixed.ops]
    assert not any(op.startswith("tensor_cast.ep_") for op in ops)
    assert ops.count("tensor_cast.all_reduce") == [r.op for r in plain.ops].count("tensor_cast.all_reduce")
    assert mixed.total_comm_bytes == plain.total_comm_bytes
    # weights per GPU: E/2 experts of 3·H·(I/2) vs E experts of 3·H·(I/4): the same bytes, split differently
    assert mixed.memory.weights_bytes == plain.memory.weights_bytes
    assert (e // 2) * 3 * h * (inter // 2) == e * 3 * h * (inter // 4)
    moe_mixed = next(r for r in mixed.ops if r.layer == 0 and r.op == "tensor_cast.moe")
    moe_plain = next(r for r in plain.ops if r.layer == 0 and r.op == "tensor_cast.moe")
    # GEMMs: N·k/2 pairs x I/2 columns = N·k pairs x I/4 columns; the routing-weight epilogue and the
    # sum over the k slots (H each per pair) scale with the pairs only: half as many on the mixed rank
    pairs = BATCH * c["num_experts_per_tok"]
    assert moe_plain.flops - moe_mixed.flops == 2 * (pairs - pairs // 2) * h
    assert moe_mixed.bytes < moe_plain.bytes  # but it reads only the weights of its own 64 experts' halves
    assert "attention DP1 x TP4 + MoE TP2 x EP2 (outputs all-reduced)" in mixed.summary()


def test_cli_moe_tp_and_bad_split(capsys):
    code = main(["analyze", QWEN, "--device", "h100-sxm", "--batch-size", "8", "--context-len", "512",
                 "--num-hidden-layers", "2", "--dp", "4", "--moe-tp", "4"])
    assert code == 0
    assert "MoE TP4 (all-gather/reduce-scatter)" in capsys.readouterr().out
    code = main(["analyze", QWEN, "--device", "h100-sxm", "--tp", "4", "--ep", "2", "--moe-tp", "4"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err == ("tensor-cast: error: moe_tp=4 x ep=2 must equal the tp·dp = 4 GPUs the experts span; "
                   "accepted moe_tp: 2")


def test_disagg_pool_takes_moe_tp():
    pools = parse_disagg("prefill: 1x tp1 dp8 moetp8; decode: 2x tp4 ep2")
    assert pools["prefill"].deployment() == {"tp": 1, "dp": 8, "ep": 1, "pp": 1, "moe_tp": 8}
    assert pools["decode"].deployment() == {"tp": 4, "dp": 1, "ep": 2, "pp": 1}
    assert parse_disagg({"prefill": {"dp": 4, "moe_tp": 4}, "decode": {"tp": 4}})["prefill"].moe_tp == 4
