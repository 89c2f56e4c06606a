"""The typed node contract: custom-op arguments by schema name, `NodeFacts` set at capture by
identity and kept by the passes, the final `verify_contract` pass, and cost-only knobs that
re-cost a cached trace instead of re-tracing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tensor_cast
from tensor_cast.analysis import ExecutionOptions, trace
from tensor_cast.capture.provenance import attach_provenance
from tensor_cast.errors import CaptureError, UnknownOpError
from tensor_cast.ops import schema
from tensor_cast.passes import PIPELINE
from tensor_cast.passes.node_facts import FACTS, LAYERS_KEY, MissingFactsError, NodeFacts, facts
from tensor_cast.passes.op_args import arg, args_of, call_args, set_args
from tensor_cast.passes.verify_contract import verify_contract

tc = torch.ops.tensor_cast
EP_DISPATCH_ARGS = ("x", "top_k", "num_experts", "group_size", "ep_dp", "nodes", "wire_dtype")


# ---- arguments by schema name -------------------------------------------------------------------
def test_schema_names_come_from_the_torch_library_declaration():
    assert [a.name for a in tc.ep_dispatch.default._schema.arguments] == list(EP_DISPATCH_ARGS)
    assert schema.position(tc.ep_dispatch.default, "wire_dtype") == len(EP_DISPATCH_ARGS) - 1
    with pytest.raises(KeyError, match="no argument 'skew'; its arguments: x, top_k"):
        schema.position(tc.ep_dispatch.default, "skew")  # a cost knob, not a graph argument


def test_call_args_builds_schema_order_and_refuses_a_missing_required_argument():
    values = {"y": "Y", "nodes": 1, "ep_dp": 8, "group_size": 8, "num_experts": 256, "top_k": 8}
    assert call_args(tc.ep_combine.default, **values) == ("Y", 8, 256, 8, 8, 1)
    with pytest.raises(KeyError, match="required argument 'top_k' not given"):
        call_args(tc.ep_combine.default, y="Y", nodes=1)


def test_set_args_fills_defaults_up_to_the_argument_it_sets():
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    node = graph.call_function(tc.moe.default, ("h", "r", [], "gu", "d", None, None, [], [], 2, "softmax", "silu",
                                                "concat", False, "none"))
    assert arg(node, "ep") == 1 and arg(node, "scheme") == "none"  # schema default; passed value
    set_args(node, ep_dp=4)
    assert node.args[-2:] == (1, 4)  # ep filled with its default, then ep_dp
    set_args(node, hidden=x, scheme="fp8")
    assert args_of(node)["hidden"] is x and arg(node, "scheme") == "fp8" and arg(node, "top_k") == 2


# ---- NodeFacts ----------------------------------------------------------------------------------
class _Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.relu(self.proj(x))


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 8)
        self.layers = nn.ModuleList([_Layer(), _Layer()])
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for layer in self.layers:
            h = layer(h)
        return self.head(h)


@pytest.fixture
def net_graph(capture_module):
    net = _Net()
    gm, inputs = capture_module(net, torch.randn(3, 4))
    attach_provenance(gm, net, inputs, layers=tuple(net.layers))  # as capture() does with the decoder layers
    return gm


def test_facts_come_from_module_and_tensor_identity(net_graph):
    linears = [n for n in net_graph.graph.nodes if n.target is torch._C._nn.linear]
    assert [(facts(n).layer, facts(n).phase) for n in linears] == [
        (None, "prologue"), (0, "layer"), (1, "layer"), (None, "epilogue")]
    params = {facts(n).param: facts(n).layer for n in net_graph.graph.nodes if n.op == "placeholder"
              and facts(n).param}
    assert params == {"embed.weight": None, "embed.bias": None, "layers.0.proj.weight": 0, "layers.0.proj.bias": 0,
                      "layers.1.proj.weight": 1, "layers.1.proj.bias": 1, "head.weight": None, "head.bias": None}
    assert net_graph.meta[LAYERS_KEY] == (0, 1)
    with pytest.raises(ValueError, match="does not agree"):
        NodeFacts(layer=None, phase="layer")


# ---- verify_contract ----------------------------------------------------------------------------
def test_verify_contract_accepts_a_graph_that_keeps_the_contract(net_graph):
    assert verify_contract(net_graph) is net_graph
    assert PIPELINE[-1].name == "verify_contract"  # the last pass of every analysis


def test_verify_contract_names_a_node_without_facts(net_graph):
    relu = next(n for n in net_graph.graph.nodes if n.target is torch.relu)
    del relu.meta[FACTS]
    with pytest.raises(MissingFactsError, match="relu"):
        verify_contract(net_graph)


def test_verify_contract_refuses_an_op_without_a_cost_rule(net_graph):
    relu = next(n for n in net_graph.graph.nodes if n.target is torch.relu)
    relu.target = torch.ops.aten.cholesky.default
    with pytest.raises(UnknownOpError, match="no cost rule for op aten.cholesky.*module: layers.0"):
        verify_contract(net_graph)


def test_verify_contract_refuses_a_layer_that_lost_its_ops(net_graph):
    for node in net_graph.graph.nodes:
        if node.op != "placeholder" and facts(node).layer == 1:
            node.meta[FACTS] = NodeFacts(layer=None, phase="epilogue")
    with pytest.raises(CaptureError, match=r"layers \[1\] own no costed op"):
        verify_contract(net_graph)


# ---- cost-only knobs ----------------------------------------------------------------------------
def test_moe_skew_and_cuda_graphs_re_cost_without_re_tracing():
    spec = tensor_cast.load_model("Qwen/Qwen3-30B-A3B", num_hidden_layers=2)
    traced = trace(spec, ExecutionOptions())
    assert trace(spec, ExecutionOptions(moe_skew=1.0, cuda_graphs="never")) is traced  # the cache is hit
    point = {"batch_size": 32, "query_len": 1, "context_len": 1024}
    uniform = tensor_cast.analyze(spec, device="h100-sxm", **point)
    skewed = tensor_cast.analyze(spec, device="h100-sxm", moe_skew=1.0, **point)
    assert skewed.total_flops == pytest.approx(uniform.total_flops)  # same graph, same FLOPs
    assert skewed.total_bytes < uniform.total_bytes  # fewer distinct experts' weights read
    moe = next(n for n in traced.graph.graph.nodes if n.target is tc.moe.default)
    assert "skew" not in args_of(moe)


# ---- kernel shapes: time from (counts, kernel shape, profile) -----------------------------------
def test_a_gemm_rule_returns_its_kernel_shape_and_time_needs_it():
    from tensor_cast.backends.counts import Counts
    from tensor_cast.backends.kernels import AttentionShape, GemmShape
    from tensor_cast.backends.roofline import op_time

    m, n, k = 24, 4096, 1024
    x = torch.empty(2, 12, k, dtype=torch.bfloat16, device="meta")
    w = torch.empty(n, k, dtype=torch.bfloat16, device="meta")
    cost = tensor_cast.op_cost(torch.ops.aten.linear.default, x, w, device="h100-sxm")
    assert cost.counts.kernel == GemmShape(1, m, n, k)
    q = torch.empty(2, 32, 5, 128, dtype=torch.bfloat16, device="meta")
    kv = torch.empty(2, 8, 5, 128, dtype=torch.bfloat16, device="meta")
    attention = tensor_cast.op_cost(tc.attention.default, q, kv, kv, 100, 0.1, True, 64, None, device="h100-sxm")
    assert attention.counts.kernel == AttentionShape(q_len=5, keys=105, head_dim=128, v_dim=128, window=64,
                                                     batch=2, kv_heads=8, kv_itemsize=2, q_heads=32)
    with pytest.raises(TypeError, match="GemmShape"):  # no silent fallback to a base efficiency
        op_time(Counts(flops={"bf16": 2 * m * n * k}), "gemm", tensor_cast.load_device("h100-sxm"))


# ---- the report is data; the views over it do not import it --------------------------------------
def test_deployment_views_do_not_import_the_report_at_run_time():
    import ast
    from pathlib import Path

    root = Path(tensor_cast.__file__).parent
    for path in (root / "deployment" / "fit.py", root / "deployment" / "pipeline.py"):
        tree = ast.parse(path.read_text())
        guarded = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", "") == "TYPE_CHECKING" for n in ast.walk(block)}
        runtime = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                   and id(node) not in guarded and node.module and "report" in node.module]
        assert runtime == [], f"{path.name} imports {runtime} at run time"
