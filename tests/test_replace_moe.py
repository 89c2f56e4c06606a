"""replace_moe on tiny real MoE blocks (transformers' own modules, CPU weights): op counts before and
after, shapes and dtypes unchanged, the numbers equal, and near-misses left alone."""

from __future__ import annotations

import operator
from collections import Counter
from typing import Any

import pytest
import torch
from torch import fx

from tensor_cast.capture.experts_interface import tensor_cast_experts
from tensor_cast.capture.provenance import attach_provenance
from tensor_cast.compat import IMPLEMENTATION, registered
from tensor_cast.passes import PIPELINE
from tensor_cast.passes.graph_utils import call_target, example, module_path
from tensor_cast.passes.op_args import arg, args_of
from tensor_cast.passes.replace_moe import replace_moe

tc = torch.ops.tensor_cast
HIDDEN, EXPERT_WIDTH, EXPERTS, TOP_K, TOKENS = 32, 16, 8, 2, 5
LATENT = 8  # LatentMoE's expert width (Nemotron 3 Super: 1024 of 4096)


def _init(module: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.2)
    return module.eval()


class _Layer(torch.nn.Module):
    """A decoder-layer stand-in: the block is a submodule (`mlp`), as in a real model."""

    def __init__(self, mlp: torch.nn.Module) -> None:
        super().__init__()
        self.mlp = mlp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


def _capture(module: torch.nn.Module, x: torch.Tensor) -> tuple[fx.GraphModule, list[Any]]:
    """Dynamo-capture `module(x)` with tensor_cast's experts function registered (as analysis does)."""
    from transformers.integrations.moe import ALL_EXPERTS_FUNCTIONS

    for sub in module.modules():
        if hasattr(sub, "config"):
            sub.config._experts_implementation = IMPLEMENTATION
    graphs: list[tuple[fx.GraphModule, list[Any]]] = []

    def record(gm: fx.GraphModule, example_inputs: list[Any]) -> Any:
        graphs.append((gm, list(example_inputs)))
        return gm.forward

    torch._dynamo.reset()
    with registered(ALL_EXPERTS_FUNCTIONS, IMPLEMENTATION, tensor_cast_experts), torch.no_grad():
        torch.compile(module, backend=record, fullgraph=True, dynamic=False)(x)
    torch._dynamo.reset()
    assert len(graphs) == 1
    attach_provenance(graphs[0][0], module, graphs[0][1])  # as capture() does: module paths, NodeFacts
    return graphs[0]


def _counts(gm: fx.GraphModule) -> Counter[Any]:
    return Counter(call_target(n) for n in gm.graph.nodes if n.op in ("call_function", "call_method"))


def _run(gm: fx.GraphModule, inputs: list[Any]) -> torch.Tensor:
    with torch.no_grad():
        out = gm(*inputs)
    return out[0] if isinstance(out, (list, tuple)) else out


def _qwen3_block() -> torch.nn.Module:
    from transformers import Qwen3MoeConfig
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

    config = Qwen3MoeConfig(hidden_size=HIDDEN, moe_intermediate_size=EXPERT_WIDTH, num_experts=EXPERTS,
                            num_experts_per_tok=TOP_K, norm_topk_prob=True)
    return _init(Qwen3MoeSparseMoeBlock(config))


def _glm_block() -> torch.nn.Module:
    """Sigmoid router with a score-correction bias buffer and one shared expert."""
    from transformers import Glm4MoeConfig
    from transformers.models.glm4_moe.modeling_glm4_moe import Glm4MoeMoE

    config = Glm4MoeConfig(hidden_size=HIDDEN, moe_intermediate_size=EXPERT_WIDTH, n_routed_experts=EXPERTS,
                           num_experts_per_tok=TOP_K, n_shared_experts=1, n_group=1, topk_group=1,
                           norm_topk_prob=True, routed_scaling_factor=1.0)
    return _init(Glm4MoeMoE(config))


def _qwen2_block() -> torch.nn.Module:
    """A shared expert scaled by a sigmoid (1, H) gate."""
    from transformers import Qwen2MoeConfig
    from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeSparseMoeBlock

    config = Qwen2MoeConfig(hidden_size=HIDDEN, moe_intermediate_size=EXPERT_WIDTH, num_experts=EXPERTS,
                            num_experts_per_tok=TOP_K, shared_expert_intermediate_size=24, norm_topk_prob=True)
    return _init(Qwen2MoeSparseMoeBlock(config))


BLOCKS = {"qwen3_moe": (_qwen3_block, 0), "glm4_moe": (_glm_block, 3), "qwen2_moe": (_qwen2_block, 4)}


@pytest.mark.parametrize("family", list(BLOCKS))
def test_block_becomes_one_moe_op(family: str) -> None:
    make, shared_linears = BLOCKS[family]
    gm, inputs = _capture(_Layer(make()), torch.randn(1, TOKENS, HIDDEN))
    before = _counts(gm)
    assert before[tc.routed_experts.default] == 1
    assert before[torch.topk] + before["Tensor.topk"] >= 1
    assert before[torch._C._nn.linear] == 1 + shared_linears  # the router + the shared expert's
    reference = _run(gm, inputs)

    gm = replace_moe(gm)
    after = _counts(gm)
    assert after[tc.moe.default] == 1
    assert after[tc.routed_experts.default] == 0
    assert after[torch.topk] + after["Tensor.topk"] == 0
    assert after[torch._C._nn.linear] == 0
    (node,) = [n for n in gm.graph.nodes if n.target is tc.moe.default]
    assert arg(node, "top_k") == TOP_K and "skew" not in args_of(node)  # a cost knob, not in the graph
    assert len(arg(node, "shared_in")) + len(arg(node, "shared_out")) == shared_linears
    result = _run(gm, inputs)
    assert result.shape == reference.shape and result.dtype == reference.dtype
    torch.testing.assert_close(result, reference, rtol=1e-4, atol=1e-5)


def test_a_norm_on_the_block_output_stays_after_the_op() -> None:
    """A.X K1's MoE block norms its combined output inside the block: the router, routed and shared
    experts fold; the norm stays, reading the op's result."""
    from transformers import AXK1Config
    from transformers.models.axk1.modeling_axk1 import AXK1MoE

    config = AXK1Config(hidden_size=HIDDEN, moe_intermediate_size=EXPERT_WIDTH, n_routed_experts=EXPERTS,
                        num_experts_per_tok=TOP_K, n_shared_experts=1, n_group=1, topk_group=1,
                        norm_topk_prob=True, routed_scaling_factor=1.0)
    gm, inputs = _capture(_Layer(_init(AXK1MoE(config))), torch.randn(1, TOKENS, HIDDEN))
    reference = _run(gm, inputs)
    gm = replace_moe(gm)
    after = _counts(gm)
    assert after[tc.moe.default] == 1 and after[tc.routed_experts.default] == 0
    assert after[torch._C._nn.linear] == 0  # the router and the shared expert's three linears folded
    (node,) = [n for n in gm.graph.nodes if n.target is tc.moe.default]
    readers = {module_path(u) for u in node.users}
    assert any(path.endswith("post_mlp_layernorm") for path in readers)
    result = _run(gm, inputs)
    torch.testing.assert_close(result, reference, rtol=1e-4, atol=1e-5)


def test_router_scoring_and_extras_are_read_from_the_graph() -> None:
    gm, _ = _capture(_Layer(_glm_block()), torch.randn(1, TOKENS, HIDDEN))
    gm = replace_moe(gm)
    (node,) = [n for n in gm.graph.nodes if n.target is tc.moe.default]
    assert arg(node, "scoring") == "sigmoid"
    assert [tuple(example(e).shape) for e in arg(node, "router_extra")] == [(EXPERTS,)]  # e_score_correction_bias
    assert tuple(example(arg(node, "router_weight")).shape) == (EXPERTS, HIDDEN)


class _LeakyBlock(torch.nn.Module):
    """Near-miss (leak=True): the router logits leave the block (an aux-loss style second output)."""

    def __init__(self, leak: bool) -> None:
        super().__init__()
        block = _qwen3_block()
        self.gate, self.experts, self.leak = block.gate, block.experts, leak

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        flat = x.view(-1, HIDDEN)
        logits, weights, index = self.gate(flat)
        out = self.experts(flat, index, weights).view(x.shape)
        return out, (logits if self.leak else None)


class _LeakyLayer(torch.nn.Module):
    def __init__(self, leak: bool) -> None:
        super().__init__()
        self.mlp = _LeakyBlock(leak)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, logits = self.mlp(x)
        return out + logits.sum() if logits is not None else out


class _BiasedShared(torch.nn.Module):
    """Near-miss (bias=True): a 'shared expert' whose projection has a bias (not a shape the op models)."""

    def __init__(self, bias: bool) -> None:
        super().__init__()
        block = _qwen3_block()
        self.gate, self.experts = block.gate, block.experts
        self.shared_up = torch.nn.Linear(HIDDEN, 2 * EXPERT_WIDTH, bias=bias)
        self.shared_down = torch.nn.Linear(EXPERT_WIDTH, HIDDEN, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.view(-1, HIDDEN)
        _, weights, index = self.gate(flat)
        gate, up = self.shared_up(flat).chunk(2, dim=-1)
        shared = self.shared_down(torch.nn.functional.silu(gate) * up)
        return (self.experts(flat, index, weights) + shared).view(x.shape)


class _BiasedLatent(torch.nn.Module):
    """Near-miss (bias=True): LatentMoE whose down projection has a bias (not the projection the op reads)."""

    def __init__(self, bias: bool) -> None:
        super().__init__()
        from transformers import Qwen3MoeConfig
        from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

        narrow = Qwen3MoeSparseMoeBlock(Qwen3MoeConfig(hidden_size=LATENT, moe_intermediate_size=EXPERT_WIDTH,
                                                       num_experts=EXPERTS, num_experts_per_tok=TOP_K))
        self.gate, self.experts = _qwen3_block().gate, narrow.experts
        self.down = torch.nn.Linear(HIDDEN, LATENT, bias=bias)
        self.up = torch.nn.Linear(LATENT, HIDDEN, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.view(-1, HIDDEN)
        _, weights, index = self.gate(flat)
        return self.up(self.experts(self.down(flat), index, weights)).view(x.shape)


NEAR_MISSES = {
    "router_output_leaves_block": lambda miss: _LeakyLayer(miss),
    "biased_shared_projection": lambda miss: _Layer(_BiasedShared(miss)),
    "biased_latent_projection": lambda miss: _Layer(_BiasedLatent(miss)),
}


@pytest.mark.parametrize("case", list(NEAR_MISSES))
def test_near_miss_left_alone(case: str) -> None:
    x = torch.randn(1, TOKENS, HIDDEN)
    # The twin without the flaw is replaced: the flaw alone is why the near-miss is refused.
    gm, _ = _capture(_init(NEAR_MISSES[case](False)), x)
    assert _counts(replace_moe(gm))[tc.moe.default] == 1
    gm, inputs = _capture(_init(NEAR_MISSES[case](True)), x)
    before = _counts(gm)
    reference = _run(gm, inputs)
    gm = replace_moe(gm)
    assert _counts(gm) == before
    torch.testing.assert_close(_run(gm, inputs), reference)


def test_dense_mlp_untouched() -> None:
    from transformers import Qwen3MoeConfig
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeMLP

    mlp = _init(Qwen3MoeMLP(Qwen3MoeConfig(hidden_size=HIDDEN, intermediate_size=64), intermediate_size=64))
    gm, _ = _capture(_Layer(mlp), torch.randn(1, TOKENS, HIDDEN))
    before = _counts(gm)
    assert _counts(replace_moe(gm)) == before


def test_pipeline_runs_replace_moe_before_the_fusions() -> None:
    names = [p.name for p in PIPELINE]
    assert names.index("replace_moe") < names.index("fuse_linears")
    assert names.index("replace_moe") < names.index("fuse_activation_mul")


# ---- LatentMoE (Nemotron 3 Super): the experts work in a latent width behind two replicated linears ---------
def _latent_block() -> torch.nn.Module:
    from transformers import NemotronHConfig
    from transformers.models.nemotron_h.modeling_nemotron_h import NemotronHMoE

    config = NemotronHConfig(hidden_size=HIDDEN, moe_intermediate_size=EXPERT_WIDTH, n_routed_experts=EXPERTS,
                             num_experts_per_tok=TOP_K, moe_latent_size=LATENT, moe_shared_expert_intermediate_size=24,
                             n_group=1, topk_group=1, norm_topk_prob=True, routed_scaling_factor=1.0,
                             layers_block_type=["moe"])
    return _init(NemotronHMoE(config))


class _Mixer(torch.nn.Module):
    """A Nemotron-H decoder block stand-in: `layers.0.mixer` (the paths the TP plan names)."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList([torch.nn.Module()])
        self.layers[0].mixer = _latent_block()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers[0].mixer(x)


def _linear_paths(gm: fx.GraphModule) -> list[str]:
    return sorted(module_path(n) for n in gm.graph.nodes if call_target(n) is torch._C._nn.linear)


def test_latent_block_folds_the_router_and_experts_only() -> None:
    """The router and routed experts become one op over the latent rows; the latent projections and
    the shared expert stay linears (replicated / TP-sharded as the engines run them)."""
    gm, inputs = _capture(_Layer(_latent_block()), torch.randn(1, TOKENS, HIDDEN))
    assert _counts(gm)[torch._C._nn.linear] == 5  # router, down / up latent projections, shared up / down
    reference = _run(gm, inputs)
    gm = replace_moe(gm)
    after = _counts(gm)
    assert after[tc.moe.default] == 1 and after[tc.routed_experts.default] == 0
    assert after[torch.topk] + after["Tensor.topk"] == 0
    assert _linear_paths(gm) == ["mlp.fc1_latent_proj", "mlp.fc2_latent_proj", "mlp.shared_experts.down_proj",
                                 "mlp.shared_experts.up_proj"]
    (node,) = [n for n in gm.graph.nodes if n.target is tc.moe.default]
    assert tuple(example(node).shape) == (TOKENS, LATENT)  # the routed experts' latent output
    assert call_target(arg(node, "hidden")) is torch._C._nn.linear  # read from the down projection
    assert example(arg(node, "router_input")).shape[-1] == HIDDEN  # the router scores the hidden states
    assert tuple(example(arg(node, "router_weight")).shape) == (EXPERTS, HIDDEN)
    assert arg(node, "shared_in") == [] and arg(node, "shared_out") == []
    torch.testing.assert_close(_run(gm, inputs), reference, rtol=1e-4, atol=1e-5)


def test_latent_partial_sums_are_reduced_before_the_replicated_projection() -> None:
    """TP: the experts' latent partial sums are reduced before the (whole) up projection and the shared
    expert's before the add with its result (vLLM's MoE runner), not once at the block's output."""
    from tensor_cast.passes.insert_tp_collectives import insert_tp_collectives

    rows = ("layers.*.mixer.experts", "layers.*.mixer.shared_experts.down_proj")
    whole = ("layers.*.mixer.fc1_latent_proj", "layers.*.mixer.fc2_latent_proj")
    gm, _ = _capture(_Mixer(), torch.randn(1, TOKENS, HIDDEN))
    gm = replace_moe(insert_tp_collectives(gm, tp=4, row_parallel=rows, replicated=whole))
    reduces = [n for n in gm.graph.nodes if n.target is tc.all_reduce.default]
    assert sorted(example(n).shape[-1] for n in reduces) == [LATENT, HIDDEN]
    by_width = {example(n).shape[-1]: n for n in reduces}
    assert by_width[LATENT].args[0].target is tc.moe.default  # the routed experts' latent output ...
    (up,) = by_width[LATENT].users
    assert module_path(up) == "layers.0.mixer.fc2_latent_proj"  # ... feeds the up projection
    assert module_path(by_width[HIDDEN].args[0]) == "layers.0.mixer.shared_experts.down_proj"
    (add,) = by_width[HIDDEN].users  # ... reduced before it joins the up-projected routed output
    assert call_target(add) in (operator.add, torch.add) and module_path(add) == "layers.0.mixer"
    # without the replicated roles the block keeps the one reduction of its output (other families' rule)
    gm, _ = _capture(_Mixer(), torch.randn(1, TOKENS, HIDDEN))
    gm = insert_tp_collectives(gm, tp=4, row_parallel=rows)
    assert [example(n).shape[-1] for n in gm.graph.nodes if n.target is tc.all_reduce.default] == [HIDDEN]
