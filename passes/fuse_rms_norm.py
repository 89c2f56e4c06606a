"""fuse_rms_norm: an RMSNorm module's subgraph becomes one `tensor_cast::rms_norm`.

Matches: the nodes traced inside a module whose class name ends with `RMSNorm` (Llama, Qwen,
Mistral, Gemma — with its (1 + w) weight —, DeepSeek, per-head q/k norms of Qwen3) or is Llama 4's
weightless `Llama4TextL2Norm`: upcast,
pow, mean, add eps, rsqrt, mul, downcast, mul by weight; one tensor input (x), an optional
weight parameter, one output.
Produces: `rms_norm(x, weight, eps)`, one kernel reading x and the weight, writing the output.
Invariant after: no node remains inside a matched norm module except the op; shapes and dtypes
of the norm's output are unchanged.
Example:
    before: to(f32) -> pow -> mean -> add(eps) -> rsqrt -> mul -> to(bf16) -> mul(weight)
    after:  rms_norm(x, weight, 1e-5)
Refuses: norms with more tensor inputs (gated norms take a gate: left unfused), modules whose
output dtype the op would not reproduce.
"""

from __future__ import annotations

import torch
from torch import fx

from .graph_utils import (
    connected_components,
    example,
    external_inputs,
    finish,
    module_regions,
    region_outputs,
    replace_with_op,
    shape_key,
)
from .node_facts import parameter_name

# Llama 4's L2Norm (its per-head q/k norm) is x * rsqrt(mean(x^2) + eps): an RMSNorm without a weight
NORM_CLASS_SUFFIXES = ("RMSNorm", "Llama4TextL2Norm")


def _eps(nodes: list[fx.Node]) -> float:
    for node in nodes:
        for arg in node.args:
            if isinstance(arg, float) and 0 < arg < 1e-2:
                return arg
    return 1e-6


def fuse_rms_norm(gm: fx.GraphModule) -> fx.GraphModule:
    op = torch.ops.tensor_cast.rms_norm.default
    # one norm module called twice (Llama 4's qk_norm on q, then on k) is two unconnected calls
    for nodes in (c for region in module_regions(gm, NORM_CLASS_SUFFIXES).values() for c in connected_components(region)):
        outputs = region_outputs(nodes)
        tensors = [n for n in external_inputs(nodes) if isinstance(example(n), torch.Tensor)]
        weights = [n for n in tensors if parameter_name(n) is not None]
        xs = [n for n in tensors if n not in weights]
        if len(outputs) != 1 or len(xs) != 1 or len(weights) > 1:
            continue
        out, x = example(outputs[0]), example(xs[0])
        if shape_key(outputs[0]) != shape_key(xs[0]):
            continue
        weight = weights[0] if weights else None
        expected = torch.promote_types(x.dtype, example(weight).dtype) if weight is not None else x.dtype
        if out.dtype != expected:
            continue
        replace_with_op(gm, nodes, op, (xs[0], weight, _eps(nodes)), outputs)
    return finish(gm)
