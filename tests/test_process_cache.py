"""The in-process trace cache, the unfused (eager) execution model, graph dumps, and the
registries' refusal of a second registration.

The cache key holds everything that changes the traced graph and nothing else: a new shape
point or device re-costs the cached graph; a different model, depth, per-layer override, fusion
or deployment traces again.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch

import tensor_cast
from tensor_cast import analysis
from tensor_cast.analysis import ExecutionOptions, _cache_key
from tensor_cast.backends.formulas.registry import register, register_free
from tensor_cast.cli import main
from tensor_cast.deployment.config import Deployment, resolve
from tensor_cast.models import registry

LLAMA = "meta-llama/Llama-3.2-1B"
CONFIG = registry.lookup(LLAMA).config


def options(**deployment) -> ExecutionOptions:
    spec = tensor_cast.load_model(LLAMA)
    resolved = resolve(Deployment.from_options(deployment), spec, tensor_cast.load_device("h100-sxm"))
    return ExecutionOptions(deployment=resolved.trace_options())


def key(model=LLAMA, *, num_hidden_layers=None, per_layer_config=None, **option_fields) -> str:
    spec = tensor_cast.load_model(model, num_hidden_layers=num_hidden_layers, per_layer_config=per_layer_config)
    return _cache_key(spec, ExecutionOptions(**option_fields))


def test_cache_key_changes_with_what_changes_the_graph():
    base = key()
    changed = {
        "another model": key("meta-llama/Llama-3.2-3B"),
        "depth": key(num_hidden_layers=2),
        "a per-layer override": key(per_layer_config={1: {"intermediate_size": 4096}}),
        "unfused": key(fuse=False),
    }
    assert [name for name, value in changed.items() if value == base] == []
    spec = tensor_cast.load_model(LLAMA)
    assert _cache_key(spec, options(tp=2)) != _cache_key(spec, options())
    assert _cache_key(spec, options(quant="fp8")) != _cache_key(spec, options())


def test_cache_key_ignores_what_does_not_change_the_graph():
    assert key("META-LLAMA/llama-3.2-1b") == key()  # the same registry entry, spelled differently
    for knob in (dict(mla_form="absorbed"), dict(moe_skew=1.0), dict(cuda_graphs="never")):  # cost knobs
        assert key(**knob) == key(), knob
    spec = tensor_cast.load_model(LLAMA)
    on_h100 = resolve(Deployment.from_options({}), spec, tensor_cast.load_device("h100-sxm"))
    on_b200 = resolve(Deployment.from_options({}), spec, tensor_cast.load_device("b200"))
    assert _cache_key(spec, ExecutionOptions(deployment=on_h100.trace_options())) == \
        _cache_key(spec, ExecutionOptions(deployment=on_b200.trace_options()))  # the device only re-costs


def test_new_point_and_device_reuse_the_traced_graph():
    tensor_cast.clear_cache()
    first = tensor_cast.analyze(LLAMA, device="h100-sxm", batch_size=1, query_len=512, num_hidden_layers=1)
    traced = analysis.trace(tensor_cast.load_model(LLAMA, num_hidden_layers=1))
    second = tensor_cast.analyze(LLAMA, device="b200", batch_size=8, query_len=1, context_len=1024,
                                 num_hidden_layers=1)
    assert analysis.trace(tensor_cast.load_model(LLAMA, num_hidden_layers=1)) is traced  # no new trace
    assert len(analysis._CACHE) == 1
    assert first.device != second.device and first.total_flops != second.total_flops


def test_mla_form_re_costs_and_never_re_traces(monkeypatch):
    """The MLA form is a cost knob: changing it captures nothing new, and the MLA op's FLOPs move
    from the absorbed to the expanded formula, written out here from DeepSeek-V3's named dims."""
    tensor_cast.clear_cache()
    captures = []
    real_capture = analysis.capture
    monkeypatch.setattr(analysis, "capture", lambda *a, **k: captures.append(1) or real_capture(*a, **k))
    batch, context = 8, 4096
    kw = dict(device="h100-sxm", batch_size=batch, query_len=1, context_len=context, num_hidden_layers=1, cache=False)
    mla = {form: next(r for r in tensor_cast.analyze("deepseek-ai/DeepSeek-V3", mla_form=form, **kw).ops
                      if r.op == "tensor_cast.mla_attention") for form in ("auto", "absorbed", "expanded")}
    assert len(captures) == 1 and len(analysis._CACHE) == 1
    c = registry.lookup("deepseek-ai/DeepSeek-V3").config
    heads, rank, rope, nope, v_dim = (c["num_attention_heads"], c["kv_lora_rank"], c["qk_rope_head_dim"],
                                      c["qk_nope_head_dim"], c["v_head_dim"])
    pairs = batch * heads * (context + 1)  # one causal query per sequence: the cached tokens and itself
    softmax = 4 * pairs
    absorbed = (2 * batch * heads * nope * rank + 2 * pairs * (rank + rope) + 2 * pairs * rank
                + 2 * batch * heads * rank * v_dim + softmax)
    expanded = (2 * batch * (context + 1) * rank * heads * (nope + v_dim) + 2 * pairs * (nope + rope)
                + 2 * pairs * v_dim + softmax)
    assert mla["absorbed"].flops == absorbed and mla["expanded"].flops == expanded
    assert mla["auto"].flops == absorbed  # a decode step: the absorbed kernel
    assert mla["expanded"].time_s > mla["absorbed"].time_s


# ---- fuse=False / --unfused -------------------------------------------------------------------------
def test_unfused_runs_every_projection_and_norm_as_its_own_kernels():
    """Eager execution: q, k, v, o, gate, up, down and the lm_head are 8 separate GEMMs, RMSNorm is
    torch's elementwise ops; the GEMM FLOPs are those of the fused graph (fusion changes kernels,
    not arithmetic): 2·T·(weights of the 7 projections) + 2·B·hidden·vocab for the last token."""
    batch, query = 2, 256
    fused = tensor_cast.analyze(LLAMA, device="h100-sxm", batch_size=batch, query_len=query, num_hidden_layers=1)
    eager = tensor_cast.analyze(LLAMA, device="h100-sxm", batch_size=batch, query_len=query, num_hidden_layers=1,
                                fuse=False)
    ops = Counter(r.op for r in eager.ops)
    assert ops["linear"] == 8 and ops["tensor_cast.fused_linear"] == 0
    assert not [r for r in eager.ops if r.op.startswith("tensor_cast.") and "norm" in r.op]
    assert Counter(r.op for r in fused.ops)["tensor_cast.fused_linear"] == 2  # QKV, gate+up
    c = CONFIG
    h, heads, kv, d, inter = (c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"],
                              c["intermediate_size"])
    projections = h * heads * d + 2 * h * kv * d + heads * d * h + 3 * h * inter
    gemm = 2 * batch * query * projections + 2 * batch * h * c["vocab_size"]
    for report in (fused, eager):
        assert sum(r.flops for r in report.ops if r.kind == "gemm") == gemm
    assert eager.total_time_s > fused.total_time_s
    assert eager.context.options["fuse"] is False


def test_cli_unfused(capsys):
    assert main(["analyze", LLAMA, "--device", "h100-sxm", "--num-hidden-layers", "1", "--query-len", "64",
                 "--unfused", "--by", "op"]) == 0
    out = capsys.readouterr().out
    assert "tensor_cast.fused_linear" not in out and "linear" in out


# ---- graph dumps: rendered only when asked for ------------------------------------------------------
def test_graph_dumps_are_rendered_only_when_asked_for(tmp_path):
    tensor_cast.clear_cache()
    spec = tensor_cast.load_model(LLAMA, num_hidden_layers=1)
    plain = analysis.trace(spec)
    assert plain.dumps is None
    with pytest.raises(RuntimeError, match="without graph dumps"):
        plain.write_dumps(tmp_path / "nothing")
    tensor_cast.analyze(LLAMA, device="h100-sxm", batch_size=1, query_len=8, num_hidden_layers=1,
                        dump_graph=tmp_path / "graphs")
    from tensor_cast.passes import build_pipeline

    names = [name for name, _ in build_pipeline(ExecutionOptions())]
    expected = ["00_capture.txt", *(f"{i:02d}_{name}.txt" for i, name in enumerate(names, start=1))]
    assert sorted(p.name for p in (tmp_path / "graphs").glob("[!.]*")) == sorted(expected)
    last = (tmp_path / "graphs" / expected[-1]).read_text()
    assert "tensor_cast.fused_linear" in last and "tensor_cast.attention" in last
    assert analysis.trace(spec, dumps=True).dumps is not None  # the dumped trace replaced the plain one
    report = tensor_cast.analyze(LLAMA, device="h100-sxm", batch_size=1, query_len=8, num_hidden_layers=1)
    assert report.graph_dumps == ()  # not asked for: not in the report
    asked = tensor_cast.analyze(LLAMA, device="h100-sxm", batch_size=1, query_len=8, num_hidden_layers=1,
                                graph_dumps=True)
    assert [name for name, _ in asked.graph_dumps] == expected


# ---- registries refuse a second registration --------------------------------------------------------
def test_registering_a_cost_rule_twice_is_an_error():
    with pytest.raises(ValueError, match=r"cost rule for aten\.mm registered twice"):
        register(torch.ops.aten.mm.default, kind="gemm")(lambda call: None)
    with pytest.raises(ValueError, match=r"registered twice"):
        register_free("no reason", torch.ops.aten.mm.default)



def test_every_cost_knob_is_a_cost_only_option():
    """Each CostKnobs field is an ExecutionOptions field outside the trace cache key, and
    `ExecutionOptions.knobs()` carries its value to the cost rules."""
    import dataclasses

    from tensor_cast.backends.formulas.registry import CostKnobs

    knobs = {f.name for f in dataclasses.fields(CostKnobs)}
    assert knobs <= set(analysis.COST_ONLY) <= {f.name for f in dataclasses.fields(ExecutionOptions)}
    options = ExecutionOptions(moe_skew=0.5, mla_form="expanded")
    assert options.knobs() == CostKnobs(moe_skew=0.5, mla_form="expanded")
