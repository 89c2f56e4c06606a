"""quantize_kv_cache: the KV cache is stored in a narrower dtype (fp8 / int8) than the model's.

Matches: every attention op that keeps a KV cache (`CACHE_ARGS`: the op and the names of its
cached tensors; `tensor_cast::attention`: key and value).
Produces: no new node. The attention node's `NodeFacts.input_bytes` name its cached inputs and
their bytes per element, so its cost reads, appends and holds the cache at that size
(`costing.make_call`); the attention math keeps its precision (engines dequantize
the cache inside the kernel).
Invariant after: the graph's nodes, shapes and dtypes are unchanged.
Example (kv_cache_dtype fp8, bf16 model):
    before: attention(q, k, v, C, ...)      # k, v costed at 2 bytes per element
    after:  attention(q, k, v, C, ...)      # k, v costed at 1 byte per element
Refuses: `kv_bytes=None` (the model dtype: no-op); attention ops without a cache entry in
`CACHE_ARGS`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from .graph_utils import finish
from .node_facts import update_facts
from .op_args import arg

CACHE_ARGS: dict[Any, tuple[str, ...]] = {
    torch.ops.tensor_cast.attention.default: ("key", "value"),
    torch.ops.tensor_cast.mla_attention.default: ("latent", "k_rope"),
    torch.ops.tensor_cast.dsa_indexer.default: ("k",),  # the indexer's keys
    torch.ops.tensor_cast.compressed_attention.default: ("kv", "compressed"),  # DeepSeek-V4: window + entries
    torch.ops.tensor_cast.compressed_indexer.default: ("k",),
}


def quantize_kv_cache(gm: fx.GraphModule, *, kv_bytes: Any = None) -> fx.GraphModule:
    if kv_bytes is None:
        return gm
    for node in gm.graph.nodes:
        names = CACHE_ARGS.get(node.target) if node.op == "call_function" else None
        if not names:
            continue
        cached = tuple((name, kv_bytes) for name in names if isinstance(arg(node, name), fx.Node))
        update_facts(node, input_bytes=cached)
    return finish(gm)
