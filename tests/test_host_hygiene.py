"""tensor_cast inside someone else's process: its trace cache can be emptied, a capture leaves
the caller's compiled functions compiled, and `op_cost` tells a caller's bad arguments (a
`TensorCastError`) from a tensor_cast bug (a `RuntimeError` naming the op)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import tensor_cast
from tensor_cast import analysis
from tensor_cast.analysis import ExecutionOptions
from tensor_cast.errors import InvalidArgumentError, TensorCastError

SMALL = "meta-llama/Llama-3.2-1B"


@pytest.fixture(scope="module")
def small_spec():
    return tensor_cast.load_model(SMALL, num_hidden_layers=1)


def test_clear_cache_forgets_traced_graphs(small_spec):
    first = analysis.trace(small_spec, ExecutionOptions())
    assert analysis.trace(small_spec, ExecutionOptions()) is first  # cached in-process
    tensor_cast.clear_cache()
    again = analysis.trace(small_spec, ExecutionOptions())
    assert again is not first
    assert len(again.graph.graph.nodes) == len(first.graph.graph.nodes)  # the same graph, traced anew


def test_capture_keeps_the_callers_compiled_functions(small_spec):
    compiles = []

    def counting_backend(gm, example_inputs):
        compiles.append(gm)
        return gm.forward

    @torch.compile(backend=counting_backend, fullgraph=True)
    def caller_function(x):
        return torch.sin(x) * 2

    class CallerModule(torch.nn.Module):
        def forward(self, x):
            return x.cos() + 1

    caller_module = torch.compile(CallerModule(), backend=counting_backend, fullgraph=True)
    x = torch.arange(4.0)
    caller_function(x)
    caller_module(x)
    assert len(compiles) == 2
    tensor_cast.clear_cache()
    analysis.trace(small_spec, ExecutionOptions(fuse=False))  # a fresh capture (not a cache hit)
    assert torch.equal(caller_function(x), torch.sin(x) * 2)
    assert torch.equal(caller_module(x), x.cos() + 1)
    assert len(compiles) == 2  # neither was recompiled: their compiled code survived the capture


def test_captures_are_independent_under_a_callers_strict_recompile_limit(small_spec):
    """Each capture compiles code of its own, so captures never count as recompiles of one
    another, even when the caller set dynamo's recompile limit to 1."""
    with torch._dynamo.config.patch(recompile_limit=1, fail_on_recompile_limit_hit=True):
        for _ in range(2):  # the second capture would be a recompile if they shared code
            tensor_cast.clear_cache()
            assert analysis.trace(small_spec, ExecutionOptions()).graph is not None


def test_capture_leaves_dynamo_settings_and_the_gc_as_it_found_them(small_spec, monkeypatch):
    """A capture turns off, for itself only, dynamo's fake-tensor cache, its forced collection after
    compiling and its log-only function-name lookup, and pauses the GC: all back afterwards."""
    import gc

    from torch._dynamo import symbolic_convert

    lookup = symbolic_convert.get_funcname
    seen = []
    real_capture = analysis.capture

    def capture(*args, **kwargs):
        seen.append(gc.isenabled())
        return real_capture(*args, **kwargs)

    monkeypatch.setattr(analysis, "capture", capture)
    settings = (torch._dynamo.config.fake_tensor_cache_enabled, torch._dynamo.config.run_gc_after_compile)
    tensor_cast.clear_cache()
    analysis.trace(small_spec, ExecutionOptions())
    assert seen == [False] and gc.isenabled()
    assert symbolic_convert.get_funcname is lookup
    assert (torch._dynamo.config.fake_tensor_cache_enabled, torch._dynamo.config.run_gc_after_compile) == settings


def test_op_cost_rejected_arguments_are_the_callers_error():
    a = torch.empty(64, 128, dtype=torch.bfloat16, device="meta")
    b = torch.empty(256, 32, dtype=torch.bfloat16, device="meta")  # inner dims differ: 128 vs 256
    with pytest.raises(InvalidArgumentError, match=r"aten\.mm rejected these arguments"):
        tensor_cast.op_cost(torch.ops.aten.mm.default, a, b, device="h100-sxm")


def test_op_cost_failing_rule_is_a_bug_not_a_user_error(monkeypatch):
    from tensor_cast import api

    real = api.lookup(torch.ops.aten.mm.default)

    def broken_rule(call):
        raise KeyError("a key the rule expected")

    monkeypatch.setattr(api, "lookup", lambda op: dataclasses.replace(real, rule=broken_rule))
    a = torch.empty(64, 128, dtype=torch.bfloat16, device="meta")
    b = torch.empty(128, 32, dtype=torch.bfloat16, device="meta")
    with pytest.raises(RuntimeError, match=r"tensor_cast bug: costing aten\.mm\(bfloat16\[64, 128\], "
                                           r"bfloat16\[128, 32\]\) on .*KeyError") as info:
        tensor_cast.op_cost(torch.ops.aten.mm.default, a, b, device="h100-sxm")
    assert not isinstance(info.value, TensorCastError)
    assert isinstance(info.value.__cause__, KeyError)
