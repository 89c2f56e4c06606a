"""MoE model families end to end: parameter counts (public sizes and an analytic count from the
config's named dims), one `tensor_cast::moe` per MoE layer with dense layers left dense,
per-layer overrides, the CLI, and clear errors for what is not supported."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

import tensor_cast
from tensor_cast.analysis import trace
from tensor_cast.capture.experts_interface import check_moe_capture, experts_function
from tensor_cast.cli import main
from tensor_cast.errors import InvalidArgumentError, UnsupportedModelError
from tensor_cast.memory import parameter_table
from tensor_cast.models import registry
from tensor_cast.models.build import build_representative
from tensor_cast.passes.op_args import arg

tc = torch.ops.tensor_cast


def config(model_id: str) -> dict:
    return registry.lookup(model_id).config


def params(model_id: str) -> tuple[float, float]:
    """(total, active per token) from the representative model (no capture)."""
    table = parameter_table(build_representative(tensor_cast.load_model(model_id)))
    return sum(p.total for p in table), sum(p.total * p.active_fraction for p in table)


# ---- analytic parameter counts from named config dims ---------------------------------------------
def attention_params(c: dict, *, qkv_bias: bool = False, out_bias: bool = False, qk_norm: str = "",
                     sinks: bool = False) -> int:
    h, heads, kv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    d = c.get("head_dim") or h // heads
    weights = h * heads * d + 2 * h * kv * d + heads * d * h
    bias = (heads * d + 2 * kv * d if qkv_bias else 0) + (h if out_bias else 0)
    norm = {"": 0, "per_head": 2 * d, "full": (heads + kv) * d}[qk_norm]
    return weights + bias + norm + (heads if sinks else 0)


def expert_params(h: int, inter: int, experts: int, *, bias: bool = False) -> int:
    return experts * (3 * h * inter + ((2 * inter + h) if bias else 0))


def total_params(c: dict, *, attention: int, moe_layer: int, dense_layer: int = 0, dense_layers: int = 0,
                 tied: bool = False) -> int:
    h, layers, vocab = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"]
    norms = 2 * h * layers + h
    embeddings = vocab * h * (1 if tied else 2)
    return (layers * attention + (layers - dense_layers) * moe_layer + dense_layers * dense_layer + norms
            + embeddings)


def analytic(model_id: str) -> int:
    c = config(model_id)
    h = c["hidden_size"]
    family = c["model_type"]
    if family == "qwen3_moe":
        return total_params(c, attention=attention_params(c, qk_norm="per_head"),
                            moe_layer=c["num_experts"] * h + expert_params(h, c["moe_intermediate_size"], c["num_experts"]))
    if family == "mixtral":
        e = c["num_local_experts"]
        return total_params(c, attention=attention_params(c), moe_layer=e * h + expert_params(h, c["intermediate_size"], e))
    if family == "gpt_oss":
        e = c["num_local_experts"]
        router = e * h + e  # weight + bias
        return total_params(c, attention=attention_params(c, qkv_bias=True, out_bias=True, sinks=True),
                            moe_layer=router + expert_params(h, c["intermediate_size"], e, bias=True))
    if family == "glm4_moe":
        e, inter = c["n_routed_experts"], c["moe_intermediate_size"]
        shared = 3 * h * inter * c["n_shared_experts"]
        return total_params(c, attention=attention_params(c, qkv_bias=True, qk_norm="per_head" if c["use_qk_norm"] else ""),
                            moe_layer=e * h + expert_params(h, inter, e) + shared,
                            dense_layer=3 * h * c["intermediate_size"], dense_layers=c["first_k_dense_replace"])
    if family == "minimax_m2":
        e = c["num_local_experts"]
        return total_params(c, attention=attention_params(c, qk_norm="full"),
                            moe_layer=e * h + expert_params(h, c["intermediate_size"], e))
    if family == "ernie4_5_moe":
        e, inter = c["moe_num_experts"], c["moe_intermediate_size"]
        router = e * h + e  # weight + the score-correction bias (a parameter in ERNIE)
        shared = 3 * h * inter * c["moe_num_shared_experts"]
        return total_params(c, attention=attention_params(c), moe_layer=router + expert_params(h, inter, e) + shared,
                            dense_layer=3 * h * c["intermediate_size"], dense_layers=c["moe_layer_start_index"],
                            tied=c["tie_word_embeddings"])
    if family == "qwen2_moe":
        e = c["num_experts"]
        shared = 3 * h * c["shared_expert_intermediate_size"] + h  # + the (1, H) shared-expert gate
        return total_params(c, attention=attention_params(c, qkv_bias=True),
                            moe_layer=e * h + expert_params(h, c["moe_intermediate_size"], e) + shared)
    if family == "olmoe":
        e = c["num_experts"]
        return total_params(c, attention=attention_params(c, qk_norm="full"),
                            moe_layer=e * h + expert_params(h, c["intermediate_size"], e))
    if family == "mimo_v2_flash":
        heads, kv, d, vd = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"], c["v_head_dim"]
        layers, e = c["num_hidden_layers"], c["n_routed_experts"]
        full_layers = 1 + sum(1 for i in range(layers) if (i + 1) % 6 == 0)  # layer 0 and every 6th
        full = h * heads * d + h * kv * d + h * kv * vd + heads * vd * h
        sliding = h * heads * d + 2 * (h * kv * d + h * kv * vd) + heads * vd * h + heads  # 2x KV heads, sinks
        attention = full_layers * full + (layers - full_layers) * sliding
        moe_layer = e * h + expert_params(h, c["moe_intermediate_size"], e)
        return (attention + (layers - 1) * moe_layer + 3 * h * c["intermediate_size"] + 2 * h * layers + h
                + 2 * c["vocab_size"] * h)
    raise AssertionError(family)


# Public sizes (model cards / technical reports). GLM-4.5's 355B counts its MTP layer, which
# transformers does not build (~2.2B); MiniMax-M2's card says 230B.
PUBLIC = {
    "Qwen/Qwen3-235B-A22B": 235e9,
    "Qwen/Qwen3-30B-A3B": 30.5e9,
    "openai/gpt-oss-120b": 116.8e9,
    "openai/gpt-oss-20b": 20.9e9,
    "mistralai/Mixtral-8x7B-v0.1": 46.7e9,
    "zai-org/GLM-4.5": 355e9,
    "zai-org/GLM-4.5-Air": 106e9,
    "MiniMaxAI/MiniMax-M2": 230e9,
    "baidu/ERNIE-4.5-300B-A47B-PT": 300e9,
    "XiaomiMiMo/MiMo-V2-Flash": 309e9,
    "Qwen/Qwen1.5-MoE-A2.7B": 14.3e9,
    "allenai/OLMoE-1B-7B-0924": 6.9e9,
    "baidu/ERNIE-4.5-21B-A3B-PT": 21.8e9,  # the HF page's count; the card rounds it down to "21B"
}


@pytest.mark.parametrize("model_id", [*PUBLIC, "zai-org/GLM-4.6"])
def test_parameter_count(model_id: str) -> None:
    total, _ = params(model_id)
    assert total == analytic(model_id)
    if model_id in PUBLIC:
        assert total == pytest.approx(PUBLIC[model_id], rel=0.01)


def test_active_parameters() -> None:
    c = config("Qwen/Qwen3-30B-A3B")
    total, active = params("Qwen/Qwen3-30B-A3B")
    routed = c["num_hidden_layers"] * expert_params(c["hidden_size"], c["moe_intermediate_size"], c["num_experts"])
    assert active == pytest.approx(total - routed * (1 - c["num_experts_per_tok"] / c["num_experts"]), rel=1e-12)
    assert active == pytest.approx(3.3e9, rel=0.02)  # "30.5B total, 3.3B activated"
    c = config("mistralai/Mixtral-8x7B-v0.1")
    assert params("mistralai/Mixtral-8x7B-v0.1")[1] == pytest.approx(12.9e9, rel=0.01)  # "12.9B active"
    # gpt-oss expert biases are per expert too: only k of E of them are active
    c = config("openai/gpt-oss-20b")
    total, active = params("openai/gpt-oss-20b")
    routed = c["num_hidden_layers"] * expert_params(c["hidden_size"], c["intermediate_size"],
                                                    c["num_local_experts"], bias=True)
    assert active == pytest.approx(total - routed * (1 - c["num_experts_per_tok"] / c["num_local_experts"]), rel=1e-12)


def test_report_active_parameters_follow_the_gpt_oss_model_card() -> None:
    """OpenAI's gpt-oss model card: 116.83B total, 5.13B active = attention + top-4-of-128 MLP +
    the unembedding; the input embedding (a row lookup, 0.58B) is not counted as active."""
    report = tensor_cast.analyze("openai/gpt-oss-120b", device="h100-sxm", symbolic=True)
    c = config("openai/gpt-oss-120b")
    embedding = c["vocab_size"] * c["hidden_size"]
    assert report.num_parameters == pytest.approx(116.83e9, rel=1e-3)
    assert report.active_parameters == pytest.approx(5.13e9, rel=2e-3)
    _, active_with_embedding = params("openai/gpt-oss-120b")
    assert report.active_parameters == round(active_with_embedding - embedding)


# ---- end to end -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def qwen30b() -> tensor_cast.Report:
    return tensor_cast.analyze("Qwen/Qwen3-30B-A3B", device="h100-sxm", symbolic=True, num_hidden_layers=2)


def moe_gemm_flops(tokens: int, c: dict, top_k: int, inter: int) -> int:
    e, h = c["num_experts"], c["hidden_size"]
    return 2 * tokens * e * h + 2 * tokens * top_k * h * 2 * inter + 2 * tokens * top_k * inter * h


def test_one_moe_op_per_moe_layer(qwen30b: tensor_cast.Report) -> None:
    c = config("Qwen/Qwen3-30B-A3B")
    batch = 32
    report = qwen30b.evaluate(batch_size=batch, query_len=1, context_len=1024)
    moe_rows = [r for r in report.ops if r.op == "tensor_cast.moe"]
    assert [r.layer for r in moe_rows] == [0, 1]
    assert all(r.kind == "moe" and r.module == f"model.layers.{r.layer}.mlp" for r in moe_rows)
    assert not [r for r in report.ops if any(k in r.op for k in ("topk", "grouped_mm", "routed_experts", "histc"))]
    gemm = moe_gemm_flops(batch, c, c["num_experts_per_tok"], c["moe_intermediate_size"])
    assert moe_rows[0].flops == pytest.approx(gemm, rel=0.01)  # + ~0.3% vector work (scores, act, combine)
    e, k = c["num_experts"], c["num_experts_per_tok"]
    hit = e * (1 - (1 - k / e) ** batch)
    assert moe_rows[0].bytes > hit * 3 * c["hidden_size"] * c["moe_intermediate_size"] * 2


def test_per_layer_override_changes_exactly_that_layer(qwen30b: tensor_cast.Report) -> None:
    c = config("Qwen/Qwen3-30B-A3B")
    override = {1: {"num_experts_per_tok": 4, "moe_intermediate_size": 512}}
    changed = tensor_cast.analyze("Qwen/Qwen3-30B-A3B", device="h100-sxm", batch_size=16, query_len=64,
                                  num_hidden_layers=2, per_layer_config=override)
    base = qwen30b.evaluate(batch_size=16, query_len=64, context_len=0)
    tokens = 16 * 64
    for report in (base, changed):
        layer0 = [r for r in report.ops if r.layer == 0]
        moe0 = [r for r in layer0 if r.op == "tensor_cast.moe"]
        assert moe0[0].flops == pytest.approx(moe_gemm_flops(tokens, c, 8, c["moe_intermediate_size"]), rel=0.01)
    base_rows = [r for r in base.ops if r.layer == 1]
    new_rows = [r for r in changed.ops if r.layer == 1]
    assert [r.op for r in base_rows] == [r.op for r in new_rows]
    for old, new in zip(base_rows, new_rows):
        if new.op == "tensor_cast.moe":
            assert new.flops == pytest.approx(moe_gemm_flops(tokens, c, 4, 512), rel=0.01)
            assert new.flops < old.flops
        else:
            assert (new.flops, new.bytes) == (old.flops, old.bytes)
    assert [(r.flops, r.bytes) for r in base.ops if r.layer != 1] == \
        [(r.flops, r.bytes) for r in changed.ops if r.layer != 1]


def test_moe_skew_reads_fewer_expert_weights(qwen30b: tensor_cast.Report) -> None:
    skewed = tensor_cast.analyze("Qwen/Qwen3-30B-A3B", device="h100-sxm", batch_size=32, query_len=1,
                                 context_len=1024, num_hidden_layers=2, moe_skew=1.0)
    uniform = qwen30b.evaluate(batch_size=32, query_len=1, context_len=1024)
    assert skewed.total_flops == pytest.approx(uniform.total_flops)
    assert skewed.total_bytes < uniform.total_bytes
    assert skewed.context.options["moe_skew"] == 1.0


# (model id, layers to analyze, MoE layer indices among them)
FAMILIES = [
    ("mistralai/Mixtral-8x7B-v0.1", 1, [0]),
    ("openai/gpt-oss-20b", 2, [0, 1]),
    ("zai-org/GLM-4.5", 4, [3]),  # first_k_dense_replace = 3
    ("MiniMaxAI/MiniMax-M2", 1, [0]),
    ("baidu/ERNIE-4.5-21B-A3B-PT", 2, [1]),  # moe_layer_start_index = 1
    ("Qwen/Qwen1.5-MoE-A2.7B", 1, [0]),  # shared expert scaled by a sigmoid gate
    ("allenai/OLMoE-1B-7B-0924", 1, [0]),
    ("XiaomiMiMo/MiMo-V2-Flash", 2, [1]),  # layer 0: full attention + dense MLP; layer 1: sliding + MoE
]


@pytest.mark.parametrize(("model_id", "layers", "moe_layers"), FAMILIES)
def test_family_folds_every_moe_layer(model_id: str, layers: int, moe_layers: list[int]) -> None:
    report = tensor_cast.analyze(model_id, device="h100-sxm", batch_size=4, query_len=1, context_len=256,
                                 num_hidden_layers=layers, quant="none")  # 16-bit: the dense MLP's plain GEMMs
    assert [r.layer for r in report.ops if r.op == "tensor_cast.moe"] == moe_layers
    assert not [r for r in report.ops if any(k in r.op for k in ("topk", "grouped_mm", "routed_experts", "histc"))]
    for layer in set(range(layers)) - set(moe_layers):  # dense layers stay dense: gate+up GEMM, act, down
        ops = [r.op for r in report.ops if r.layer == layer and r.module.startswith(f"model.layers.{layer}.mlp")]
        assert ops == ["tensor_cast.fused_linear", "tensor_cast.act_mul", "linear"]
    assert report.total_time_s > 0


def test_mimo_sliding_layers_double_kv_heads_and_have_sinks() -> None:
    c = config("XiaomiMiMo/MiMo-V2-Flash")
    spec = tensor_cast.load_model("XiaomiMiMo/MiMo-V2-Flash", num_hidden_layers=2)
    full, sliding = spec.layers[0].attention, spec.layers[1].attention
    assert (full.kind, full.num_kv_heads, full.sinks) == ("full", c["num_key_value_heads"], False)
    assert (sliding.kind, sliding.num_kv_heads, sliding.sinks) == ("sliding", 2 * c["num_key_value_heads"], True)
    traced = trace(spec)
    attention = [n for n in traced.graph.graph.nodes if n.target is tc.attention.default]
    kv_heads = [arg(n, "key").meta["example_value"].shape[1] for n in attention]
    assert kv_heads == [c["num_key_value_heads"], 2 * c["num_key_value_heads"]]
    assert [arg(n, "window") for n in attention] == [0, c["sliding_window_size"] + 1]  # HF attends window + the query
    assert [arg(n, "sinks") is not None for n in attention] == [False, True]


def test_mimo_at_tp8_holds_one_kv_head_per_rank_on_both_kinds_of_layer() -> None:
    """tp=8 (the deployment vLLM's recipe runs): the sliding layers' 8 KV heads split one per rank (the
    module builds twice the config's count, so a rank's config holds a half: `DoubledKVHeads`), the full
    layers' 4 are replicated, one per rank; the KV cache by hand from the config."""
    c, tp, batch, context = config("XiaomiMiMo/MiMo-V2-Flash"), 8, 2, 1000
    spec = tensor_cast.load_model("XiaomiMiMo/MiMo-V2-Flash", num_hidden_layers=2)
    report = tensor_cast.analyze(spec, device="h200", batch_size=batch, query_len=1, context_len=context, tp=tp)
    graph = trace(spec, report_options(report)).graph.graph
    attention = [n for n in graph.nodes if n.target is tc.attention.default]
    assert [arg(n, "key").meta["example_value"].shape[1] for n in attention] == [1, 1]
    assert [arg(n, "query").meta["example_value"].shape[1] for n in attention] == [c["num_attention_heads"] // tp] * 2
    per_head_token = (c["head_dim"] + c["v_head_dim"]) * 2  # K and V, bf16
    tokens = context + 1
    full = tokens * batch * per_head_token  # layer 0: one (replicated) head of the 4
    sliding = (c["sliding_window_size"] + 1) * batch * per_head_token  # layer 1: one head of the 8, the window
    assert report.memory.kv_cache_bytes == full + sliding
    with pytest.raises(TypeError, match="only its product with 2"):
        tensor_cast.models.adapters.moe.DoubledKVHeads(1, 2) * 3


def test_tensor_parallel_reduces_the_moe_output_once() -> None:
    """tp=4: each rank holds every expert with I/4 of its width; one all_reduce after the MoE op."""
    c, tp = config("Qwen/Qwen3-30B-A3B"), 4
    spec = tensor_cast.load_model("Qwen/Qwen3-30B-A3B", num_hidden_layers=1)
    report = tensor_cast.analyze(spec, device="h100-sxm", batch_size=8, query_len=1, tp=tp)
    options = report_options(report)
    graph = trace(spec, options).graph.graph
    (moe,) = [n for n in graph.nodes if n.target is tc.moe.default]
    gate_up = arg(moe, "gate_up").meta["example_value"]
    assert tuple(gate_up.shape) == (c["num_experts"], 2 * c["moe_intermediate_size"] // tp, c["hidden_size"])
    assert [u.target for u in moe.users] == [tc.all_reduce.default]
    mlp_ops = [r.op for r in report.ops if r.layer == 0 and r.module.startswith("model.layers.0.mlp")]
    assert mlp_ops == ["tensor_cast.moe", "tensor_cast.all_reduce"]


def test_checkpoint_quantization_reaches_the_experts() -> None:
    """gpt-oss ships MXFP4 experts (router and attention 16-bit): the default deployment uses it."""
    report = tensor_cast.analyze("openai/gpt-oss-20b", device="h100-sxm", batch_size=1, query_len=1,
                                 num_hidden_layers=1)
    params = {p.name: p for p in report.context.params}
    mxfp4 = 0.5 + 1 / 32  # E2M1 values + one E8M0 scale per 32
    assert params["model.layers.0.mlp.experts.gate_up_proj"].bytes_per_element == pytest.approx(mxfp4)
    assert params["model.layers.0.mlp.experts.down_proj"].bytes_per_element == pytest.approx(mxfp4)
    assert params["model.layers.0.mlp.router.weight"].bytes_per_element == 2
    traced = trace(tensor_cast.load_model("openai/gpt-oss-20b", num_hidden_layers=1),
                   report_options(report))
    (moe,) = [n for n in traced.graph.graph.nodes if n.target is tc.moe.default]
    assert arg(moe, "scheme") == "mxfp4"
    unquantized = tensor_cast.analyze("openai/gpt-oss-20b", device="h100-sxm", batch_size=1, query_len=1,
                                      num_hidden_layers=1, quant="none")
    moe_bytes = next(r.bytes for r in report.ops if r.op == "tensor_cast.moe")
    assert moe_bytes < 0.3 * next(r.bytes for r in unquantized.ops if r.op == "tensor_cast.moe")


def report_options(report: tensor_cast.Report):
    from tensor_cast.analysis import ExecutionOptions

    return ExecutionOptions(deployment=report.context.deployment.trace_options())


def test_gpt_oss_sinks_and_alternating_windows() -> None:
    traced = trace(tensor_cast.load_model("openai/gpt-oss-20b", num_hidden_layers=2))
    attention = [n for n in traced.graph.graph.nodes if n.target is tc.attention.default]
    assert [arg(n, "window") for n in attention] == [config("openai/gpt-oss-20b")["sliding_window"], 0]
    assert all(arg(n, "sinks") is not None for n in attention)  # the learned sinks reach the op
    (moe,) = [n for n in traced.graph.graph.nodes if n.target is tc.moe.default][:1]
    assert [arg(moe, k) for k in ("activation", "gate", "transposed")] == ["swiglu_oai", "interleaved", True]
    assert arg(moe, "gate_up_bias") is not None and arg(moe, "down_bias") is not None  # expert biases


# ---- CLI and errors ---------------------------------------------------------------------------------
def test_cli_analyzes_a_moe_model(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["analyze", "Qwen/Qwen3-30B-A3B", "--device", "h100-sxm", "--num-hidden-layers", "1",
               "--batch-size", "8", "--context-len", "128", "--by", "kind", "--moe-skew", "0.5"])
    out = capsys.readouterr().out
    c = dict(config("Qwen/Qwen3-30B-A3B"), num_hidden_layers=1)
    one_layer = total_params(c, attention=attention_params(c, qk_norm="per_head"),
                             moe_layer=expert_params(c["hidden_size"], c["moe_intermediate_size"], c["num_experts"])
                             + c["num_experts"] * c["hidden_size"])  # experts + router
    assert rc == 0
    assert "moe" in out and f"{one_layer:,} total" in out  # embeddings + 1 layer of Qwen3-30B-A3B


def test_cli_rejects_bad_skew(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "Qwen/Qwen3-30B-A3B", "--device", "h100-sxm", "--moe-skew", "-1"]) == 2
    assert "moe_skew must be a finite number >= 0" in capsys.readouterr().err
    with pytest.raises(InvalidArgumentError, match="moe_skew"):
        tensor_cast.analyze("Qwen/Qwen3-30B-A3B", device="h100-sxm", symbolic=True, moe_skew=float("nan"))


def test_override_of_moe_field_on_dense_layer_is_an_error() -> None:
    with pytest.raises(InvalidArgumentError, match="num_experts_per_tok applies to MoE layers only"):
        tensor_cast.load_model("zai-org/GLM-4.5", per_layer_config={0: {"num_experts_per_tok": 4}})


@pytest.mark.parametrize("model_type", ["dbrx", "jetmoe", "longcat_flash"])
def test_unsupported_moe_family_names_its_model_type(tmp_path, model_type: str) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": model_type}))
    with pytest.raises(UnsupportedModelError, match=f"model_type '{model_type}' is not supported"):
        tensor_cast.load_model(str(tmp_path))


def test_moe_layer_without_experts_op_is_an_error() -> None:
    spec = tensor_cast.load_model("Qwen/Qwen3-30B-A3B", num_hidden_layers=1)
    rep = SimpleNamespace(spec=spec, kinds=(spec.layers[0],), layer_indices=((0,),), layers_path="model.layers")
    graph = torch.fx.Graph()
    graph.output(graph.placeholder("x"))
    with pytest.raises(UnsupportedModelError, match="model_type 'qwen3_moe': MoE layer 0 traced 0 experts ops"):
        check_moe_capture(rep, torch.fx.GraphModule(torch.nn.Module(), graph))


def test_moe_modules_are_checked_against_the_family_table() -> None:
    """Format detection: a MoE layer whose experts are not fused 3-D registry experts is refused."""
    rep = build_representative(tensor_cast.load_model("Qwen/Qwen3-30B-A3B", num_hidden_layers=1))
    assert experts_function(rep) is not None
    block = rep.model.get_submodule("model.layers.0.mlp")
    block.experts = torch.nn.ModuleList([torch.nn.Linear(4, 4, device="meta")])  # a per-expert module list
    with pytest.raises(UnsupportedModelError, match="does not store fused 3-D experts"):
        experts_function(rep)
    del block.gate
    with pytest.raises(UnsupportedModelError, match="MoE block model.layers.0.mlp lacks gate"):
        experts_function(rep)


def test_ernie_kv_cache_is_bf16_keys_and_values():
    """ERNIE-4.5 rotates q/k in float32 and casts back: the attention reads bf16 K/V, so the KV cache is
    layers x tokens x 2 x KV heads x head_dim x 2 bytes (it was counted with float32 keys)."""
    config = registry.lookup("baidu/ERNIE-4.5-21B-A3B-PT").config
    kv, head_dim = config["num_key_value_heads"], config.get("head_dim") or config["hidden_size"] // config[
        "num_attention_heads"]
    report = tensor_cast.analyze("baidu/ERNIE-4.5-21B-A3B-PT", device="h100", batch_size=2, query_len=1,
                                 context_len=100, num_hidden_layers=2)
    assert report.memory.kv_cache_bytes == 2 * 2 * 101 * 2 * kv * head_dim * 2
