"""insert_tp_collectives: the collectives a tensor-parallel rank runs, inserted into its graph.

The graph is one rank's: it was captured from the per-rank spec (heads, intermediate sizes and
vocabulary already divided by tp, `tensor_cast/deployment/sharding.py`), so every projection has
its sharded shape. What is missing are the collectives that make sharded results whole again.

Matches:
- the embedding lookup (module `embed_tokens`; Nemotron-H's `embeddings`): vocab-parallel, each rank holds V/tp rows and
  looks up only its tokens -> `all_reduce` of the embedded hidden states;
- every decoder sub-block (`layers.N.self_attn`, `layers.N.mlp`, ...) that holds a row-parallel
  module (the family's TP plan: o_proj, down_proj, MoE experts, ...): its output is a partial sum
  -> one `all_reduce` on the sub-block's output (engines reduce an MoE block's routed and shared
  experts once, not per projection);
- a sub-block that also holds a `replicated` module (whole on every rank: LatentMoE's latent
  projections, vLLM `ReplicatedLinear`): the partial sums are reduced where they stop being linear
  in the rank's share instead — on the input of a replicated linear or any other op that is not a
  view, a scalar scaling or a sum of partial sums, and on the partial operand of a sum with a whole
  tensor (Nemotron 3 Super: the routed experts' latent output before `fc2_latent_proj`, the shared
  experts' output before it is added to the up-projected routed output, vLLM's MoE runner
  `_maybe_reduce_routed_output_before_transform` / `_maybe_reduce_shared_expert_output`);
- the lm_head (`lm_head`): column-parallel over the vocabulary -> `all_gather` of the logits.
Produces: `tensor_cast::all_reduce(x, tp, nodes, "tp")` / `all_gather(logits, -1, tp, nodes, "tp")`
between the producer and its users, attributed to the producing module.
Invariant after: 2 all_reduces per standard decoder layer (attention, MLP); no replicated module
or non-linear op reads a partial sum; the hidden states
keep their shapes and dtypes; the logits have the (padded) full vocabulary.
Example (tp=4, one Llama layer):
    before: o = linear(attn, Wo[H, H/4]); h = h + o; ...; d = linear(a, Wd[H, I/4]); h = h + d
    after:  o = all_reduce(linear(attn, Wo), 4, 1, "tp"); h = h + o; ...
            d = all_reduce(linear(a, Wd), 4, 1, "tp"); h = h + d
Refuses: tp == 1 (no-op). Raises when tp > 1 and no row-parallel module of the family's plan is
found (a TP graph without reductions would be silently wrong), and when a decoder sub-block's linear
projects another width back to the hidden size outside every reduced sub-block and replicated module
(a row-parallel module the family's plan misses: Bamba's `feed_forward.down_proj` was one).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import fx

from ..errors import DeploymentError
from .graph_utils import example, finish, insert_op_after, module_path, plan_pattern, truncated_stack

EMBEDDINGS = (F.embedding, torch.embedding, torch.ops.aten.embedding.default)
LINEARS = (torch._C._nn.linear, torch.ops.tensor_cast.fused_linear.default)
# ops whose output is a partial sum when their tensor inputs are (views, conversions, sums, scalar scaling)
SHAPE_METHODS = ("view", "reshape", "flatten", "unsqueeze", "squeeze", "contiguous", "to", "type")
SUMS = (operator.add, torch.add, operator.sub, torch.sub)
SCALINGS = (operator.mul, torch.mul, operator.truediv, torch.div)
SUBLAYER = re.compile(r"^((?:.*\.)?layers\.\d+\.[^.]+)")


def _module_matches(path: str, patterns: list[re.Pattern[str]]) -> bool:
    return any(p.search(path) for p in patterns)


def _hidden_size(gm: fx.GraphModule) -> int | None:
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target in EMBEDDINGS:
            return example(node).shape[-1]
    return None


def _sublayer_outputs(gm: fx.GraphModule, sublayer: str, hidden: int | None) -> list[tuple[fx.Node, list[fx.Node]]]:
    """(node, users outside) for the sub-block's floating outputs of the residual width."""
    inside = set(_inside(gm, sublayer))
    out = []
    for node in gm.graph.nodes:
        if node not in inside:
            continue
        value = example(node)
        if not isinstance(value, torch.Tensor) or not value.dtype.is_floating_point:
            continue
        if hidden is not None and value.shape[-1] != hidden:
            continue
        outside = [u for u in node.users if u not in inside]
        if outside:
            out.append((node, outside))
    return out


def insert_tp_collectives(gm: fx.GraphModule, *, tp: int = 1, nodes: int = 1,
                          row_parallel: tuple[str, ...] = (), replicated: tuple[str, ...] = (), embedding: tuple[str, ...] = ("embed_tokens", "embeddings"),
                          lm_head: str = "lm_head") -> fx.GraphModule:
    if tp <= 1:
        return gm
    reduce, gather = torch.ops.tensor_cast.all_reduce.default, torch.ops.tensor_cast.all_gather.default
    rows = [plan_pattern(key) for key in row_parallel]
    hidden = _hidden_size(gm)
    sublayers: dict[str, None] = {}
    for node in list(gm.graph.nodes):
        if node.op not in ("call_function", "call_method"):
            continue
        path = module_path(node)
        if node.op == "call_function" and node.target in EMBEDDINGS and path.split(".")[-1] in embedding:
            insert_op_after(gm, node, reduce, (node, tp, nodes, "tp"))
        elif node.op == "call_function" and node.target in LINEARS and path.split(".")[-1] == lm_head:
            insert_op_after(gm, node, gather, (node, -1, tp, nodes, "tp"))
        elif _module_matches(path, rows) or any(_module_matches(p, rows) for p in _enclosing(path)):
            match = SUBLAYER.match(path)
            if match:
                sublayers.setdefault(match.group(1))
    if not sublayers:
        raise DeploymentError(
            f"tp={tp}: no row-parallel module ({', '.join(row_parallel) or 'empty TP plan'}) found in the graph; "
            "this model family's tensor-parallel plan is unknown")
    whole = [plan_pattern(key) for key in replicated]
    _check_projections_reduced(gm, sublayers, whole, hidden, tp)
    for sublayer in sublayers:
        if whole and any(_module_matches(module_path(n), whole) for n in _inside(gm, sublayer)):
            def reduce_for(n: fx.Node, users: list[fx.Node], sub: str = sublayer) -> fx.Node:
                return insert_op_after(gm, n, reduce, (n, tp, nodes, "tp"), users=users,
                                       module_stack=truncated_stack(n, sub))

            _reduce_where_needed(gm, sublayer, rows, reduce_for, whole)
            continue
        for node, users in _sublayer_outputs(gm, sublayer, hidden):
            insert_op_after(gm, node, reduce, (node, tp, nodes, "tp"), users=users,
                            module_stack=truncated_stack(node, sublayer))
    return finish(gm)


def _check_projections_reduced(gm: fx.GraphModule, sublayers: dict[str, None], whole: list[re.Pattern[str]],
                               hidden: int | None, tp: int) -> None:
    """Every linear of a decoder sub-block that projects another width back to the residual width (an
    o_proj / down_proj / out_proj kind: its input is the rank's share of a sharded activation) sits in a
    sub-block that is reduced, or is whole on every rank (`replicated`): else its partial sums would reach
    the residual stream unreduced — a family whose TP plan misses a row-parallel module is refused."""
    if hidden is None:
        return
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target is not torch._C._nn.linear or len(node.args) < 2:
            continue
        weight = example(node.args[1])
        path = module_path(node)
        match = SUBLAYER.match(path)
        if (not isinstance(weight, torch.Tensor) or weight.dim() != 2 or match is None
                or weight.shape[0] != hidden or weight.shape[1] == hidden):
            continue
        if match.group(1) not in sublayers and not _module_matches(path, whole):
            raise DeploymentError(
                f"tp={tp}: {path} projects {weight.shape[1]} channels back to the hidden size {hidden} but is not "
                "row-parallel in this family's TP plan (tensor_cast/deployment/tp_plan.py): its partial sums would "
                "reach the residual stream unreduced")


def _inside(gm: fx.GraphModule, sublayer: str) -> list[fx.Node]:
    """The sub-block's ops (its own module and every module under it), in graph order."""
    prefix = sublayer + "."
    return [n for n in gm.graph.nodes if n.op in ("call_function", "call_method")
            if (p := module_path(n)) == sublayer or p.startswith(prefix)]


def _keeps_partial(node: fx.Node, partial_inputs: list[fx.Node], tensor_inputs: list[fx.Node],
                   whole: list[re.Pattern[str]]) -> bool:
    """Whether `node` maps partial sums to a partial sum (so the reduction may wait past it)."""
    if _module_matches(module_path(node), whole):
        return False
    if node.op == "call_method" and node.target in SHAPE_METHODS:
        return True
    if node.op == "call_function" and node.target in SUMS:
        return len(partial_inputs) == len(tensor_inputs)
    if node.op == "call_function" and node.target in SCALINGS:
        return len(tensor_inputs) == 1
    return False


def _reduce_where_needed(gm: fx.GraphModule, sublayer: str, rows: list[re.Pattern[str]],
                         reduce: Callable[[fx.Node, list[fx.Node]], fx.Node], whole: list[re.Pattern[str]]) -> None:
    """Reduce each partial sum of the sub-block before the first op that needs it whole."""
    inside = _inside(gm, sublayer)
    members = set(inside)
    partial: set[fx.Node] = set()
    for node in inside:
        path = module_path(node)
        if _module_matches(path, rows) or any(_module_matches(p, rows) for p in _enclosing(path)):
            if any(u not in members or not _module_matches(module_path(u), rows) for u in node.users):
                partial.add(node)  # the row-parallel module's result
            continue
        tensors = [a for a in node.all_input_nodes if isinstance(example(a), torch.Tensor)]
        partial_inputs = [a for a in tensors if a in partial]
        if not partial_inputs:
            continue
        if _keeps_partial(node, partial_inputs, tensors, whole):
            partial.add(node)
            continue
        for source in partial_inputs:
            members.add(reduce(source, [node]))
    for node in [n for n in inside if n in partial]:
        outside = [u for u in node.users if u not in members]
        if outside:
            reduce(node, outside)


def _enclosing(path: str) -> list[str]:
    """Parent module paths of `path` (a row-parallel MoE `experts` module encloses its ops)."""
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]
