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
- `meta["tensor_cast_rank_share"] = 1/ep` on the routed experts' weights and biases (the memory
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
    before: y = moe(h, Wr, [], Wgu, Wd, ..., 0.0, "fp8"); z = add(r, y)
    after:  d = ep_dispatch(h, 8, 256, 0.0, 8, 8, 1, "fp8"); m = moe(d, Wr, [], Wgu, Wd, ..., 0.0, "fp8", 8, 8)
            y = ep_combine(m, 8, 256, 0.0, 8, 8, 1); z = add(r, y)
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

RANK_SHARE = "tensor_cast_rank_share"  # placeholder meta: the fraction of a parameter one rank holds
TOP_K, SKEW, SCHEME, EP, EP_DP = 9, 14, 15, 16, 17  # tensor_cast::moe argument positions
EXPERT_WEIGHTS = (3, 4, 5, 6)  # gate_up, down, gate_up_bias, down_bias
MODEL_DTYPES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}


def _wire_dtype(node: fx.Node) -> str:
    """FP8 when the experts' scheme quantizes activations to FP8 (DeepEP dispatches FP8), else the model dtype."""
    scheme = str(node.args[SCHEME])
    activation = lookup_scheme(scheme).activation if scheme != "none" else None
    if activation is not None and activation.name == "fp8":
        return "fp8"
    return MODEL_DTYPES.get(example(node.args[0]).dtype, "bf16")


def _routing(node: fx.Node, ep: int, dp: int, nodes: int) -> tuple[object, ...]:
    """(top_k, E, skew, ep, dp, nodes): the exchange ops' arguments after the tensor."""
    experts = int(example(node.args[3]).shape[0])
    if experts % ep:
        raise DeploymentError(f"ep={ep} does not divide the {experts} experts of {module_path(node) or 'a MoE block'}")
    top_k, skew = node.args[TOP_K], node.args[SKEW]
    assert isinstance(top_k, int) and isinstance(skew, (int, float)), "replace_moe writes literal top_k and skew"
    return (top_k, experts, float(skew), ep, dp, nodes)


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
        args = list(node.args) + [1] * (EP_DP + 1 - len(node.args))
        args[EP], args[EP_DP] = ep, dp
        node.args = tuple(args)
        for weight in (node.args[i] for i in EXPERT_WEIGHTS):
            if isinstance(weight, fx.Node):
                weight.meta[RANK_SHARE] = 1 / ep
        if dp <= 1:
            continue
        hidden = node.args[0]
        dispatch_args = (hidden, *routing, _wire_dtype(node))
        value = fake_result(gm, tc.ep_dispatch.default, dispatch_args)
        with gm.graph.inserting_before(node):
            dispatch = gm.graph.call_function(tc.ep_dispatch.default, dispatch_args)
        dispatch.meta.update({k: v for k, v in node.meta.items() if k in ("nn_module_stack", "stack_trace")})
        dispatch.meta["example_value"] = value
        node.replace_input_with(hidden, dispatch)
        insert_op_after(gm, node, tc.ep_combine.default, (node, *routing))
    return finish(gm)
