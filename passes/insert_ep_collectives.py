"""insert_ep_collectives: expert parallelism on one rank's graph — its share of the experts, and the
exchanges that bring tokens to them (all_to_all, or all-gather / reduce-scatter under MoE TP).

The graph is one rank's and keeps every expert (the router and top-k need all E; a per-rank spec
with E/ep experts would shrink the router and fail when k > E/ep). This pass makes the rank's
share explicit instead.

Matches: every `tensor_cast::moe` node (after `replace_moe` and `quantize_moe`).
Produces, for each:
- the op's `ep` / `ep_dp` cost arguments: the routed experts are split over `ep` ranks and the
  tokens of `dp` attention-DP replicas are routed over them (the formula then costs this rank's
  E/ep experts: the pairs they receive, the weights of those hit);
- `NodeFacts.rank_share = 1/ep` on the routed experts' weights and biases (the memory
  report holds E/ep experts per GPU; routers and shared experts stay whole, or TP-sharded). The
  column split of each expert over `moe_tp` ranks is already in the graph's shapes (the per-rank
  spec, `deployment/sharding.py`);
- with dp > 1, moe_tp == 1 and `exchange="all_to_all"` (each rank holds different tokens, whole experts): `ep_dispatch`
  on the block input before the op and `ep_combine` on its output, an all_to_all each over the
  `ep` ranks (spanning `nodes` nodes). Dispatch travels in FP8 when the experts run FP8
  activations (DeepEP's FP8 dispatch), in NVFP4 when they run NVFP4 ones (TensorRT-LLM's
  post-quant all_to_all), else in the model dtype; combine in the output dtype;
- with dp > 1, moe_tp == 1 and `exchange="allgather"` (vLLM's and SGLang's default exchange,
  TensorRT-LLM's across nodes: tensor_cast/deployment/moe_exchange.py):
  `ep_allgather` / `ep_reducescatter` over the dp ranks as below; each rank's E/ep experts still
  compute only the pairs routed to them (the op's costing is the all_to_all case's);
- with dp > 1 and moe_tp > 1 (MoE TP across attention-DP ranks, with or without EP): a token
  must reach every column slice of its experts, which an all_to_all cannot do; TensorRT-LLM
  then all-gathers the tokens of the dp replicas and reduce-scatters the partial outputs
  (`AllGatherReduceScatter`, selected whenever moe_tp_size != 1 under attention DP,
  `_torch/modules/fused_moe/communication/communication_factory.py`): `ep_allgather` before the
  op, `ep_reducescatter` after it, over the dp ranks (in the same wire dtypes). Every rank then
  runs its E/ep experts' I/moe_tp columns over all N = dp·T tokens. This pass runs for ep == 1
  too when dp > 1 and the experts span the replicas (moe_tp = tp·dp).
With dp == 1 (ep == tp: vLLM's `--tensor-parallel-size N --enable-expert-parallel`) every rank
already holds every token: no exchange; each rank computes its experts' rows for all tokens and
the MoE block's output is a partial sum, which the TP all_reduce after the block (inserted by
`insert_tp_collectives`, the experts being row-parallel) sums — as vLLM does without all2all
kernels. With tp > 1 and dp > 1 each TP rank dispatches a 1/tp slice of its replica's tokens
(sequence-parallel MoE) and the same TP all_reduce reassembles them with the shared experts'
partial sums.
Invariant after: shapes and dtypes unchanged; every MoE op carries ep; with dp > 1 exactly one
dispatch (all_to_all) or all-gather (allgather, or moe_tp > 1) reads each MoE op's input and one
combine or reduce-scatter reads its output, in that order.
Example (tp=1, dp=8, ep=8, FP8 experts):
    before: y = moe(h, Wr, [], Wgu, Wd, ..., "fp8"); z = add(r, y)
    after:  d = ep_dispatch(h, 8, 256, 8, 8, 1, "fp8"); m = moe(d, Wr, [], Wgu, Wd, ..., 0.0, "fp8", 8, 8)
            y = ep_combine(m, 8, 256, 8, 8, 1); z = add(r, y)
Refuses: ep == 1 unless dp > 1 and moe_tp > 1 (no-op: nothing is split across ranks). Raises (a `DeploymentError`) when a MoE block was left as a bare
`routed_experts` op (its experts cannot be split without the block's router) or the graph has no
MoE op at all, or ep does not divide a block's experts.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from ..deployment.moe_exchange import EXCHANGES
from ..deployment.quantization import scheme as lookup_scheme
from ..errors import DeploymentError
from .graph_utils import example, fake_result, finish, insert_op_after, module_path
from .node_facts import derive_facts, update_facts
from .op_args import arg, call_args, set_args

EXPERT_WEIGHTS = ("gate_up", "down", "gate_up_bias", "down_bias")  # tensor_cast::moe arguments split over ranks
MODEL_DTYPES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}


def _wire_dtype(node: fx.Node) -> str:
    """The experts' activation format when their scheme quantizes activations to FP8 (DeepEP dispatches
    FP8) or NVFP4 (TensorRT-LLM quantizes before its all_to_all / all-gather), else the model dtype."""
    scheme = str(arg(node, "scheme"))
    activation = lookup_scheme(scheme).activation if scheme != "none" else None
    if activation is not None and activation.name in ("fp8", "nvfp4"):
        return activation.name
    return MODEL_DTYPES.get(example(arg(node, "hidden")).dtype, "bf16")


def _routing(node: fx.Node, ep: int, dp: int, nodes: int) -> dict[str, object]:
    """The exchange ops' arguments besides the tensor, by name."""
    experts = int(example(arg(node, "gate_up")).shape[0])
    if experts % ep:
        raise DeploymentError(f"ep={ep} does not divide the {experts} experts of {module_path(node) or 'a MoE block'}")
    top_k = arg(node, "top_k")
    assert isinstance(top_k, int), "replace_moe writes a literal top_k"
    return {"top_k": top_k, "num_experts": experts, "group_size": ep, "ep_dp": dp, "nodes": nodes}


def _insert_around(gm: fx.GraphModule, node: fx.Node, before: Any, before_args: tuple[Any, ...], after: Any,
                   after_args: dict[str, Any]) -> None:
    """`before` on the MoE op's hidden input, `after` on its output."""
    hidden = arg(node, "hidden")
    value = fake_result(gm, before, before_args)
    with gm.graph.inserting_before(node):
        sent = gm.graph.call_function(before, before_args)
    sent.meta.update({k: v for k, v in node.meta.items() if k in ("nn_module_stack", "stack_trace")})
    sent.meta["example_value"] = value
    derive_facts(sent, node)
    node.replace_input_with(hidden, sent)
    insert_op_after(gm, node, after, call_args(after, y=node, **after_args))


def insert_ep_collectives(gm: fx.GraphModule, *, ep: int = 1, dp: int = 1, nodes: int = 1,
                          moe_tp: int = 1, exchange: str = "all_to_all") -> fx.GraphModule:
    if exchange not in EXCHANGES:
        raise DeploymentError(f"unknown MoE exchange {exchange!r}; accepted: {', '.join(EXCHANGES)}")
    if ep <= 1 and (dp <= 1 or moe_tp <= 1):  # nothing split: every rank holds every expert whole
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
        if ep > 1:
            for weight in (arg(node, name) for name in EXPERT_WEIGHTS):
                if isinstance(weight, fx.Node):
                    update_facts(weight, rank_share=1 / ep)
        if dp <= 1:
            continue
        hidden = arg(node, "hidden")
        if moe_tp == 1 and exchange == "all_to_all":
            _insert_around(gm, node, tc.ep_dispatch.default,
                           call_args(tc.ep_dispatch.default, x=hidden, **routing, wire_dtype=_wire_dtype(node)),
                           tc.ep_combine.default, routing)
        else:
            group = {"group_size": dp, "ep_dp": dp, "nodes": nodes}
            _insert_around(gm, node, tc.ep_allgather.default,
                           call_args(tc.ep_allgather.default, x=hidden, **group, wire_dtype=_wire_dtype(node)),
                           tc.ep_reducescatter.default, group)
    return finish(gm)
