"""fold_rotary_tables: the per-forward cos/sin computation becomes one `tensor_cast::rotary_table`.

Matches: each connected group of nodes traced inside a module whose class name ends with
`RotaryEmbedding`, with one integer input (positions), one inverse-frequency buffer and two
outputs (cos, sin). (Gemma 3 computes a local and a global table pair in one module: two groups.)
Produces: `(cos, sin) = rotary_table(positions, inv_freq, scaling, dtype)`, a free op: serving
engines compute the cos/sin cache once at load time and index it inside the RoPE kernel.
Invariant after: cos and sin keep their shapes and dtypes; no node of the rotary module remains.
Example:
    before: positions[:, None, :].float() @ inv_freq -> cat -> cos, sin -> * scaling -> to(bf16)
    after:  cos, sin = rotary_table(positions, inv_freq, 1.0, torch.bfloat16)
Tables with one angle per rotated pair (DeepSeek-V4's interleaved RoPE: no cat of the angles)
fold as `rotary_table(..., paired=True)`.
Refuses: rotary modules whose tables the op would not reproduce (shape or dtype differs:
multimodal / dynamic variants), which then stay as costed elementwise ops.
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


def _scaling(nodes: list[fx.Node]) -> float:
    for node in nodes:
        if node.op == "call_function" and "mul" in getattr(node.target, "__name__", ""):
            for arg in node.args:
                if isinstance(arg, float):
                    return arg
    return 1.0


def fold_rotary_tables(gm: fx.GraphModule) -> fx.GraphModule:
    op = torch.ops.tensor_cast.rotary_table.default
    regions = module_regions(gm, ("RotaryEmbedding",))
    for nodes in (c for region in regions.values() for c in connected_components(region)):
        outputs = region_outputs(nodes)
        tensors = [n for n in external_inputs(nodes) if isinstance(example(n), torch.Tensor)]
        positions = [n for n in tensors if not example(n).dtype.is_floating_point]
        freqs = [n for n in tensors if "inv_freq" in n.name]
        if len(outputs) != 2 or len(positions) != 1 or len(freqs) != 1:
            continue
        cos, sin = (example(o) for o in outputs)
        pairs = example(freqs[0]).shape[0]
        shapes = {(*shape_key(positions[0]), str(width)): width == pairs for width in (2 * pairs, pairs)}
        if shape_key(cos) not in shapes or shape_key(sin) != shape_key(cos) or cos.dtype != sin.dtype:
            continue
        paired = shapes[shape_key(cos)]
        replace_with_op(gm, nodes, op, (positions[0], freqs[0], _scaling(nodes), cos.dtype, paired), outputs)
    return finish(gm)
