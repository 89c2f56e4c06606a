"""replace_moe: a MoE block's router -> top-k -> experts -> combine subgraph becomes one `tensor_cast::moe`.

Matches: every `tensor_cast::routed_experts` node (what the capture emits for transformers'
`@use_experts_implementation` experts) and the module that owns its experts module — the MoE
block (`Qwen3MoeSparseMoeBlock`, `GptOssMLP`, `Glm4MoeMoE`, ...). The block's nodes are
classified by data flow, not by family:
- router: the ancestors of the top-k index/weights inside the block (router GEMM, softmax or
  sigmoid, score-correction bias, grouped top-k, gather, renormalization, scaling); its one 2-D
  parameter (E, H) is the router weight, any other parameter or buffer it reads (logit bias,
  correction bias) goes to `router_extra`;
- shared experts: the linears of the block that neither feed nor are the routed experts;
  those reading the block input are `shared_in` (gate/up, the (1, H) shared-expert gate), the
  one reading their product is `shared_out` (down);
- combine: whatever adds/reshapes the results.
Produces: `moe(hidden, router_weight, router_extra, gate_up, down, gate_up_bias, down_bias,
shared_in, shared_out, top_k, scoring, activation, gate, transposed, "none")`, placed in the
MoE block's module; `scoring` is "sigmoid" when the router applies a sigmoid, else "softmax";
the scheme is "none" until `quantize_moe`. The routing skew is not in the graph (a cost knob). The node's `meta["tensor_cast_moe_modules"]` names the block's
router, experts and shared-expert modules (for passes that treat them apart, e.g. quantization).
LatentMoE (Nemotron 3 Super: the experts read `fc1_latent_proj(x)`, a bias-free linear of the block
input, and `fc2_latent_proj` maps their output back): only the router and the routed experts fold,
into `moe(latent, ..., shared_in=[], shared_out=[], router_input=x)` returning the experts' latent
output; the two projections, the shared experts and the combine stay as they are (replicated and
TP-sharded linears, each reduced where `insert_tp_collectives` put its all_reduce). A norm module
applied to the combined output inside the block (A.X K1's `post_mlp_layernorm`) is not folded: the
op returns the combined output and the norm stays after it.
Invariant after: no topk / routed_experts / router linear / shared-expert linear remains in a
replaced block (a latent block keeps its projections and shared-expert linears); exactly one `tensor_cast::moe` per MoE block; the block output keeps its shape
and dtype; dense MLP layers are untouched (they have no routed_experts node). Collectives a
deployment pass put on the block's output (tensor parallelism's all_reduce, which finds the
block by its experts module and so runs first) stay outside the op, reading its result.
Example:
    before: v = view(h); l = linear(v, Wr); p = softmax(l); w, i = topk(p, 8); w = w / sum(w)
            y = routed_experts(v, i, w, Wgu, Wd, None, None, "silu", "concat", False); o = reshape(y)
    after:  o = moe(h, Wr, [], Wgu, Wd, None, None, [], [], 8, "softmax", "silu", "concat", False, "none")
Refuses (leaves the block as it is; `routed_experts` keeps its own cost rule): a block with
more than one output or another activation input, a router without exactly one (E, H) weight,
shared-expert linears with biases or an unrecognized shape (more than one down projection,
projections without one), parameters used by anything else than these roles, a block
whose output shape or dtype differs from its input, and a latent projection with a bias.
"""

from __future__ import annotations

import torch
from torch import fx

from .graph_utils import (
    ancestors_within,
    call_target,
    example,
    external_inputs,
    finish,
    is_tensor_node,
    module_class,
    module_path,
    module_stack,
    region_outputs,
    replace_with_op,
    shape_key,
)
from .op_args import arg, call_args

LINEARS = (torch._C._nn.linear,)
SIGMOIDS = (torch.sigmoid, torch.nn.functional.sigmoid, "Tensor.sigmoid", torch.ops.aten.sigmoid.default)
# a weight reaches the router GEMM through these (GLM/ERNIE run the router in fp32)
CONVERSIONS = ("Tensor.to", "Tensor.float", "Tensor.type", "Tensor.bfloat16", "Tensor.half", "Tensor.contiguous")
# arguments `routed_experts` and `moe` share (same names in both schemas)
EXPERT_ARGS = ("gate_up", "down", "gate_up_bias", "down_bias")
LAYOUT_ARGS = ("activation", "gate", "transposed")


def _marker() -> object:
    return torch.ops.tensor_cast.routed_experts.default


def _block_path(marker: fx.Node) -> str | None:
    """The module owning the experts module the marker was traced in."""
    stack = module_stack(marker)
    return stack[-2][0] if len(stack) >= 2 else None


def _collectives() -> set[object]:
    """Collectives a deployment pass attributed to the block (a TP all_reduce of its output)."""
    names = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv")
    return {getattr(torch.ops.tensor_cast, name).default for name in names if hasattr(torch.ops.tensor_cast, name)}


def _region(gm: fx.GraphModule, path: str) -> list[fx.Node]:
    """The block's own nodes: traced inside its module, collectives inserted around it excluded."""
    collectives = _collectives()
    return [n for n in gm.graph.nodes if n.op in ("call_function", "call_method") and n.target not in collectives
            and any(p == path for p, _ in module_stack(n))]


def _without_output_norm(region: list[fx.Node]) -> list[fx.Node]:
    """The block's nodes less a norm module applied to its output inside the block (A.X K1's
    `post_mlp_layernorm`): that norm is not part of the MoE op and stays a norm after it."""
    outputs = region_outputs(region)
    if len(outputs) != 1 or "Norm" not in module_class(outputs[0]):
        return region
    norm = module_path(outputs[0])
    rest = [n for n in region if module_path(n) != norm]
    return rest if rest and len(region_outputs(rest)) == 1 else region


def _source(node: fx.Node, region: set[fx.Node]) -> fx.Node | None:
    """Follow single-tensor-input nodes inside the region up to the external node they read."""
    seen = 0
    while node in region and seen < 64:
        tensors = [a for a in node.all_input_nodes if is_tensor_node(a)]
        if len(tensors) != 1:
            return None
        node, seen = tensors[0], seen + 1
    return node if node not in region else None


def _weight(arg: object) -> fx.Node | None:
    """The placeholder a linear's weight argument comes from (through dtype conversions)."""
    while isinstance(arg, fx.Node) and arg.op != "placeholder":
        if call_target(arg) not in CONVERSIONS or not arg.args:
            return None
        arg = arg.args[0]
    return arg if isinstance(arg, fx.Node) else None


def _bias(node: fx.Node) -> object:
    return node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")


def _shared(region: list[fx.Node], excluded: set[fx.Node]) -> tuple[list[fx.Node], list[fx.Node]] | None:
    """(shared_in weights, shared_out weights) from the block's other linears, or None to refuse."""
    linears = [n for n in region if n not in excluded and n.target in LINEARS]
    members = set(region)
    shared_in, shared_out = [], []
    for node in linears:
        weight = _weight(node.args[1])
        if weight is None or _bias(node) is not None:
            return None
        if ancestors_within(node, members) & set(linears):
            shared_out.append(weight)
        else:
            shared_in.append(weight)
    if len(shared_out) > 1 or bool(shared_in) != bool(shared_out):
        return None
    return shared_in, shared_out


def _latent_projection(x: fx.Node, region: set[fx.Node]) -> fx.Node | None:
    """The block's linear the experts' input comes from (through single-input reshapes): LatentMoE's
    down projection, bias-free over a weight parameter; None when the experts read the block input."""
    node, seen = x, 0
    while node in region and seen < 16:
        if node.target in LINEARS:
            weight = _weight(node.args[1])
            return node if weight is not None and _bias(node) is None else None
        tensors = [a for a in node.all_input_nodes if is_tensor_node(a)]
        if len(tensors) != 1:
            return None
        node, seen = tensors[0], seen + 1
    return None


def _replace_block(gm: fx.GraphModule, marker: fx.Node) -> fx.Node | None:
    path = _block_path(marker)
    region = _without_output_norm(_region(gm, path)) if path is not None else []
    members = set(region)
    if marker not in members:
        return None
    outputs = region_outputs(region)
    x, index, routing = arg(marker, "hidden"), arg(marker, "top_k_index"), arg(marker, "top_k_weights")
    if not (isinstance(x, fx.Node) and isinstance(index, fx.Node) and isinstance(routing, fx.Node)):
        return None
    hidden = _source(x, members)
    latent = _latent_projection(x, members) if hidden is None else None
    if latent is not None and isinstance(latent.args[0], fx.Node):
        hidden = _source(latent.args[0], members)
    # one output, or under TP (LatentMoE) also the partial sums reduced inside the block
    if hidden is None or (len(outputs) != 1 and latent is None):
        return None
    reduced = _collectives() if latent is not None else set()  # TP sums the block's own partials feed back
    weights = [n for n in external_inputs(region) if is_tensor_node(n) and n is not hidden and n.target not in reduced]
    if any(n.op != "placeholder" for n in weights):
        return None  # the block reads another activation: not a self-contained MoE block
    router_inputs = ancestors_within(index, members) | ancestors_within(routing, members)
    router_nodes = {index, routing} | (router_inputs & members)
    router_params = [n for n in weights if n in router_inputs]
    gate_up, down = example(arg(marker, "gate_up")), example(arg(marker, "down"))
    num_experts, hidden_size = gate_up.shape[0], example(hidden).shape[-1]
    router_weights = [n for n in router_params if tuple(example(n).shape) == (num_experts, hidden_size)]
    if len(router_weights) != 1 or down.shape[0] != num_experts:
        return None
    experts = {name: arg(marker, name) for name in EXPERT_ARGS}
    expert_params = {a for a in experts.values() if isinstance(a, fx.Node)}
    scoring = "sigmoid" if any(call_target(n) in SIGMOIDS for n in router_nodes) else "softmax"
    top_k = int(example(index).shape[-1])
    extras = [n for n in router_params if n is not router_weights[0]]
    moe = torch.ops.tensor_cast.moe.default
    layout = {name: arg(marker, name) for name in LAYOUT_ARGS}
    modules = {"router": sorted({module_path(n) for n in router_nodes if n.target in LINEARS}),
               "experts": [module_path(marker)]}
    if latent is not None:  # the router and the routed experts only; the projections and shared experts stay
        kept = {latent, *outputs} | (ancestors_within(latent, members) & members)
        for out in outputs:  # what feeds each output, not looking past the experts' op
            kept |= ancestors_within(out, members - {marker}) & members if out is not marker else set()
        folded = [n for n in region if n not in kept or n is marker]
        others = set(external_inputs(folded)) - {hidden, x} - set(router_params) - expert_params
        if any(_source(n, members) is not hidden for n in others):
            return None  # the router and experts read something besides the block input (or its views),
            # the latent rows and their weights
        args = call_args(moe, hidden=x, router_weight=router_weights[0], router_extra=extras, **experts,
                         shared_in=[], shared_out=[], top_k=top_k, scoring=scoring, **layout, scheme="none",
                         router_input=hidden)
        new = replace_with_op(gm, folded, moe, args, [marker])
        if new is not None:
            new.meta["tensor_cast_moe_modules"] = {**modules, "shared": []}
        return new
    shared = _shared(region, router_nodes | {marker} | (ancestors_within(marker, members) & members))
    if shared is None:
        return None
    shared_in, shared_out = shared
    if set(weights) - set(router_params) - expert_params - set(shared_in) - set(shared_out):
        return None  # a parameter with a role this op does not model
    out = example(outputs[0])
    if shape_key(outputs[0]) != shape_key(hidden) or out.dtype != example(hidden).dtype:
        return None
    args = call_args(moe, hidden=hidden, router_weight=router_weights[0], router_extra=extras, **experts,
                     shared_in=shared_in, shared_out=shared_out, top_k=top_k, scoring=scoring, **layout,
                     scheme="none")
    modules["shared"] = sorted({module_path(n) for n in region if n.target in LINEARS and n not in router_nodes})
    new = replace_with_op(gm, region, moe, args, outputs)
    if new is not None:
        new.meta["tensor_cast_moe_modules"] = modules
    return new


def replace_moe(gm: fx.GraphModule) -> fx.GraphModule:
    marker = _marker()
    for node in [n for n in gm.graph.nodes if n.op == "call_function" and n.target is marker]:
        _replace_block(gm, node)
    return finish(gm)
