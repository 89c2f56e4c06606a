"""fuse_rope: the rotary-embedding arithmetic of an attention layer becomes one `tensor_cast::rope`.

Matches: connected nodes traced inside the HF RoPE helpers (`apply_rotary_pos_emb`,
`rotate_half`, and their per-family variants in `ROPE_FUNCTIONS`) within one module: slices,
neg, cat, mul by cos/sin, add, for q and k together.
Produces: `rope([q, k], cos, sin[, dtype]) -> [q', k']`: one kernel rotating q and k in place of the
~14 elementwise kernels eager PyTorch launches (vLLM's `rotary_embedding`); `dtype` where the
helper casts its result back from float32 math (ERNIE-4.5) to the dtype the region outputs.
The complex form (Llama 4, DeepSeek-V2: q and k viewed as complex pairs times one complex table
`freqs_cis`, `torch.polar`'s e^(i theta)) becomes `rope([q, k], table, None, dtype)`: the table's own
preparation inside the helper (unsqueeze, indexing) stays in the graph and the op reads the
prepared table; only the nodes that depend on q or k are replaced.
Invariant after: no node of a matched helper remains (but a complex table's preparation); each
rotated tensor keeps its shape and dtype; the op's inputs are the unrotated tensors and the two
cos/sin tables, or the one prepared complex table.
Example:
    before: q*cos + cat(-q[..., 64:], q[..., :64])*sin ; same for k
    after:  q', k' = rope([q, k], cos, sin)
Refuses: regions whose outputs cannot each be matched to one input of the same shape, or that
use other than two real tables or one complex table.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import fx

from .graph_utils import (
    ancestors_within,
    connected_components,
    example,
    external_inputs,
    finish,
    module_path,
    region_outputs,
    replace_with_op,
    shape_key,
    source_functions,
)

ROPE_FUNCTIONS = frozenset({
    "apply_rotary_pos_emb", "rotate_half", "apply_rotary_emb", "apply_rotary_pos_emb_interleave",
    "rotate_half_interleave", "apply_partial_rotary_pos_emb", "_apply_rotary_emb", "apply_rope",
})


def fuse_rope(gm: fx.GraphModule) -> fx.GraphModule:
    op = torch.ops.tensor_cast.rope.default
    by_module: dict[str, list[fx.Node]] = defaultdict(list)
    for node in gm.graph.nodes:
        if node.op in ("call_function", "call_method") and ROPE_FUNCTIONS.intersection(source_functions(node)[-1:]):
            by_module[module_path(node)].append(node)
    for nodes in (c for group in by_module.values() for c in _join_on_complex_table(connected_components(group))):
        region = set(nodes)
        outputs = region_outputs(nodes)
        inputs = [n for n in external_inputs(nodes) if isinstance(example(n), torch.Tensor)]
        rotated = []
        for out in outputs:
            deps = ancestors_within(out, region)
            same = [n for n in inputs if n in deps and shape_key(n) == shape_key(out)]
            if len(same) != 1:
                break
            rotated.append(same[0])
        tables = [n for n in inputs if n not in rotated]
        if len(rotated) != len(outputs) or len(set(rotated)) != len(rotated):
            continue
        if len(tables) == 1 and example(tables[0]).is_complex():
            _fuse_complex(gm, nodes, rotated, tables[0], outputs)
            continue
        if len(tables) != 2:
            continue
        dtypes = {example(o).dtype for o in outputs}
        promoted = {torch.promote_types(example(x).dtype, example(tables[0]).dtype) for x in rotated}
        args = (rotated, tables[0], tables[1]) if dtypes == promoted or len(dtypes) != 1 else \
            (rotated, tables[0], tables[1], dtypes.pop())  # the helper casts back (ERNIE: float32 math)
        replace_with_op(gm, nodes, op, args, outputs)
    return finish(gm)


def _join_on_complex_table(components: list[list[fx.Node]]) -> list[list[fx.Node]]:
    """Components that read the same complex table are one region (Llama 4 indexes the table once for q
    and once for k, so q's and k's rotations share no node): q and k rotated by one kernel."""
    by_table: dict[fx.Node, list[fx.Node]] = {}
    joined: list[list[fx.Node]] = []
    for nodes in components:
        tables = [n for n in external_inputs(nodes) if isinstance(example(n), torch.Tensor) and example(n).is_complex()]
        if len(tables) != 1:
            joined.append(nodes)
        elif tables[0] in by_table:
            by_table[tables[0]].extend(nodes)
        else:
            by_table[tables[0]] = list(nodes)
            joined.append(by_table[tables[0]])
    return joined


def _fuse_complex(gm: fx.GraphModule, nodes: list[fx.Node], rotated: list[fx.Node], table: fx.Node,
                  outputs: list[fx.Node]) -> None:
    """The complex form: the nodes preparing the table (those not depending on q or k) stay; the op reads
    the prepared table the rotation multiplies by (one shape: Llama 4 indexes the table once per tensor)."""
    region = set(nodes)
    prep = [n for n in nodes if not ancestors_within(n, region) & set(rotated)]
    core = [n for n in nodes if n not in prep]
    fed = list(dict.fromkeys(a for n in core for a in n.all_input_nodes if a in prep or a is table))
    dtypes = {example(o).dtype for o in outputs}
    if not fed or len({shape_key(n) for n in fed}) != 1 or len(dtypes) != 1:
        return
    if replace_with_op(gm, core, torch.ops.tensor_cast.rope.default, (rotated, fed[0], None, dtypes.pop()),
                       outputs) is None:
        return
    for node in reversed(prep):  # a second indexing of the table, now unread
        if not node.users:
            gm.graph.erase_node(node)
