"""TP all-reduce + residual add + RMSNorm as one kernel: the rewrite on a tiny TP graph, the fused
op's counts from named dimensions, the engines' defaults, end to end on Llama-3.1-70B TP4 (2 layers)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tensor_cast
from tensor_cast.deployment.allreduce_fusion import resolve_allreduce_fusion
from tensor_cast.deployment.config import Deployment, resolve
from tensor_cast.errors import InvalidArgumentError
from tensor_cast.passes import build_pipeline
from tensor_cast.passes.fuse_add_rms_norm import fuse_add_rms_norm
from tensor_cast.passes.fuse_allreduce_add_rms_norm import fuse_allreduce_add_rms_norm
from tensor_cast.passes.fuse_rms_norm import fuse_rms_norm
from tensor_cast.passes.insert_tp_collectives import insert_tp_collectives

tc = torch.ops.tensor_cast
HIDDEN, VOCAB, LAYERS, TP = 16, 24, 2, 4
PLAN = ("layers.*.self_attn.o_proj", "layers.*.mlp.down_proj")


class RMSNorm(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.randn(n)), 1e-6

    def forward(self, x):
        h = x.to(torch.float32)
        return self.weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q_proj, self.o_proj = nn.Linear(HIDDEN, 8, bias=False), nn.Linear(8, HIDDEN, bias=False)

    def forward(self, x):
        return self.o_proj(torch.relu(self.q_proj(x)))


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up_proj, self.down_proj = nn.Linear(HIDDEN, 32, bias=False), nn.Linear(32, HIDDEN, bias=False)

    def forward(self, x):
        return self.down_proj(torch.relu(self.up_proj(x)))


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.input_layernorm, self.post_attention_layernorm = RMSNorm(HIDDEN), RMSNorm(HIDDEN)
        self.self_attn, self.mlp = Attention(), MLP()

    def forward(self, h):
        h = h + self.self_attn(self.input_layernorm(h))
        return h + self.mlp(self.post_attention_layernorm(h))


class Inner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(VOCAB, HIDDEN)
        self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))
        self.norm = RMSNorm(HIDDEN)

    def forward(self, ids):
        h = self.embed_tokens(ids)
        for layer in self.layers:
            h = layer(h)
        return self.norm(h)


class TinyLM(nn.Module):
    """A pre-norm decoder with HF module names (model.layers.N.self_attn.o_proj, ..., lm_head)."""

    def __init__(self) -> None:
        super().__init__()
        self.model, self.lm_head = Inner(), nn.Linear(HIDDEN, VOCAB, bias=False)

    def forward(self, ids):
        return self.lm_head(self.model(ids))


def _count(gm, target):
    return sum(1 for n in gm.graph.nodes if n.op == "call_function" and n.target == target)


def _tp_graph(capture_module, ids):
    gm, inputs = capture_module(TinyLM(), ids)
    return fuse_add_rms_norm(fuse_rms_norm(insert_tp_collectives(gm, tp=TP, row_parallel=PLAN))), inputs


def test_rewrite_fuses_every_sub_block_reduction_and_keeps_the_numbers(capture_module):
    torch.manual_seed(0)
    ids = torch.randint(0, VOCAB, (2, 3))
    unfused, inputs = _tp_graph(capture_module, ids)
    expected = unfused(*inputs)
    fused, _ = _tp_graph(capture_module, ids)
    # 2 per layer (attention, MLP) + the embedding's, each read by the add_rms_norm after it except
    # the embedding's (the first norm has no add; the reduced embedding is also the residual)
    assert _count(fused, tc.all_reduce.default) == 2 * LAYERS + 1
    assert _count(fused, tc.add_rms_norm.default) == 2 * LAYERS
    fused = fuse_allreduce_add_rms_norm(fused)
    assert _count(fused, tc.all_reduce_add_rms_norm.default) == 2 * LAYERS
    assert _count(fused, tc.add_rms_norm.default) == 0
    reduces = [n for n in fused.graph.nodes if n.target == tc.all_reduce.default]
    assert len(reduces) == 1 and reduces[0].args[0].target == torch.nn.functional.embedding
    for node in fused.graph.nodes:
        if node.target == tc.all_reduce_add_rms_norm.default:
            assert node.args[4:] == (TP, 1, "tp")
            assert "o_proj" in str(node.args[0].meta.get("nn_module_stack")) or node.args[0].name.endswith("down_proj") \
                or "down_proj" in str(node.args[0].meta.get("nn_module_stack"))
    torch.testing.assert_close(fused(*inputs), expected, rtol=1e-5, atol=1e-5)


def test_rewrite_refuses_a_reduction_read_twice_and_other_scopes(capture_module):
    torch.manual_seed(0)
    gm, _ = _tp_graph(capture_module, torch.randint(0, VOCAB, (2, 3)))
    norms = [n for n in gm.graph.nodes if n.target == tc.add_rms_norm.default]
    # layer 0's post-attention norm reads two reductions: the embedding's (also the residual, so
    # read twice: refused) and the attention's (fused)
    first = [a for a in norms[0].args[:2] if a.target == tc.all_reduce.default]
    assert len(first) == 2 and sorted(len(a.users) for a in first) == [1, 2]
    reduce = next(a for a in norms[1].args[:2] if a.target == tc.all_reduce.default)
    with gm.graph.inserting_after(norms[1]):  # a second reader of the reduced tensor
        gm.graph.call_function(torch.ops.aten.neg.default, (reduce,))
    target = next(a for a in norms[2].args[:2] if a.target == tc.all_reduce.default)
    target.args = (*target.args[:3], "ep")  # not a TP reduction
    gm = fuse_allreduce_add_rms_norm(gm)
    assert _count(gm, tc.all_reduce_add_rms_norm.default) == 2 * LAYERS - 2
    assert _count(gm, tc.add_rms_norm.default) == 2


def test_pipeline_runs_the_pass_only_with_tp_and_the_switch():
    from tensor_cast.analysis import ExecutionOptions
    from tensor_cast.deployment.config import TraceDeployment

    def names(**kw):
        return [name for name, _ in build_pipeline(ExecutionOptions(**kw))]

    tp4 = TraceDeployment(tp=4, row_parallel=PLAN)
    assert "fuse_allreduce_add_rms_norm" in names(deployment=tp4, allreduce_fusion=True)
    assert "fuse_allreduce_add_rms_norm" not in names(deployment=tp4, allreduce_fusion=False)
    assert "fuse_allreduce_add_rms_norm" not in names(deployment=TraceDeployment(), allreduce_fusion=True)
    assert "fuse_allreduce_add_rms_norm" not in names(deployment=tp4, allreduce_fusion=True, fuse=False)
    order = names(deployment=tp4, allreduce_fusion=True)
    assert order.index("fuse_add_rms_norm") < order.index("fuse_allreduce_add_rms_norm")


def test_fused_op_counts_from_named_dimensions(h100_cluster):
    tokens, hidden, tp = 64, 8192, 4  # a Llama-3.1-70B decode step of 64 sequences, bf16
    x = torch.empty(tokens, hidden, dtype=torch.bfloat16, device="meta")
    w = torch.empty(hidden, dtype=torch.bfloat16, device="meta")
    m = tokens * hidden * 2  # the reduced tensor: 1 MiB
    assert m == 1_048_576
    fused = tensor_cast.op_cost("tensor_cast.all_reduce_add_rms_norm", x, x, w, 1e-5, tp, 1, "tp", device=h100_cluster)
    reduce = tensor_cast.op_cost("tensor_cast.all_reduce", x, tp, 1, "tp", device=h100_cluster)
    norm = tensor_cast.op_cost("tensor_cast.add_rms_norm", x, x, w, 1e-5, device=h100_cluster)
    # reads x (this rank's partial sum), the residual and the weight; writes the normed and the new residual
    assert fused.bytes == 4 * m + hidden * 2 == 4_210_688
    assert reduce.bytes + norm.bytes - fused.bytes == 2 * m  # no write + read back of the reduced tensor
    # the same ring traffic as the unfused all-reduce: 2(n-1)/n of the message
    assert fused.counts.comm_bytes == reduce.counts.comm_bytes == 2 * (tp - 1) * m // tp == 1_572_864
    assert fused.counts.comm == reduce.counts.comm
    assert fused.flops == pytest.approx(((tp - 1) / tp + 5) * tokens * hidden)
    assert fused.counts.launches == 1 and reduce.counts.launches + norm.counts.launches == 2
    # h100_cluster: alpha-beta model over 450 GB/s NVLink, 3 us per step; ring 6 steps vs tree 4 steps + 2M/beta
    ring = 2 * (tp - 1) * 3e-6 + 2 * (tp - 1) / tp * m / 450e9
    tree = 2 * 2 * 3e-6 + 2 * m / 450e9
    assert fused.time_s - fused.overhead_s == pytest.approx(min(ring, tree) + fused.latency_s)
    assert fused.time_s < reduce.time_s + norm.time_s


def test_engine_defaults():
    spec = tensor_cast.load_model("meta-llama/Llama-3.1-8B")
    profile = tensor_cast.load_device("h100-sxm")
    tp4 = resolve(Deployment(tp=4), spec, profile)
    assert resolve_allreduce_fusion(None, "trtllm", "LlamaForCausalLM", tp4)[0] is True
    assert resolve_allreduce_fusion(None, "vllm", "LlamaForCausalLM", tp4)[0] is False
    assert resolve_allreduce_fusion(None, "torch", "LlamaForCausalLM", tp4)[0] is False
    assert resolve_allreduce_fusion(None, "sglang", "LlamaForCausalLM", tp4)[0] is False
    assert resolve_allreduce_fusion(None, "sglang", "Qwen3MoeForCausalLM", tp4)[0] is True
    assert resolve_allreduce_fusion("on", "vllm", "LlamaForCausalLM", tp4)[0] is True
    assert resolve_allreduce_fusion(False, "trtllm", "LlamaForCausalLM", tp4)[0] is False


def test_sglang_keeps_it_off_under_dp_attention():
    spec = tensor_cast.load_model("Qwen/Qwen3-30B-A3B")
    adp = resolve(Deployment(tp=1, dp=4, ep=4), spec, tensor_cast.load_device("h100-sxm"))
    assert adp.experts_span_replicas
    assert resolve_allreduce_fusion(None, "sglang", "Qwen3MoeForCausalLM", adp)[0] is False


def test_bad_switch_is_refused(capsys):
    from tensor_cast.cli import main

    with pytest.raises(InvalidArgumentError, match="allreduce_fusion must be one of True, False, None or on, off, auto"):
        tensor_cast.analyze("meta-llama/Llama-3.2-1B", device="h100-sxm", batch_size=1, query_len=1,
                            allreduce_fusion="maybe")
    assert main(["analyze", "meta-llama/Llama-3.2-1B", "--device", "h100", "--allreduce-fusion", "yes"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown --allreduce-fusion 'yes'; accepted: auto, on, off" in err[0]


def test_llama70b_tp4_end_to_end(h100_cluster):
    """Two layers of Llama-3.1-70B at TP4: 4 fused ops, each 2·M bytes and one launch cheaper."""
    point = dict(batch_size=64, query_len=1, context_len=4096, tp=4, num_hidden_layers=2)
    off = tensor_cast.analyze("meta-llama/Llama-3.1-70B", device=h100_cluster, allreduce_fusion=False, **point)
    on = tensor_cast.analyze("meta-llama/Llama-3.1-70B", device=h100_cluster, allreduce_fusion="on", **point)
    fused = [r for r in on.ops if r.op == "tensor_cast.all_reduce_add_rms_norm"]
    assert len(fused) == 2 * 2 and {r.layer for r in fused} == {0, 1}
    assert [r.op for r in on.ops].count("tensor_cast.all_reduce") == 1  # the embedding's
    m = 64 * 8192 * 2
    assert off.total_bytes - on.total_bytes == pytest.approx(len(fused) * 2 * m)
    assert off.total_comm_bytes == pytest.approx(on.total_comm_bytes)
    assert on.total_time_s < off.total_time_s
    assert on.context.options["allreduce_fusion"] is True and "allreduce_fusion" not in off.context.options
    assert any("set by the user" in n for n in on.context.notes)


def test_serving_engine_knob_and_default():
    from tensor_cast.serving.api import allreduce_fusion
    from tensor_cast.serving.engines import engine_profile

    spec, profile = tensor_cast.load_model("meta-llama/Llama-3.1-8B"), tensor_cast.load_device("h100-sxm")
    assert allreduce_fusion(engine_profile("trtllm"), spec, profile, {"tp": 4}) is True
    assert allreduce_fusion(engine_profile("vllm"), spec, profile, {"tp": 4}) is False
    assert allreduce_fusion(engine_profile("vllm", {"allreduce_fusion": True}), spec, profile, {"tp": 4}) is True
    assert allreduce_fusion(engine_profile("trtllm", {"allreduce_fusion": False}), spec, profile, {"tp": 4}) is False
    with pytest.raises(InvalidArgumentError, match="engine allreduce_fusion must be true, false or null"):
        engine_profile("vllm", {"allreduce_fusion": "sometimes"})


def test_fused_op_reference_and_opcheck():
    x, residual, w = torch.randn(4, 6), torch.randn(4, 6), torch.randn(6)
    torch.library.opcheck(tc.all_reduce_add_rms_norm.default, (x, residual, w, 1e-6, 4, 1, "tp"))
    normed, summed = tc.all_reduce_add_rms_norm(x, residual, w, 1e-6, 4, 1, "tp")
    torch.testing.assert_close(summed, 4 * x + residual)  # every rank holds x: the sum is 4x
    h = summed.float()
    torch.testing.assert_close(normed, w * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)))
