"""The typed record every graph node carries: where it comes from and how its data is stored.

Owns `NodeFacts` (one frozen dataclass under one meta key, `FACTS`) and its accessors. Like
torch.fx's `ShapeProp` `tensor_meta`, the record is set once, right after capture, from the
model itself (`capture/provenance.py`: module identity, not dynamo's generated names), and every
pass keeps it: a pass that inserts a node derives the new node's facts from the node it stands
in for (`derive_facts`), and a pass that changes how a value is stored updates that one field
(`update_facts`). Costing, memory and the report read these fields and never re-derive them from
module paths or parameter names.

Fields:
- `layer`: the representative decoder layer the node belongs to (index into the representative
  model's layer stack), None for model-level nodes (embedding, final norm, lm_head, MTP blocks);
- `phase`: `prologue` (model-level, before the first layer), `layer`, or `epilogue`
  (model-level, after it);
- `param`: on a parameter / buffer placeholder, its name in the model's `named_parameters()`;
- `stored_bytes`: on a parameter placeholder, the bytes per element it is stored at when a pass
  chose a narrower format than its meta dtype (quantized weights; scales included), else None;
- `rank_share`: on a parameter placeholder, the fraction of the tensor this rank stores when the
  graph keeps the whole tensor (expert parallelism: 1/ep of the routed experts), else 1;
- `input_bytes`: on a call node, the bytes per element it reads for named inputs whose storage
  differs from their dtype (an FP8 KV cache read by the attention kernel), as (name, bytes) pairs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import fx

FACTS = "tensor_cast_facts"
# graph meta: the decoder layers that own call nodes at capture (`verify_contract` checks they still do)
LAYERS_KEY = "tensor_cast_layers"
PHASES = ("prologue", "layer", "epilogue")


@dataclass(frozen=True)
class NodeFacts:
    layer: int | None = None
    phase: str = "prologue"
    param: str | None = None
    stored_bytes: float | None = None
    rank_share: float = 1.0
    input_bytes: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {self.phase!r}")
        if (self.layer is None) == (self.phase == "layer"):
            raise ValueError(f"layer={self.layer!r} does not agree with phase={self.phase!r}")

    def input_storage(self, name: str) -> Any:
        """Bytes per element this node reads for its input `name`, or None (the input's dtype)."""
        return dict(self.input_bytes).get(name)


class MissingFactsError(RuntimeError):
    """A node has no `NodeFacts`: a pass inserted it without deriving them (a bug, not a user error)."""


def has_facts(node: fx.Node) -> bool:
    return isinstance(node.meta.get(FACTS), NodeFacts)


def facts(node: fx.Node) -> NodeFacts:
    value = node.meta.get(FACTS)
    if not isinstance(value, NodeFacts):
        raise MissingFactsError(f"node {node.format_node()} has no NodeFacts (a pass inserted it without "
                                "deriving them; see passes/node_facts.py)")
    return value


def parameter_name(node: fx.Node) -> str | None:
    """The model parameter (or buffer) a placeholder carries, or None."""
    return facts(node).param if node.op == "placeholder" else None


def set_facts(node: fx.Node, value: NodeFacts) -> None:
    node.meta[FACTS] = value


def update_facts(node: fx.Node, **changes: Any) -> NodeFacts:
    """Replace some fields of a node's facts (e.g. `stored_bytes` when a pass quantizes a weight)."""
    value = dataclasses.replace(facts(node), **changes)
    node.meta[FACTS] = value
    return value


def derive_facts(new: fx.Node, template: fx.Node) -> None:
    """Facts of a node a pass inserts in place of / beside `template`: its layer and phase."""
    source = facts(template)
    node_facts = NodeFacts(layer=source.layer, phase=source.phase)
    new.meta[FACTS] = node_facts
