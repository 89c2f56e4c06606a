"""An RMSNorm over channels TP splits (a q / k norm over all heads; a Mamba-2 gated norm of one group) (passes/shard_norms.py, ops `sharded_rms_norm`): the rank holds
its heads' channels, the norm needs the whole row's mean of squares, so the engine runs a collective
for it — MiniMax-M2 all-reduces each token's local statistic ("stats", vLLM / SGLang
`MiniMaxText01RMSNormTP`), OLMo 2 / 3 and FlexOlmo all-gather q and k, normalize the whole row and keep
their share ("gather", vLLM `_apply_qk_norm`). The rank graph computed the norm over its share alone
before, with no collective at all."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import tensor_cast
import tensor_cast.ops
from tensor_cast.errors import DeploymentError
from tensor_cast.passes.fuse_rms_norm import fuse_rms_norm
from tensor_cast.passes.graph_utils import call_target, module_path
from tensor_cast.passes.shard_norms import shard_norms

tc = torch.ops.tensor_cast
WIDTH, TOKENS = 32, 6
QK_NORMS = (("layers.*.self_attn.q_norm", "rms_norm", "gather"), ("layers.*.self_attn.k_norm", "rms_norm", "gather"))


class RMSNorm(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.randn(n)), 1e-6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.to(torch.float32)
        return self.weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q_proj, self.k_proj = nn.Linear(WIDTH, WIDTH, bias=False), nn.Linear(WIDTH, WIDTH, bias=False)
        self.q_norm, self.k_norm = RMSNorm(WIDTH), RMSNorm(WIDTH)  # over all heads: the projection's width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.q_norm(self.q_proj(x)) * self.k_norm(self.k_proj(x))


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.self_attn, self.input_layernorm = Attention(), RMSNorm(WIDTH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.self_attn(self.input_layernorm(x))


class Stack(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([Layer()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers[0](x)


def test_each_named_norm_becomes_one_sharded_norm_with_the_same_numbers(capture_module):
    torch.manual_seed(0)
    module, x = Stack(), torch.randn(2, 3, WIDTH)
    before, real = capture_module(module, x)
    after, _ = capture_module(module, x)
    after = shard_norms(fuse_rms_norm(after), tp=2, nodes=1, norms=QK_NORMS)
    sharded = [n for n in after.graph.nodes if call_target(n) == tc.sharded_rms_norm.default]
    assert [module_path(n) for n in sharded] == ["layers.0.self_attn.q_norm", "layers.0.self_attn.k_norm"]
    assert [n.args[3:] for n in sharded] == [(2, 1, "tp", "gather")] * 2
    plain = [module_path(n) for n in after.graph.nodes if call_target(n) == tc.rms_norm.default]
    assert plain == ["layers.0.input_layernorm"]  # a norm over the whole hidden state stays as it is
    torch.testing.assert_close(before(*real), after(*real), rtol=1e-5, atol=1e-5)
    assert shard_norms(fuse_rms_norm(capture_module(module, x)[0]), tp=1, norms=QK_NORMS) is not None  # tp 1: no-op


def test_an_unfused_norm_is_refused_not_left_unsharded(capture_module):
    gm, _ = capture_module(Stack(), torch.randn(2, 3, WIDTH))
    with pytest.raises(DeploymentError, match=r"^tp=2: layers\.0\.self_attn\.q_norm normalizes channels split"):
        shard_norms(gm, tp=2, norms=QK_NORMS)


def test_stats_all_reduce_one_fp32_per_token_and_gather_moves_the_whole_row():
    tp, shape = 4, (TOKENS, WIDTH)
    x = torch.empty(shape, dtype=torch.bfloat16, device="meta")
    w = torch.empty(WIDTH, dtype=torch.bfloat16, device="meta")
    stats = tensor_cast.op_cost("tensor_cast.sharded_rms_norm", x, w, 1e-6, tp, 1, "tp", "stats", device="h100-sxm")
    assert (stats.counts.comm.collective, stats.counts.comm.payload_bytes) == ("all_reduce", 4 * TOKENS)
    assert stats.counts.comm_bytes == pytest.approx(2 * (tp - 1) / tp * 4 * TOKENS)  # ring all-reduce
    share = TOKENS * WIDTH * 2  # bf16
    assert stats.counts.bytes_read == share + WIDTH * 2 + 4 * TOKENS  # x, weight, the statistic
    gather = tensor_cast.op_cost("tensor_cast.sharded_rms_norm", x, w, 1e-6, tp, 1, "tp", "gather", device="h100-sxm")
    assert (gather.counts.comm.collective, gather.counts.comm.payload_bytes) == ("all_gather", tp * share)
    assert gather.counts.bytes_written == 2 * tp * share  # the gathered row, then the normed row
    assert gather.counts.flops["vector"] == 4 * tp * TOKENS * WIDTH
    with pytest.raises(Exception, match="unknown norm sharding 'mean'"):
        tc.sharded_rms_norm(torch.randn(2, WIDTH), torch.randn(WIDTH), 1e-6, 2, 1, "tp", "mean")


def tiny(tmp_path, model_type: str, **fields) -> str:
    config = {"model_type": model_type, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
              "num_key_value_heads": 4, "num_hidden_layers": 1, "vocab_size": 256, "head_dim": 16, **fields}
    (tmp_path / "config.json").write_text(json.dumps(config))
    return str(tmp_path)


@pytest.mark.parametrize(("model_type", "method", "fields"), [
    ("olmo2", "gather", {}), ("olmo3", "gather", {}),
    ("flex_olmo", "gather", {"num_experts": 4, "num_experts_per_tok": 2, "pad_token_id": 1}),
    ("minimax_m2", "stats", {"num_local_experts": 4, "num_experts_per_tok": 2, "rotary_dim": 16}),
])
def test_families_whose_qk_norms_span_all_heads_run_their_collective_at_tp2(tmp_path, model_type, method, fields):
    tp, batch = 2, 3
    report = tensor_cast.analyze(tiny(tmp_path, model_type, **fields), device="h100-sxm", batch_size=batch,
                                 query_len=1, context_len=32, tp=tp, cache=False)
    norms = [r for r in report.ops if r.op == "tensor_cast.sharded_rms_norm"]
    assert [r.module for r in norms] == ["model.layers.0.self_attn.q_norm", "model.layers.0.self_attn.k_norm"]
    assert all(r.comm_s > 0 for r in norms)
    assert not [r for r in report.ops if r.op == "tensor_cast.rms_norm" and r.module.endswith(("q_norm", "k_norm"))]
    single = tensor_cast.analyze(tiny(tmp_path, model_type, **fields), device="h100-sxm", batch_size=batch,
                                 query_len=1, context_len=32, cache=False)
    assert [r.op for r in single.ops if r.module.endswith("q_norm")] == ["tensor_cast.rms_norm"]
    assert report.context is not None
    assert ("layers.*.self_attn.q_norm", "rms_norm", method) in report.context.deployment.sharded_norms


def test_a_single_group_mamba2_norm_all_reduces_its_statistic_and_eight_groups_do_not():
    """Bamba (mamba_n_groups 1): vLLM's Mixer2RMSNormGated all-reduces the sum of squares at tp > 1 — one
    gated sharded norm per Mamba layer, its payload one fp32 per token. Nemotron-H's 8 groups split whole
    over tp=2: each rank normalizes its own groups, no collective."""
    tp, batch = 2, 4
    bamba = tensor_cast.load_model("ibm-ai-platform/Bamba-9B", num_hidden_layers=2)
    report = tensor_cast.analyze(bamba, device="h100-sxm", batch_size=batch, query_len=1, context_len=64, tp=tp)
    norms = [r for r in report.ops if r.op == "tensor_cast.sharded_rms_norm"]
    mamba_layers = [i for i, layer in enumerate(bamba.layers) if layer.attention.kind == "mamba"]
    assert [r.layer for r in norms] == mamba_layers and all(r.module.endswith(".mamba") for r in norms)
    assert not [r for r in report.ops if r.op == "tensor_cast.gated_rms_norm"]
    payload = tensor_cast.op_cost("tensor_cast.sharded_rms_norm", *_gated_args(bamba, tp, batch), device="h100-sxm")
    assert payload.counts.comm.payload_bytes == 4 * batch
    nemotron = tensor_cast.load_model("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", num_hidden_layers=2)
    assert {layer.attention.mamba.n_groups for layer in nemotron.layers if layer.attention.mamba} == {8}
    plain = tensor_cast.analyze(nemotron, device="h100-sxm", batch_size=batch, query_len=1, context_len=64, tp=tp)
    assert [r.op for r in plain.ops if "norm" in r.op and r.module.endswith(".mixer")] == ["tensor_cast.gated_rms_norm"]


def _gated_args(spec, tp: int, batch: int) -> tuple:
    mamba = next(layer.attention.mamba for layer in spec.layers if layer.attention.mamba)
    width = mamba.num_heads * mamba.head_dim // tp
    x = torch.empty(batch, 1, width, dtype=torch.bfloat16, device="meta")
    w = torch.empty(width, dtype=torch.bfloat16, device="meta")
    return x, w, 1e-6, tp, 1, "tp", "stats", x
