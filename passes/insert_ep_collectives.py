"""insert_ep_collectives: expert parallelism on one rank's graph — its share of the experts, and the
all_to_all exchanges that bring tokens to them.

The graph is one rank's and keeps every expert (the router and top-k need all E; a per-rank spec
with E/ep experts would shrink the router and fail when k > E/ep). This pass makes the rank's
share explicit instead.

Matches: every `tensor_cast::moe` node (after `replace_moe` and `quantize_moe`).
Produces, for each:
- the op's `ep` / `ep_dp` cost arguments: the routed experts are split over `ep` ranks and the
  tokens of `dp` attention-DP replicas are routed over them (the formula then costs this rank's
  E/ep experts: the pairs they receive, the weights of those hit);
- `NodeFacts.rank_share = 1/ep` on the routed experts' weights and biases (the memory
  report holds E/ep experts per GPU; routers and shared experts stay whole, or TP-sharded);
- with dp > 1 (each rank holds different tokens): `ep_dispatch` on the block input before the op
  and `ep_combine` on its output, an all_to_all each over the `ep` ranks (spanning `nodes`
  nodes). Dispatch travels in FP8 when the experts run FP8 activations (DeepEP's FP8 dispatch),
  else in the model dtype; combine in the output dtype.
With dp == 1 (ep == tp: vLLM's `--tensor-parallel-size N --enable-expert-parallel`) every rank
already holds every token: no exchange; each rank computes its experts' rows for all tokens and
the MoE block's output is a partial sum, which the TP all_reduce after the block (inserted by
`insert_tp_collectives`, the experts being row-parallel) sums — as vLLM does without all2all
kernels. With tp > 1 and dp > 1 each TP rank dispatches a 1/tp slice of its replica's tokens
(sequence-parallel MoE) and the same TP all_reduce reassembles them with the shared experts'
partial sums.
Invariant after: shapes and dtypes unchanged; every MoE op carries ep; with dp > 1 exactly one
dispatch reads each MoE op's input and one combine reads its output, in that order.
Example (tp=1, dp=8, ep=8, FP8 experts):
    before: y = moe(h, Wr, [], Wgu, Wd, ..., "fp8"); z = add(r, y)
    after:  d = ep_dispatch(h, 8, 256, 8, 8, 1, "fp8"); m = moe(d, Wr, [], Wgu, Wd, ..., 0.0, "fp8", 8, 8)
            y = ep_combine(m, 8, 256, 8, 8, 1); z = add(r, y)
Refuses: ep == 1 (no-op). Raises (a `DeploymentError`) when a MoE block was left as a bare
`routed_experts` op (its experts cannot be split without the block's router) or the graph has no
MoE op at all, or ep does not divide a block's experts.
"""

from __future__ import annotations

import torch
from torch import fx

from ..deployment.quantization import scheme as lookup_scheme
from ..errors import DeploymentError
from .graph_utils import example, fake_result, finish, insert_op_after, module_path
from .node_facts import derive_facts, update_facts
from .op_args import arg, call_args, set_args

EXPERT_WEIGHTS = ("gate_up", "down", "gate_up_bias", "down_bias")  # tensor_cast::moe arguments split over ranks
MODEL_DTYPES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}


def _wire_dtype(node: fx.Node) -> str:
    """FP8 when the experts' scheme quantizes activations to FP8 (DeepEP dispatches FP8), else the model dtype."""
    scheme = str(arg(node, "scheme"))
    activation = lookup_scheme(scheme).activation if scheme != "none" else None
    if activation is not None and activation.name == "fp8":
        return "fp8"
    return MODEL_DTYPES.get(example(arg(node, "hidden")).dtype, "bf16")


def _routing(node: fx.Node, ep: int, dp: int, nodes: int) -> dict[str, object]:
    """The exchange ops' arguments besides the tensor, by name."""
    experts = int(example(arg(node, "gate_up")).shape[0])
    if experts % ep:
        raise DeploymentError(f"ep={ep} does not divide the {experts} experts of {module_path(node) or 'a MoE block'}")
    top_k = arg(node, "top_k")
    assert isinstance(top_k, int), "replace_moe writes a literal top_k"
    return {"top_k": top_k, "num_experts": experts, "group_size": ep, "ep_dp": dp, "nodes": nodes}


def insert_ep_collectives(gm: fx.GraphModule, *, ep: int = 1, dp: int = 1, nodes: int = 1) -> fx.GraphModule:
    if ep <= 1:
        return gm
    tc = torch.ops.tensor_cast
    calls = [n for n in gm.graph.nodes if n.op == "call_function"]
    bare = [n for n in calls if n.target is tc.routed_experts.default]
    if bare:
        raise DeploymentError(f"ep={ep}: the MoE block {module_path(bare[0]) or '?'} was not folded into one "
                              "tensor_cast::moe op, so its experts cannot be split over ranks; accepted ep: 1")
    moes = [n for n in calls if n.target is tc.moe.default]
    if not moes:
        raise DeploymentError(f"ep={ep}: the graph has no MoE layer to split; accepted ep: 1")
    for node in moes:
        routing = _routing(node, ep, dp, nodes)
        set_args(node, ep=ep, ep_dp=dp)
        for weight in (arg(node, name) for name in EXPERT_WEIGHTS):
            if isinstance(weight, fx.Node):
                update_facts(weight, rank_share=1 / ep)
        if dp <= 1:
            continue
        hidden = arg(node, "hidden")
        dispatch_args = call_args(tc.ep_dispatch.default, x=hidden, **routing, wire_dtype=_wire_dtype(node))
        value = fake_result(gm, tc.ep_dispatch.default, dispatch_args)
        with gm.graph.inserting_before(node):
            dispatch = gm.graph.call_function(tc.ep_dispatch.default, dispatch_args)
        dispatch.meta.update({k: v for k, v in node.meta.items() if k in ("nn_module_stack", "stack_trace")})
        dispatch.meta["example_value"] = value
        derive_facts(dispatch, node)
        node.replace_input_with(hidden, dispatch)
        insert_op_after(gm, node, tc.ep_combine.default, call_args(tc.ep_combine.default, y=node, **routing))
    return finish(gm)
