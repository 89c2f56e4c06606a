"""verify_contract: the last pass — the rewritten graph keeps the node contract costing relies on.

Matches: every node of the final graph.
Checks, failing loudly instead of letting costing guess:
- every node carries its `NodeFacts` (`passes/node_facts.py`): a pass that inserted a node
  without deriving them is a bug (`MissingFactsError`, naming the node);
- every call with a tensor result has a cost rule or is a declared free op
  (`backends/formulas/registry.py`): an op without one is an `UnknownOpError` naming the node
  and its module — never a silent zero;
- layer coverage: every decoder layer that owned ops at capture (`LAYERS_KEY` in the graph's
  meta, written by `capture/provenance.py`) still owns at least one costed op, and no node
  names a layer the model does not have (`CaptureError`).
Produces: nothing (a check); the graph is returned unchanged.
Example: a pass that inserts `all_reduce(x)` with `graph.call_function` but forgets
`derive_facts(new, x)` fails here, before any number is computed.
Refuses: n/a.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from ..backends.formulas.registry import is_free, lookup
from ..errors import CaptureError, UnknownOpError
from .graph_utils import call_target, example, module_path
from .node_facts import LAYERS_KEY, facts


def _has_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    return isinstance(value, (list, tuple)) and any(_has_tensor(v) for v in value)


def verify_contract(gm: fx.GraphModule) -> fx.GraphModule:
    costed_layers: set[int] = set()
    for node in gm.graph.nodes:
        node_facts = facts(node)  # MissingFactsError names the node
        if node.op not in ("call_function", "call_method") or not _has_tensor(example(node)):
            continue
        key = call_target(node)
        if is_free(key):
            continue
        try:
            lookup(key)
        except UnknownOpError as exc:
            raise UnknownOpError(f"{exc} (node: {node.format_node()}, module: {module_path(node) or 'model'})") from None
        if node_facts.layer is not None:
            costed_layers.add(node_facts.layer)
    expected = set(gm.meta.get(LAYERS_KEY, ()))
    if costed_layers - expected or expected - costed_layers:
        lost, stray = sorted(expected - costed_layers), sorted(costed_layers - expected)
        raise CaptureError(f"layer coverage broken after the passes: layers {lost} own no costed op"
                           + (f", layers {stray} are not layers of the captured model" if stray else ""))
    return gm
