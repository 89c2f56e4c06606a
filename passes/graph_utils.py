"""Graph helpers every pass shares: where a node comes from, and replacing a subgraph by one op.

Owns:
- `module_path(node)` / `module_class(node)` / `module_stack(node)`: the (normalized) module a
  dynamo node was traced in, from `nn_module_stack`;
- `source_functions(node)`: the Python functions on the node's stack trace (how RoPE helpers
  such as `apply_rotary_pos_emb` are recognized without patching them);
- `replace_with_op(gm, nodes, op, args, outputs)`: erase a set of nodes and insert one call of a
  custom op in their place, with `example_value` computed by the op's fake kernel in the graph's
  fake mode and the module metadata of the nodes it replaces. It refuses (returns None) when the
  region has other outputs than the ones named, or when no insertion point keeps the graph in
  topological order — passes then leave the pattern untouched.
Every node these helpers insert gets `NodeFacts` derived from the node it stands in for
(`node_facts.derive_facts`), so the record set at capture survives every pass.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import fx

from .node_facts import derive_facts

_SELF_PREFIX = re.compile(r"^L\['self'\]\.?")
_MODULES = re.compile(r"\._modules\['([^']+)'\]|\['([^']+)'\]")


def normalize_path(path: str) -> str:
    path = _SELF_PREFIX.sub("", path)
    return _MODULES.sub(lambda m: "." + (m.group(1) or m.group(2)), path).lstrip(".")


def module_stack(node: fx.Node) -> list[tuple[str, str]]:
    """[(module path, class name), ...] from outermost to innermost."""
    stack = node.meta.get("nn_module_stack") or {}
    out = []
    for path, cls in stack.values():
        name = cls if isinstance(cls, str) else getattr(cls, "__name__", str(cls))
        out.append((normalize_path(path), name.rsplit(".", 1)[-1]))
    return out


def module_path(node: fx.Node) -> str:
    stack = module_stack(node)
    return stack[-1][0] if stack else ""


def plan_pattern(plan_key: str) -> re.Pattern[str]:
    """A TP-plan key ("layers.*.mlp.down_proj") as a regex over full module paths."""
    body = r"\.".join(r"\d+" if part == "*" else re.escape(part) for part in plan_key.split("."))
    return re.compile(rf"(^|\.){body}$")


def module_class(node: fx.Node) -> str:
    stack = module_stack(node)
    return stack[-1][1] if stack else ""


def module_regions(gm: fx.GraphModule, class_suffixes: tuple[str, ...]) -> dict[str, list[fx.Node]]:
    """Ops traced inside modules whose class name ends with one of `class_suffixes`, grouped by
    the innermost such module's path (graph order kept)."""
    regions: dict[str, list[fx.Node]] = {}
    for node in gm.graph.nodes:
        if node.op not in ("call_function", "call_method"):
            continue
        for path, cls in reversed(module_stack(node)):
            if cls.endswith(class_suffixes):
                regions.setdefault(path, []).append(node)
                break
    return regions


def source_functions(node: fx.Node) -> list[str]:
    """Function names on the node's stack trace, outermost first."""
    trace = node.meta.get("stack_trace") or ""
    return re.findall(r'File "[^"]*", line \d+, in (\w+)', trace)


def example(node: Any) -> Any:
    return node.meta.get("example_value") if isinstance(node, fx.Node) else node


def shape_key(value: Any) -> tuple[str, ...]:
    """A hashable, guard-free key for a node's (or tensor's) shape: each dim as its expression."""
    tensor = example(value)
    return tuple(str(d.node.expr) if isinstance(d, torch.SymInt) else str(d) for d in tensor.shape)


def is_tensor_node(node: Any) -> bool:
    return isinstance(node, fx.Node) and isinstance(example(node), torch.Tensor)


def fake_mode_of(gm: fx.GraphModule) -> Any:
    for node in gm.graph.nodes:
        value = example(node)
        if isinstance(value, torch.Tensor) and hasattr(value, "fake_mode"):
            return value.fake_mode
    raise ValueError("graph has no fake tensors in its metadata")


def call_target(node: fx.Node) -> Any:
    """The op key: the function called, or 'Tensor.<method>' for a method call."""
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    return node.target


def external_inputs(nodes: Sequence[fx.Node]) -> list[fx.Node]:
    """Nodes outside the region used by it, in first-use order."""
    region = set(nodes)
    seen: dict[fx.Node, None] = {}
    for node in nodes:
        for arg in node.all_input_nodes:
            if arg not in region:
                seen.setdefault(arg, None)
    return list(seen)


def region_outputs(nodes: Sequence[fx.Node]) -> list[fx.Node]:
    """Region nodes used outside the region (or by the graph output)."""
    region = set(nodes)
    return [n for n in nodes if any(user not in region for user in n.users)]


def ancestors_within(node: fx.Node, region: set[fx.Node]) -> set[fx.Node]:
    """Every node `node` depends on, walking only through `region` (external inputs included)."""
    out: set[fx.Node] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        for arg in current.all_input_nodes:
            if arg not in out:
                out.add(arg)
                if arg in region:
                    stack.append(arg)
    return out


def connected_components(nodes: Sequence[fx.Node]) -> list[list[fx.Node]]:
    """Split `nodes` into groups connected by edges between them (graph order kept in each)."""
    parent = {n: n for n in nodes}

    def find(n: fx.Node) -> fx.Node:
        while parent[n] is not n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    members = set(nodes)
    for node in nodes:
        for arg in node.all_input_nodes:
            if arg in members:
                parent[find(arg)] = find(node)
    groups: dict[fx.Node, list[fx.Node]] = {}
    for node in nodes:
        groups.setdefault(find(node), []).append(node)
    return list(groups.values())


def _flat_nodes(value: Any) -> Iterable[fx.Node]:
    out: list[fx.Node] = []
    fx.node.map_arg(value, out.append)
    return out


def _same_value(node: fx.Node, value: Any) -> bool:
    """True when `value` (a fake result) has the shape and dtype of `node`'s example value."""
    old = example(node)
    if not isinstance(old, torch.Tensor) or not isinstance(value, torch.Tensor):
        return True  # not a tensor (symbolic sizes, tuples): nothing to compare
    return old.dtype == value.dtype and tuple(old.shape) == tuple(value.shape)


def replace_with_op(gm: fx.GraphModule, nodes: Sequence[fx.Node], op: Any, args: tuple[Any, ...],
                    outputs: Sequence[fx.Node], kwargs: dict[str, Any] | None = None) -> fx.Node | None:
    """Replace `nodes` by one call `op(*args)`; its i-th result replaces `outputs[i]`.

    Refuses (returns None, the graph untouched) when a result differs from the output it replaces
    in shape or dtype: a fusion keeps every value its users read as it was."""
    graph = gm.graph
    region = set(nodes)
    if set(region_outputs(nodes)) - set(outputs):
        return None
    order = {n: i for i, n in enumerate(graph.nodes)}
    users = [u for o in outputs for u in o.users if u not in region]
    anchor = min(users, key=order.__getitem__) if users else max(nodes, key=order.__getitem__).next
    inputs = list(_flat_nodes((args, kwargs or {})))
    if any(n in region or order[n] >= order[anchor] for n in inputs):
        return None
    fake_mode = fake_mode_of(gm)
    fake_args = fx.node.map_arg((args, kwargs or {}), example)
    with fake_mode:
        result = op(*fake_args[0], **fake_args[1])
    values = [result] if len(outputs) == 1 and not isinstance(result, (list, tuple)) else list(result)
    if len(values) != len(outputs) or not all(_same_value(o, v) for o, v in zip(outputs, values, strict=True)):
        return None
    template = outputs[-1] if outputs else nodes[-1]
    with graph.inserting_before(anchor):
        new = graph.call_function(op, args, kwargs or {})
        new.meta.update({k: v for k, v in template.meta.items() if k in ("nn_module_stack", "stack_trace")})
        new.meta["example_value"] = result
        new.meta["fused_from"] = [n.name for n in nodes]
        derive_facts(new, template)
        if len(outputs) == 1 and not isinstance(result, (list, tuple)):
            replacements = [new]
        else:
            replacements = []
            for i, value in enumerate(result):
                item = graph.call_function(operator.getitem, (new, i))
                item.meta.update({k: v for k, v in new.meta.items() if k != "fused_from"})
                item.meta["example_value"] = value
                replacements.append(item)
    for old, replacement in zip(outputs, replacements, strict=True):
        old.replace_all_uses_with(replacement)
    for node in sorted(nodes, key=order.__getitem__, reverse=True):
        if not node.users:
            graph.erase_node(node)
    return new


def finish(gm: fx.GraphModule) -> fx.GraphModule:
    gm.graph.lint()
    gm.recompile()
    return gm


# ---- inserting ops (parallelism / quantization passes) -------------------------------------------
def fake_result(gm: fx.GraphModule, op: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> Any:
    """Run `op`'s fake kernel on the example values of `args`, in the graph's own fake mode."""
    fake_args = fx.node.map_arg((args, kwargs or {}), example)
    with fake_mode_of(gm):
        return op(*fake_args[0], **fake_args[1])


def insert_op_after(gm: fx.GraphModule, node: fx.Node, op: Any, args: tuple[Any, ...],
                    users: Iterable[fx.Node] | None = None, module_stack: dict[str, Any] | None = None) -> fx.Node:
    """Insert `op(*args)` right after `node` and make `users` (default: all of node's users) read it.

    The new node's `example_value` comes from the op's fake kernel; it keeps `node`'s stack trace
    and `module_stack` (default: `node`'s `nn_module_stack`), so it is attributed to that module.
    """
    targets = list(node.users) if users is None else list(users)
    result = fake_result(gm, op, args)
    with gm.graph.inserting_after(node):
        new = gm.graph.call_function(op, args)
    new.meta["nn_module_stack"] = dict(module_stack if module_stack is not None else node.meta.get("nn_module_stack") or {})
    if "stack_trace" in node.meta:
        new.meta["stack_trace"] = node.meta["stack_trace"]
    new.meta["example_value"] = result
    derive_facts(new, node)
    for user in targets:
        if user is not new:
            user.replace_input_with(node, new)
    return new


def truncated_stack(node: fx.Node, path: str) -> dict[str, Any]:
    """`node`'s `nn_module_stack` cut at module `path` (the entries of `path` and its parents)."""
    stack = node.meta.get("nn_module_stack") or {}
    out = {}
    for key, (raw, cls) in stack.items():
        normalized = normalize_path(raw)
        if path == normalized or path.startswith(normalized + ".") or not normalized:
            out[key] = (raw, cls)
    return out
