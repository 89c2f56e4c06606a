"""eliminate_dead_code: drop nodes whose results nobody uses.

Matches: any node without users that has no side effect (placeholders, the output, in-place
methods and side-effectful functions are kept).
Produces: nothing; the graph shrinks.
Invariant after: every remaining non-placeholder node is used, impure, or the output.
Example: with the no-op mask function, transformers still computes packed-sequence positions
(`diff`, `ne`, `cumsum` over position ids) that no op consumes; they disappear, as does the
`_log_api_usage_once` call.
Refuses: nothing is rewritten, only erased.
"""

from __future__ import annotations

from torch import fx

from .graph_utils import finish


def _impure(node: fx.Node) -> bool:
    if node.op in ("placeholder", "output"):
        return True
    if node.op == "call_method" and str(node.target).endswith("_") and not str(node.target).startswith("_"):
        return True
    return node.is_impure()


def eliminate_dead_code(gm: fx.GraphModule) -> fx.GraphModule:
    gm.graph.eliminate_dead_code(is_impure_node=_impure)
    return finish(gm)
