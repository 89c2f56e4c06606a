"""shard_norms: a TP rank's RMSNorm over channels the group splits gets the whole row's statistic.

A q / k norm that spans all heads (OLMo 2 / 3, FlexOlmo, MiniMax-M2: RMSNorm over heads x
head_dim, not over one head) normalizes by the mean of squares of the whole projection, but a TP rank
holds only its heads. The rank's graph (captured from the per-rank spec) computes the norm over its
share alone, which would silently drop the collective the engines run for it (the family table
`tensor_cast/deployment/tp_plan.py` SHARDED_NORMS says which one: "stats" all-reduces each token's
local statistic, "gather" all-gathers the shares and normalizes the whole row).

Matches: a `tensor_cast::rms_norm` in a module the family's table names (`layers.*.self_attn.q_norm`,
`layers.*.self_attn.k_norm`), after `fuse_rms_norm`; and a `tensor_cast::gated_rms_norm` whose one group
spans the rank's row, in a Mamba-2 mixer of a model with one B / C group (`layers.*.mamba`: Granite 4.0
hybrids, Bamba; vLLM's `Mixer2RMSNormGated` all-reduces the sum of squares at tp > 1).
Produces: `sharded_rms_norm(x, weight, eps, tp, nodes, "tp", method[, gate])` in its place (same inputs,
same output shape and dtype: the rank's share).
Invariant after: no `rms_norm` left in a named module; every named module that ran ops holds one
`sharded_rms_norm` per norm it had.
Example (tp=2, OLMo 2):
    before: q = linear(h, Wq[H/2 ...]); qn = rms_norm(q, w_q[H/2], 1e-6)
    after:  q = linear(h, Wq); qn = sharded_rms_norm(q, w_q, 1e-6, 2, 1, "tp", "gather")
Refuses: tp == 1 (no-op); a named module whose ops hold no fused `rms_norm` (an unfused graph, or a
norm this pass does not know) — a DeploymentError naming the module, never a norm left unsharded.
"""

from __future__ import annotations

import torch
from torch import fx

from ..errors import DeploymentError
from .graph_utils import example, finish, module_path, plan_pattern


def shard_norms(gm: fx.GraphModule, *, tp: int = 1, nodes: int = 1,
                norms: tuple[tuple[str, str, str], ...] = ()) -> fx.GraphModule:
    if tp <= 1 or not norms:
        return gm
    ops = {"rms_norm": torch.ops.tensor_cast.rms_norm.default,
           "gated_rms_norm": torch.ops.tensor_cast.gated_rms_norm.default}
    sharded = torch.ops.tensor_cast.sharded_rms_norm.default
    patterns = [(plan_pattern(key), ops[op], method) for key, op, method in norms]
    found: dict[str, bool] = {}  # norm module path -> holds a fused rms_norm
    for node in list(gm.graph.nodes):
        if node.op not in ("call_function", "call_method"):
            continue
        path = module_path(node)
        for pattern, target, method in patterns:
            if not pattern.search(path):
                continue
            if target is ops["rms_norm"]:  # the pattern names the norm module: every op in it is the norm's
                found.setdefault(path, False)
            if node.target is not target:
                continue
            if target is ops["rms_norm"]:
                found[path] = True
                x, weight, eps = node.args[:3]
                node.args = (x, weight, eps, tp, nodes, "tp", method)
            else:  # a Mamba-2 mixer's gated norm over one group spanning the rank's whole share
                x, gate, weight, group_size, eps = node.args[:5]
                if group_size != example(x).shape[-1]:
                    raise DeploymentError(f"tp={tp}: {path} normalizes groups of {group_size} channels, not the "
                                          f"whole {example(x).shape[-1]} of the rank's row its TP plan names")
                node.args = (x, weight, eps, tp, nodes, "tp", method, gate)
            node.target = sharded
            node.kwargs = {}
            break
    missing = [path for path, fused in found.items() if not fused]
    if missing:
        raise DeploymentError(
            f"tp={tp}: {missing[0]} normalizes channels split over the TP ranks, but its graph holds no fused "
            "rms_norm to give the whole row's statistic (run with kernel fusion, the default)")
    return finish(gm)
