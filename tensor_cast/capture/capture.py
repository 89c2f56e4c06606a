"""Capture a model's forward into an FX graph with symbolic batch, query and context sizes.

Owns `capture(model) -> CapturedGraph`: runs `torch.compile(fullgraph=True)` with a recording
backend on meta inputs whose batch and query dims (input_ids) and context dim (a carrier tensor
passed through the forward's kwargs) are marked dynamic, so one graph serves every shape. The
graph is the dynamo (torch-function) level one: one node per linear / attention / custom op,
module paths in `nn_module_stack` (resolved against the model's own modules by `provenance`),
parameters as placeholders that name their parameter.

Shape-env symbols are renamed to the engine's `B`, `S`, `C` from the inputs' own shapes (never
by symbol name, which changes between runs). Example sizes are distinct primes >= 3 so no two
dims are unified and none specializes to 0/1.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import types
import unittest.mock
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import sympy
import torch
from torch import fx
from torch.utils._sympy.functions import FloorDiv, PythonMod

from ..compat import IMPLEMENTATION, hf_interfaces
from ..errors import CaptureError, TensorCastError
from ..sizes import B, C, S
from .attention_interface import CONTEXT_KWARG, no_mask, tensor_cast_attention
from .provenance import attach_provenance

EXAMPLE_BATCH, EXAMPLE_QUERY, EXAMPLE_CONTEXT = 3, 11, 13


@dataclass
class CapturedGraph:
    gm: fx.GraphModule
    symbols: Mapping[sympy.Symbol, sympy.Symbol]  # shape-env symbol -> B / S / C
    fake_mode: Any

    def to_expr(self, value: Any) -> Any:
        """A SymInt / int / float from node metadata as an expression in B, S, C."""
        if isinstance(value, torch.SymInt | torch.SymFloat | torch.SymBool):
            return plain_sympy(sympy.sympify(value.node.expr).xreplace(self.symbols))
        if isinstance(value, bool | int | float):
            return value
        if isinstance(value, sympy.Basic):
            return plain_sympy(value.xreplace(self.symbols))
        raise TypeError(f"not a size: {value!r}")


def plain_sympy(expr: Any) -> Any:
    """torch's integer-division functions (a shape like S // 4: `FloorDiv`, `PythonMod`) as plain
    sympy floor / Mod, which every consumer (lambdify, simplification, printing) understands."""
    if not isinstance(expr, sympy.Basic) or not expr.has(FloorDiv, PythonMod):
        return expr
    expr = expr.replace(lambda e: isinstance(e, FloorDiv), lambda e: sympy.floor(e.args[0] / e.args[1]))
    return expr.replace(lambda e: isinstance(e, PythonMod), lambda e: sympy.Mod(*e.args))


def _reason(exc: BaseException) -> str:
    """The most specific one-line reason in a dynamo error chain (e.g. the fake-tensor shape clash
    behind 'RuntimeError when making fake tensor call')."""
    text = str(exc)
    quoted = re.findall(r"got (\w+(?:Error|Exception))\('([^']+)'\)", text)
    if quoted:
        kind, message = quoted[-1]
        return f"{kind}: {message}"
    inner = exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    first = next((line for line in str(inner).strip().splitlines() if line.strip()), "")
    return f"{type(inner).__name__}: {first}"


def _propagate_implementations(model: torch.nn.Module, *, experts: bool) -> None:
    """Layers rebuilt from per-layer configs hold their own config objects, which
    `set_attn_implementation` does not reach: point every config of this meta model at ours."""
    from transformers import PretrainedConfig

    for module in model.modules():
        config = getattr(module, "config", None)
        if isinstance(config, PretrainedConfig) and config is not model.config:
            config._attn_implementation_internal = IMPLEMENTATION
            if experts:
                config._experts_implementation_internal = IMPLEMENTATION


@contextlib.contextmanager
def _no_log_funcnames() -> Iterator[None]:
    """dynamo names the enclosing function of every traced line for its `trace_call` debug log by
    tokenizing each source file it steps through (transformers' modeling_utils.py included:
    ~0.14 s of a Qwen3-8B capture), even when that log is off. It only decorates log lines: with
    the log off, the name lookup answers "unknown" for the capture. With `TORCH_LOGS` turning the
    log on, or a torch that no longer has the lookup, nothing is changed."""
    import logging

    from torch._dynamo import symbolic_convert

    log = getattr(symbolic_convert, "trace_call_log", None)
    if not hasattr(symbolic_convert, "get_funcname") or log is None or log.isEnabledFor(logging.DEBUG):
        yield
        return
    with unittest.mock.patch.object(symbolic_convert, "get_funcname", lambda filename, lineno: None):
        yield


_ENTRIES = itertools.count()


def _entry_point(model: torch.nn.Module) -> types.FunctionType:
    """`model(**inputs)` as a function with a code object of its own.

    dynamo keeps compiled code per code object. Compiling the model itself would store our
    graph under code every `torch.compile`d module shares (dynamo's `wrap_inline`), and clearing
    it would mean `torch._dynamo.reset()`, which drops every compiled function of the process,
    the caller's included. A fresh code object per capture keeps our cache entries apart; they
    are dropped with `reset_code` afterwards, and nothing else is touched.
    """
    def entry(**inputs: Any) -> Any:
        return model(**inputs)

    code = entry.__code__.replace(co_name=f"tensor_cast_capture_{next(_ENTRIES)}")
    return types.FunctionType(code, entry.__globals__, code.co_name, entry.__defaults__, entry.__closure__)


def capture(model: torch.nn.Module, *, experts: Any = None, layers: tuple[torch.nn.Module, ...] = ()) -> CapturedGraph:
    """Trace `model(input_ids[B, S], context[C])` into one graph; logits for the last token only.

    dynamo's state outside this capture is left alone: functions the caller compiled keep their
    compiled code (no `torch._dynamo.reset()`; see `_entry_point`).
    `layers`: the model's decoder layers, whose nodes get their index as `NodeFacts.layer`."""
    graphs: list[tuple[fx.GraphModule, list[Any]]] = []

    def record(gm: fx.GraphModule, example_inputs: list[Any]) -> Any:
        graphs.append((gm, list(example_inputs)))
        return gm.forward

    input_ids = torch.empty(EXAMPLE_BATCH, EXAMPLE_QUERY, dtype=torch.long, device="meta")
    context = torch.empty(EXAMPLE_CONTEXT, dtype=torch.int8, device="meta")
    torch._dynamo.mark_dynamic(input_ids, 0)
    torch._dynamo.mark_dynamic(input_ids, 1)
    torch._dynamo.mark_dynamic(context, 0)
    entry = _entry_point(model)
    with hf_interfaces(attention=tensor_cast_attention, mask=no_mask, experts=experts):
        model.set_attn_implementation(IMPLEMENTATION)  # type: ignore[operator]
        if experts is not None:
            model.set_experts_implementation(IMPLEMENTATION)  # type: ignore[operator]
        _propagate_implementations(model, experts=experts is not None)
        compiled = torch.compile(entry, backend=record, fullgraph=True, dynamic=None)
        try:
            # One trace of each op: fake-tensor results are not reused, so building dynamo's cache
            # of them is pure cost (~0.3 s of a Qwen3-8B capture on 2 cores). Nor does dynamo
            # collect garbage after compiling: the caller pauses the GC for the whole trace
            # (analysis.trace), and a forced collection then walks every object made since.
            with torch.no_grad(), torch._dynamo.config.patch(fake_tensor_cache_enabled=False,
                                                             run_gc_after_compile=False), _no_log_funcnames():
                compiled(input_ids=input_ids, use_cache=False, logits_to_keep=1, **{CONTEXT_KWARG: context})
        except TensorCastError:
            raise
        except Exception as exc:
            inner: BaseException = exc
            while inner.__cause__ is not None and not isinstance(inner, TensorCastError):
                inner = inner.__cause__
            if isinstance(inner, TensorCastError):
                raise inner from None
            raise CaptureError(f"could not capture {type(model).__name__}: {_reason(exc)}") from exc
        finally:
            torch._dynamo.eval_frame.reset_code(entry.__code__)  # our compiled code only
    if len(graphs) != 1:
        raise CaptureError(f"expected one graph from {type(model).__name__}, got {len(graphs)}")
    gm, example_inputs = graphs[0]
    attach_provenance(gm, model, example_inputs, layers)
    # the input_ids placeholder by identity of the tensor handed to the backend, not by its generated name
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    ids_node = next((n for n, value in zip(placeholders, example_inputs, strict=True) if value is input_ids), None)
    if ids_node is None:
        raise CaptureError("captured graph has no input_ids placeholder")
    fake_mode = ids_node.meta["example_value"].fake_mode
    return CapturedGraph(gm=gm, symbols=_rename_symbols(fake_mode.shape_env), fake_mode=fake_mode)


# source name -> engine symbol; dynamo names sources after the forward's arguments.
SOURCES = {
    "['input_ids'].size()[0]": B,
    "['input_ids'].size()[1]": S,
    f"['{CONTEXT_KWARG}'].size()[0]": C,
}


def _rename_symbols(shape_env: Any) -> dict[sympy.Symbol, sympy.Symbol]:
    """Map shape-env symbols to B, S, C through the input each one came from."""
    mapping: dict[sympy.Symbol, sympy.Symbol] = {}
    for symbol, sources in shape_env.var_to_sources.items():
        for source in sources:
            name = source.name if isinstance(source.name, str) else source.name()
            for suffix, engine_symbol in SOURCES.items():
                if name.endswith(suffix):
                    mapping[symbol] = engine_symbol
    missing = {B: "batch size", S: "query length"}.keys() - set(mapping.values())
    if missing:
        raise CaptureError(f"the model's code specialized {sorted(map(str, missing))}; sizes must stay symbolic")
    return mapping
