"""Memory of one step: weights, KV cache / recurrent state, activation peak; parameter counts.

Owns:
- `parameter_table(rep)`: every parameter of the representative model with the number of real
  layers it stands for (model-level ones count once, tied embeddings once), and the fraction of
  it each token uses (routed experts: top_k / num_experts);
- `activation_candidates(costed)`: live activation bytes at each point of the representative
  graph (liveness: an output lives from its op to its last use, views extend their base's life);
  the peak is the max of these;
- KV/state bytes come from the ops themselves (`Counts.state_bytes`);
- `stored_bytes(gm)`: bytes per element of the parameters a pass stored in another format
  (quantized weights: `NodeFacts.stored_bytes` on their placeholders), as the
  `bytes_per_element` function `parameter_table` takes;
- `rank_shares(gm)`: the fraction of each parameter one rank holds when the graph keeps the
  whole tensor but the rank stores only its part (expert parallelism: the routed experts'
  weights, E/ep of E — `NodeFacts.rank_share`, set by `insert_ep_collectives`), as the
  `share` function `parameter_table` takes.
A parameter's layer is the decoder layer module that holds it (`provenance.parameter_layers`,
by identity), never parsed from its name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import fx

from .backends.formulas.registry import DTYPE_BYTES
from .capture.provenance import parameter_layers
from .costed import CostedGraph, ParamEntry
from .models.build import RepresentativeModel
from .passes.node_facts import facts


def _layer_spec_of(name: str, rep: RepresentativeModel, layer: int | None, extra: dict[str, int]) -> Any:
    """The spec of the layer a parameter belongs to: a stack layer, an MTP block's layer, or None."""
    if layer is not None:
        return rep.kinds[layer]
    return rep.extra_layers[extra[name]][1] if name in extra else None


def parameter_table(rep: RepresentativeModel,
                    bytes_per_element: Callable[[str, torch.Tensor], float] | None = None,
                    share: Callable[[str], float] | None = None) -> list[ParamEntry]:
    from .models.adapters.moe import routed_expert_parameters

    # Routed experts (3-D weights and their per-expert biases, by module name from the family
    # table): a token uses top_k of num_experts. Routers and shared experts are fully active.
    stack, extra_layers = rep.layer_modules(), rep.extra_layer_modules()
    routed = routed_expert_parameters(rep.model, rep.spec, (*stack, *extra_layers))
    layer_of = parameter_layers(rep.model, stack)
    extra = parameter_layers(rep.model, extra_layers)  # name -> index into rep.extra_layers
    embedding = rep.model.get_input_embeddings()  # type: ignore[operator]
    embedding_weight = getattr(embedding, "weight", None)
    entries = []
    for name, param in rep.model.named_parameters():  # shared (tied) parameters appear once
        layer = layer_of.get(name)
        multiplicity = len(rep.layer_indices[layer]) if layer is not None else 1
        fraction = 1.0
        layer_spec = _layer_spec_of(name, rep, layer, extra)
        if layer_spec is not None:
            moe = layer_spec.mlp.moe
            if moe is not None and name in routed and param.shape[0] == moe.num_experts:
                fraction = moe.top_k / moe.num_experts
        size = bytes_per_element(name, param) if bytes_per_element else DTYPE_BYTES[param.dtype]
        entries.append(ParamEntry(name=name, numel=param.numel(), dtype=str(param.dtype).removeprefix("torch."), rep_layer=layer,
                                  multiplicity=multiplicity, active_fraction=fraction, bytes_per_element=size,
                                  share=share(name) if share else 1.0,
                                  input_embedding=param is embedding_weight))
    return entries


def _placeholder_facts(gm: fx.GraphModule) -> list[Any]:
    return [facts(n) for n in gm.graph.nodes if n.op == "placeholder" and facts(n).param]


def stored_bytes(gm: fx.GraphModule) -> Callable[[str, torch.Tensor], float]:
    """Bytes per element of each parameter: a recorded storage format, else its dtype's size."""
    recorded = {f.param: float(f.stored_bytes) for f in _placeholder_facts(gm) if f.stored_bytes is not None}

    def size(name: str, param: torch.Tensor) -> float:
        return recorded.get(name, DTYPE_BYTES[param.dtype])

    return size


def rank_shares(gm: fx.GraphModule) -> Callable[[str], float]:
    """The fraction of each parameter this rank stores: a recorded share, else all of it."""
    recorded = {f.param: float(f.rank_share) for f in _placeholder_facts(gm) if f.rank_share != 1}

    def share(name: str) -> float:
        return recorded.get(name, 1.0)

    return share


def activation_candidates(costed: CostedGraph) -> list[Any]:
    """Live activation bytes at each op of the representative graph (expressions in B, S, C)."""
    if costed.activations is not None:  # computed when the trace was cached
        return list(costed.activations)
    assert costed.graph is not None, "a costed graph holds its fx graph or its activation candidates"
    written = {c.name: c.counts.bytes_written for c in costed.nodes}
    out_bytes = {c.name: sum((o.nbytes for o in c.op_call().outputs), 0) for c in costed.nodes}
    graph = costed.graph.graph
    order: dict[fx.Node, int] = {}
    root: dict[fx.Node, fx.Node] = {}
    size: dict[fx.Node, Any] = {}
    for index, node in enumerate(graph.nodes):
        order[node] = index
        if node.op in ("placeholder", "output"):
            continue
        if node.name in out_bytes and written.get(node.name):
            root[node], size[node] = node, out_bytes[node.name]
        else:  # a view or a free op aliases its first tensor input
            inputs = [a for a in node.all_input_nodes if a in root]
            if inputs:
                root[node] = root[inputs[0]]
    last_use: dict[fx.Node, int] = {}
    for node in graph.nodes:
        for arg in node.all_input_nodes:
            if arg in root:
                base = root[arg]
                last_use[base] = max(last_use.get(base, 0), order[node])
    candidates = []
    births = sorted(size, key=order.__getitem__)
    for node in births:
        position = order[node]
        live = [size[b] for b in births if order[b] <= position <= last_use.get(b, order[b])]
        candidates.append(sum(live, 0))
    return candidates or [0]
