"""check_kept_unquantized: every module pattern the user keeps unquantized names a module of the model.

`keep_unquantized` patterns (the deployment's, beside the checkpoint's own `not_converted`) are read by
`quantize_linears` and `quantize_moe`, which skip what they match. A pattern that matches nothing would be
skipped silently and cost the model as if it were not given (a typo, or "mtp.*" without MTP drafts), so
this pass refuses it.
Matches: nothing; reads the graph's weight placeholders (parameters of two or more dimensions) and the
module each belongs to, e.g. `model.layers.3.mlp.experts` or `mtp.0.layers.0.self_attn.q_a_proj` (an MTP
block's decoder layers live under `mtp.K.layers.I`, models/mtp.py).
Invariant after: the graph unchanged; each pattern matches at least one weight's module (the same
matching as `quantize_linears.excluded`, `matches`: fnmatch over the path, with or without a leading `model.`).
Refuses: a pattern that matches no weight's module (DeploymentError naming it and a few module paths).
"""

from __future__ import annotations

import torch
from torch import fx

from ..errors import DeploymentError
from .graph_utils import example
from .node_facts import parameter_name
from .quantize_linears import matches


def _weight_modules(gm: fx.GraphModule) -> list[str]:
    """The modules of the graph's weight matrices (placeholders of parameters with two or more dimensions)."""
    modules: dict[str, None] = {}
    for node in gm.graph.nodes:
        if node.op != "placeholder":
            continue
        name, value = parameter_name(node), example(node)
        if name and isinstance(value, torch.Tensor) and value.dim() >= 2 and "." in name:
            modules[name.rsplit(".", 1)[0]] = None
    return list(modules)


def check_kept_unquantized(gm: fx.GraphModule, *, patterns: tuple[str, ...] = ()) -> fx.GraphModule:
    if not patterns:
        return gm
    modules = _weight_modules(gm)
    for pattern in patterns:
        if not any(matches(m, pattern) for m in modules):
            examples = ", ".join(repr(m) for m in modules[:3])
            raise DeploymentError(
                f"keep_unquantized pattern {pattern!r} matches no module with weights (fnmatch over module paths such "
                f"as {examples}; an MTP block's are 'mtp.0.layers.0...' and exist only with mtp >= 1)")
    return gm
