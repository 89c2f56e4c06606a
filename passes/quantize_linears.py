"""quantize_linears: the model's GEMMs run in a quantization scheme (FP8, INT8, INT4, FP4, ...).

Matches: every `linear(x, W, b)` and horizontally fused `fused_linear(x, [W...], [b...])` whose
weights are 2-D parameters, except the lm_head (unless `quantize_lm_head`), MoE routers (modules
named `gate` / `router` / `shared_expert_gate`, unless `quantize_router`) and the modules the
checkpoint leaves unquantized (`not_converted`: HF `modules_to_not_convert` / `ignore` patterns, and the
deployment's `keep_unquantized` patterns, which `check_kept_unquantized` then holds to naming a module).
Produces: for schemes with quantized activations, one `quantize(x, fmt, group, dynamic)` per
(input, format) — shared by every GEMM reading that input — then
`quant_linear(x_q, scale, [W...], [b...], scheme, out_dtype)`; weight-only schemes read x as is
(`quant_linear(x, None, ...)`); a `grouped_linear` (DeepSeek-V4's grouped output projection) keeps its
node and names the scheme (its rule costs the weights and the input's quantization). Weight placeholders get
`NodeFacts.stored_bytes`:
their stored bytes per element, scales included (the memory report reads it). MLA's
`kv_b_proj` weight, folded into `tensor_cast::mla_attention` by `replace_mla`, is stored in the
scheme's weight format too unless excluded (DeepSeek-V3's FP8 checkpoint keeps it FP8 with
128x128 block scales); how the op reads it is the MLA rule's business (`formulas/mla.py`).
Invariant after: every output keeps its shape and dtype; no matched linear remains.
Example (fp8):
    before: q, k, v = fused_linear(h, [Wq, Wk, Wv], [None] * 3)
    after:  hq = quantize(h, "fp8", 0, True); q, k, v = quant_linear(hq[0], hq[1], [Wq, Wk, Wv], [None] * 3, "fp8", bf16)
Refuses: scheme "none" (no-op); linears whose weight is not a 2-D floating parameter; excluded
modules (left as 16-bit GEMMs; a fused GEMM when every member's module is excluded — `fuse_linears`
only fuses projections of one parent module, DeepSeek-V4's bf16 compressor kv / gate pair).
"""

from __future__ import annotations

import fnmatch
import operator
from typing import Any

import torch
from torch import fx

from ..deployment.quantization import scheme as lookup_scheme
from .graph_utils import example, fake_result, finish, module_path
from .node_facts import derive_facts, parameter_name, update_facts
from .op_args import arg, call_args, set_arg

LINEAR, FUSED = torch._C._nn.linear, torch.ops.tensor_cast.fused_linear.default
GROUPED = torch.ops.tensor_cast.grouped_linear.default
MLA, MLA_WEIGHT = torch.ops.tensor_cast.mla_attention.default, "kv_b_weight"  # argument by schema name
ROUTER_NAMES = ("gate", "router", "shared_expert_gate")
LM_HEAD = "lm_head"


def matches(path: str, pattern: str) -> bool:
    """Whether a module-name pattern (HF `modules_to_not_convert` style: fnmatch, a prefix, or a trailing
    name; with or without the leading `model.`) names the module at `path` or one it is inside."""
    bare = pattern.removeprefix("model.")
    for candidate in (path, path.removeprefix("model.")):
        if fnmatch.fnmatch(candidate, bare) or fnmatch.fnmatch(candidate, bare + ".*") or \
                candidate.endswith("." + bare) or fnmatch.fnmatch(candidate, pattern):
            return True
    return False


def excluded(path: str, *, not_converted: tuple[str, ...], quantize_lm_head: bool, quantize_router: bool) -> bool:
    last = path.rsplit(".", 1)[-1]
    if last == LM_HEAD and not quantize_lm_head:
        return True
    if last in ROUTER_NAMES and not quantize_router:
        return True
    return any(matches(path, pattern) for pattern in not_converted)


def _input(node: fx.Node) -> Any:
    """The activation a linear multiplies: torch's `linear` by position (no schema), ours by name."""
    return node.args[0] if node.target is LINEAR else arg(node, "x")


def _weights(node: fx.Node) -> tuple[list[Any], list[Any]]:
    if node.target is LINEAR:
        bias = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
        return [node.args[1]], [bias]
    weights, biases = arg(node, "weights"), arg(node, "biases")
    assert isinstance(weights, (list, tuple)) and isinstance(biases, (list, tuple))
    return list(weights), list(biases)


def _modules(node: fx.Node, weights: list[Any]) -> list[str]:
    """The modules whose weights a GEMM multiplies: each member of a fused GEMM (its node belongs to the
    members' parent module), else the linear's own module."""
    if node.target is LINEAR:
        return [module_path(node)]
    names = [parameter_name(w) for w in weights]
    return [n.rsplit(".", 1)[0] for n in names if n] or [module_path(node)]


def _is_parameter(w: Any) -> bool:
    value = example(w)
    return (isinstance(w, fx.Node) and w.op == "placeholder" and isinstance(value, torch.Tensor)
            and value.dim() == 2 and value.dtype.is_floating_point)


def _store_mla_weights(gm: fx.GraphModule, weight_bytes: float, is_excluded: Any) -> None:
    """kv_b_proj weights inside MLA ops: stored in the scheme's format unless excluded."""
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target is not MLA:
            continue
        weight = arg(node, MLA_WEIGHT)
        name = parameter_name(weight) if isinstance(weight, fx.Node) else None
        if name is None or not _is_parameter(weight) or is_excluded(name.rsplit(".", 1)[0]):
            continue
        update_facts(weight, stored_bytes=weight_bytes)


def _copy_meta(src: fx.Node, dst: fx.Node) -> None:
    for key in ("nn_module_stack", "stack_trace"):
        if key in src.meta:
            dst.meta[key] = src.meta[key]
    derive_facts(dst, src)


def quantize_linears(gm: fx.GraphModule, *, scheme: str = "none", not_converted: tuple[str, ...] = (),
                     quantize_lm_head: bool = False, quantize_router: bool = False) -> fx.GraphModule:
    if scheme == "none":
        return gm
    s = lookup_scheme(scheme)
    graph = gm.graph
    quantized_inputs: dict[fx.Node, tuple[fx.Node, fx.Node]] = {}
    for node in list(graph.nodes):
        if node.op == "call_function" and node.target is GROUPED:
            weight = arg(node, "weight")
            if _is_parameter(weight) and not excluded(module_path(node), not_converted=not_converted,
                                                      quantize_lm_head=quantize_lm_head, quantize_router=quantize_router):
                set_arg(node, "scheme_name", s.name)
                update_facts(weight, stored_bytes=float(s.weight_bytes))
            continue
        if node.op != "call_function" or node.target not in (LINEAR, FUSED):
            continue
        if not isinstance(_input(node), fx.Node):
            continue
        weights, biases = _weights(node)
        if not all(_is_parameter(w) for w in weights):
            continue
        if all(excluded(path, not_converted=not_converted, quantize_lm_head=quantize_lm_head,
                        quantize_router=quantize_router) for path in _modules(node, weights)):
            continue
        x = _input(node)
        x_in: fx.Node = x
        scale: fx.Node | None = None
        if s.activation is not None:
            fmt = s.activation
            if x not in quantized_inputs:
                args = call_args(torch.ops.tensor_cast.quantize.default, x=x, fmt=fmt.name, group=fmt.group,
                                 dynamic=fmt.dynamic)
                q_value = fake_result(gm, torch.ops.tensor_cast.quantize.default, args)
                with graph.inserting_before(node):
                    q = graph.call_function(torch.ops.tensor_cast.quantize.default, args)
                    items = [graph.call_function(operator.getitem, (q, i)) for i in range(2)]
                for part, value in zip((q, *items), (q_value, *q_value), strict=True):
                    _copy_meta(node, part)
                    part.meta["example_value"] = value
                quantized_inputs[x] = (items[0], items[1])
            x_in, scale = quantized_inputs[x]
        out_dtype = (example(node) if node.target is LINEAR else example(node)[0]).dtype
        gemm_args = call_args(torch.ops.tensor_cast.quant_linear.default, x=x_in, x_scale=scale, weights=weights,
                              biases=biases, scheme_name=s.name, out_dtype=out_dtype)
        result = fake_result(gm, torch.ops.tensor_cast.quant_linear.default, gemm_args)
        with graph.inserting_before(node):
            new = graph.call_function(torch.ops.tensor_cast.quant_linear.default, gemm_args)
            _copy_meta(node, new)
            new.meta["example_value"] = result
            if node.target is LINEAR:
                item = graph.call_function(operator.getitem, (new, 0))
                _copy_meta(node, item)
                item.meta["example_value"] = result[0]
                node.replace_all_uses_with(item)
            else:
                node.replace_all_uses_with(new)
        graph.erase_node(node)
        for w in weights:
            update_facts(w, stored_bytes=float(s.weight_bytes))
    _store_mla_weights(gm, float(s.weight_bytes), lambda path: excluded(
        path, not_converted=not_converted, quantize_lm_head=quantize_lm_head, quantize_router=quantize_router))
    return finish(gm)
