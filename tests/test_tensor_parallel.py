"""Tensor parallelism: the insertion pass on a tiny graph, and Llama-3.1-70B TP4 end to end."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tensor_cast
from tensor_cast.errors import DeploymentError
from tensor_cast.passes.insert_tp_collectives import insert_tp_collectives

tc = torch.ops.tensor_cast
LLAMA_PLAN = ("layers.*.self_attn.o_proj", "layers.*.mlp.down_proj")


class Attention(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.q_proj, self.o_proj = nn.Linear(hidden, hidden // 2, bias=False), nn.Linear(hidden // 2, hidden, bias=False)

    def forward(self, x):
        return self.o_proj(torch.relu(self.q_proj(x)))


class MLP(nn.Module):
    def __init__(self, hidden, down="down_proj"):
        super().__init__()
        self.up_proj = nn.Linear(hidden, 2 * hidden, bias=False)
        setattr(self, down, nn.Linear(2 * hidden, hidden, bias=False))
        self.down = down

    def forward(self, x):
        return getattr(self, self.down)(torch.relu(self.up_proj(x)))


class Layer(nn.Module):
    def __init__(self, hidden, down):
        super().__init__()
        self.self_attn, self.mlp = Attention(hidden), MLP(hidden, down)

    def forward(self, h):
        h = h + self.self_attn(h)
        return h + self.mlp(h)


class Inner(nn.Module):
    def __init__(self, hidden, vocab, layers, down):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(Layer(hidden, down) for _ in range(layers))

    def forward(self, ids):
        h = self.embed_tokens(ids)
        for layer in self.layers:
            h = layer(h)
        return h


class TinyLM(nn.Module):
    """A rank's decoder: module names follow HF (model.layers.N.self_attn.o_proj, lm_head)."""

    def __init__(self, hidden=16, vocab=24, layers=2, down="down_proj"):
        super().__init__()
        self.model, self.lm_head = Inner(hidden, vocab, layers, down), nn.Linear(hidden, vocab, bias=False)

    def forward(self, ids):
        return self.lm_head(self.model(ids))


def _count(gm, target):
    return sum(1 for n in gm.graph.nodes if n.target == target)


def _shapes(gm):
    return {n.name: (tuple(n.meta["example_value"].shape), n.meta["example_value"].dtype)
            for n in gm.graph.nodes if isinstance(n.meta.get("example_value"), torch.Tensor)}


def test_insert_tp_collectives_counts_and_shapes(capture_module):
    layers, tp = 2, 4
    gm, inputs = capture_module(TinyLM(layers=layers), torch.randint(0, 24, (2, 3)))
    before = _shapes(gm)
    gm = insert_tp_collectives(gm, tp=tp, nodes=1, row_parallel=LLAMA_PLAN)
    reduces = [n for n in gm.graph.nodes if n.target == tc.all_reduce.default]
    # one per attention, one per MLP, one for the vocab-parallel embedding
    assert len(reduces) == 2 * layers + 1
    assert _count(gm, tc.all_gather.default) == 1
    after = _shapes(gm)
    assert all(after[name] == shape for name, shape in before.items() if name != "output")
    for node in reduces:  # same shape in, same shape out; attributed to the producing sub-block
        assert node.meta["example_value"].shape == node.args[0].meta["example_value"].shape
        assert node.args[1:] == (tp, 1, "tp")
    paths = sorted({next(reversed(n.meta["nn_module_stack"].values()))[0] for n in reduces})
    assert any("self_attn" in p for p in paths) and any("mlp" in p for p in paths)
    gather = next(n for n in gm.graph.nodes if n.target == tc.all_gather.default)
    assert gather.meta["example_value"].shape[-1] == 24 * tp  # the logits of every rank's vocab shard
    gm(*inputs)  # still runs (reference collectives)


def test_insert_tp_collectives_near_misses(capture_module):
    gm, _ = capture_module(TinyLM(), torch.randint(0, 24, (2, 3)))
    nodes = len(gm.graph.nodes)
    assert len(insert_tp_collectives(gm, tp=1, row_parallel=LLAMA_PLAN).graph.nodes) == nodes  # tp=1: no-op
    # an MLP whose output projection the plan does not name would add its partial sums to the residual
    # unreduced (Bamba's feed_forward.down_proj was one): refused, naming the module
    gm, _ = capture_module(TinyLM(down="out_proj"), torch.randint(0, 24, (2, 3)))
    with pytest.raises(DeploymentError, match=r"tp=2: model\.layers\.0\.mlp\.out_proj projects 32 channels back to "
                                              r"the hidden size 16 but is not row-parallel"):
        insert_tp_collectives(gm, tp=2, row_parallel=LLAMA_PLAN)
    # named by the plan, it is reduced like down_proj
    gm, _ = capture_module(TinyLM(down="out_proj"), torch.randint(0, 24, (2, 3)))
    gm = insert_tp_collectives(gm, tp=2, row_parallel=(*LLAMA_PLAN, "layers.*.mlp.out_proj"))
    assert _count(gm, tc.all_reduce.default) == 2 * 2 + 1
    gm, _ = capture_module(TinyLM(), torch.randint(0, 24, (2, 3)))
    with pytest.raises(DeploymentError, match="tp=2: no row-parallel module"):
        insert_tp_collectives(gm, tp=2, row_parallel=("layers.*.mystery.proj",))


# ---- Llama-3.1-70B TP4 -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def llama70b_tp4(h100_cluster):
    return tensor_cast.analyze("meta-llama/Llama-3.1-70B", device=h100_cluster, batch_size=64, query_len=1,
                               context_len=4096, tp=4)


@pytest.fixture(scope="module")
def config70b():
    from tensor_cast.models import registry

    return registry.lookup("meta-llama/Llama-3.1-70B").config


def test_sharded_gemm_shapes(llama70b_tp4, config70b):
    heads, kv, hidden, inter = (config70b[k] for k in ("num_attention_heads", "num_key_value_heads", "hidden_size",
                                                       "intermediate_size"))
    tp, hd = 4, hidden // heads
    qkv = next(r for r in llama70b_tp4.ops if r.layer == 0 and r.op == "tensor_cast.fused_linear")
    assert qkv.shapes == f"(64, 1, {hidden}), ({heads * hd // tp}, {hidden}), ({kv * hd // tp}, {hidden}), " \
                         f"({kv * hd // tp}, {hidden})"
    assert heads * hd // tp == 64 * 128 // 4
    down = next(r for r in llama70b_tp4.ops if r.layer == 0 and r.module.endswith("down_proj"))
    assert down.shapes == f"(64, 1, {inter // tp}), ({hidden}, {inter // tp})"


def test_two_all_reduces_per_layer(llama70b_tp4, config70b):
    tp, hidden = 4, config70b["hidden_size"]
    layer0 = [r for r in llama70b_tp4.ops if r.layer == 0 and r.op == "tensor_cast.all_reduce"]
    assert len(layer0) == 2
    payload = 64 * 1 * hidden * 2  # B·S·H bf16
    assert all(r.bytes == 2 * payload for r in layer0)  # the kernel reads and writes it once
    reduces = [r for r in llama70b_tp4.ops if r.op == "tensor_cast.all_reduce"]
    assert len(reduces) == 2 * config70b["num_hidden_layers"] + 1  # + the vocab-parallel embedding
    assert llama70b_tp4.total_comm_bytes == pytest.approx(
        len(reduces) * 2 * (tp - 1) / tp * payload + (tp - 1) / tp * 64 * 128256 * 2)  # + logits all_gather


def test_weights_per_gpu(llama70b_tp4, config70b):
    c, tp = config70b, 4
    hidden, heads, kv, inter, vocab, layers = (c[k] for k in ("hidden_size", "num_attention_heads",
                                                              "num_key_value_heads", "intermediate_size",
                                                              "vocab_size", "num_hidden_layers"))
    hd = hidden // heads
    sharded = hidden * (heads + 2 * kv) * hd + heads * hd * hidden + 3 * hidden * inter
    padded_vocab = -(-vocab // 64) * 64  # vLLM pads the vocabulary to 64 before splitting it
    per_rank = layers * (sharded // tp + 2 * hidden) + 2 * (padded_vocab // tp) * hidden + hidden
    assert llama70b_tp4.memory.weights_bytes == 2 * per_rank
    assert llama70b_tp4.memory.weights_bytes == pytest.approx(35.3e9, rel=0.002)
    # the whole model's parameters, not the rank's: unpadded vocabulary, every head
    whole = layers * (sharded + 2 * hidden) + 2 * vocab * hidden + hidden
    assert llama70b_tp4.num_parameters == whole
    assert llama70b_tp4.num_parameters == pytest.approx(70.55e9, rel=1e-3)
    assert llama70b_tp4.active_parameters == whole - vocab * hidden  # the input embedding is a lookup


def test_kv_cache_per_gpu_and_overlap(llama70b_tp4, config70b):
    c, tp = config70b, 4
    hd = c["hidden_size"] // c["num_attention_heads"]
    assert llama70b_tp4.memory.kv_cache_bytes == 2 * (c["num_key_value_heads"] // tp) * hd * c["num_hidden_layers"] \
        * 2 * 64 * (4096 + 1)
    comm = llama70b_tp4.comm_time_s
    assert 0 < comm < llama70b_tp4.total_time_s
    assert llama70b_tp4.overlapped_time_s == pytest.approx(max(llama70b_tp4.total_time_s - comm, comm))
    assert "TP4" in llama70b_tp4.summary() and "with ideal compute/comm overlap" in llama70b_tp4.summary()


def test_replicated_kv_head_and_kv_by_layer_kind():
    """Gemma-3-1B: 4 query heads, 1 KV head, 5 sliding (window 512) : 1 full layers; under TP2 each
    rank holds 2 query heads and a replica of the KV head."""
    from tensor_cast.models import registry

    c = registry.lookup("google/gemma-3-1b-it").config
    batch, context, tp = 8, 8192, 2
    report = tensor_cast.analyze("google/gemma-3-1b-it", device="h100-sxm", batch_size=batch, query_len=1,
                                 context_len=context, tp=tp)
    full_layers = sum(1 for t in report_layer_types(c) if t == "full_attention")
    sliding_layers = c["num_hidden_layers"] - full_layers
    per_token = 1 * 2 * c["head_dim"] * 2  # one (replicated) KV head, K and V, bf16
    window = c["sliding_window"]
    assert report.kv_cache_by_kind == {
        f"sliding({window})": sliding_layers * batch * window * per_token,  # capped at the window
        "full": full_layers * batch * (context + 1) * per_token,
    }
    qkv = next(r for r in report.ops if r.layer == 0 and r.op == "tensor_cast.fused_linear")
    hidden, hd = c["hidden_size"], c["head_dim"]
    assert qkv.shapes.endswith(f"({c['num_attention_heads'] // tp * hd}, {hidden}), ({hd}, {hidden}), ({hd}, {hidden})")


def report_layer_types(c):
    """Gemma-3's default layer pattern: every 6th layer is global (full) attention."""
    pattern = c.get("sliding_window_pattern", 6)
    return c.get("layer_types") or ["full_attention" if (i + 1) % pattern == 0 else "sliding_attention"
                                    for i in range(c["num_hidden_layers"])]
