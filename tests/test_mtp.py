"""MTP draft passes: their weights (from named dimensions), their cost in the step, the time per
output token for an acceptance rate, and clear errors for bad MTP arguments.

Costed tests use a 2-layer DeepSeek-V3 whose layers (and so its MTP block) are dense; the MoE MTP
block of the real DeepSeek-V3 is checked by parameter count (building is enough for that).
"""

from __future__ import annotations

import json

import pytest

import tensor_cast
from tensor_cast.cli import main
from tensor_cast.errors import InvalidArgumentError, UnsupportedModelError
from tensor_cast.memory import parameter_table
from tensor_cast.models import registry
from tensor_cast.models.build import build_representative
from tensor_cast.models.loader import load_spec

V3 = registry.lookup("deepseek-ai/DeepSeek-V3").config


def mla_layer_params(c: dict) -> int:
    hidden, heads = c["hidden_size"], c["num_attention_heads"]
    q_head = c["qk_nope_head_dim"] + c["qk_rope_head_dim"]
    return (hidden * c["q_lora_rank"] + c["q_lora_rank"] + c["q_lora_rank"] * heads * q_head  # q_a, norm, q_b
            + hidden * (c["kv_lora_rank"] + c["qk_rope_head_dim"]) + c["kv_lora_rank"]  # kv_a, norm
            + c["kv_lora_rank"] * heads * (c["qk_nope_head_dim"] + c["v_head_dim"])  # kv_b
            + heads * c["v_head_dim"] * hidden  # o
            + 2 * hidden)  # input / post-attention norms


def moe_params(c: dict) -> int:
    hidden, experts = c["hidden_size"], c["n_routed_experts"]
    expert = 3 * hidden * c["moe_intermediate_size"]
    return experts * expert + c["n_shared_experts"] * expert + experts * hidden  # routed, shared, router


def mtp_block_params(c: dict, layer: int) -> int:
    hidden = c["hidden_size"]
    return 3 * hidden + 2 * hidden * hidden + layer  # enorm, hnorm, final norm; eh_proj; the decoder layer


def counted(spec, **kw):
    table = parameter_table(build_representative(spec, **kw))
    return sum(p.total for p in table), sum(p.total * p.active_fraction for p in table)


def test_deepseek_v3_mtp_block_weights():
    spec = load_spec("deepseek-ai/DeepSeek-V3")
    base, base_active = counted(spec)
    with_mtp, with_mtp_active = counted(spec, mtp=1)
    block = mtp_block_params(V3, mla_layer_params(V3) + moe_params(V3))
    assert with_mtp - base == block
    assert block == pytest.approx(11.6e9, rel=0.01)  # besides the embedding and head it shares
    assert with_mtp == pytest.approx(685e9, rel=0.01)  # the published checkpoint size (671B + MTP)
    routed = V3["n_routed_experts"] * 3 * V3["hidden_size"] * V3["moe_intermediate_size"]
    inactive = routed * (1 - V3["num_experts_per_tok"] / V3["n_routed_experts"])
    assert with_mtp_active - base_active == pytest.approx(block - inactive)
    # more drafts reuse the one shipped block: no new weights
    assert counted(spec, mtp=3)[0] == with_mtp


@pytest.fixture(scope="module")
def dense_deepseek(tmp_path_factory):
    config = dict(V3, num_hidden_layers=2, first_k_dense_replace=2)
    config.pop("quantization_config")  # bf16 weights: 2 bytes per parameter
    folder = tmp_path_factory.mktemp("dense_deepseek")
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder), config


def dense_layer_params(c: dict) -> int:
    return mla_layer_params(c) + 3 * c["hidden_size"] * c["intermediate_size"]


def analyze(model, **kw):
    return tensor_cast.analyze(model, device="h100", batch_size=16, query_len=1, context_len=4096, **kw)


def test_mtp_adds_its_block_to_the_step(dense_deepseek):
    model, config = dense_deepseek
    plain, drafted = analyze(model), analyze(model, mtp=1)
    assert drafted.num_parameters - plain.num_parameters == mtp_block_params(config, dense_layer_params(config))
    assert drafted.memory.weights_bytes - plain.memory.weights_bytes == 2 * (drafted.num_parameters - plain.num_parameters)
    mtp_rows = [r for r in drafted.ops if r.module.startswith("mtp.")]
    assert {r.op for r in mtp_rows} >= {"tensor_cast.mla_attention", "linear"}
    assert sum(r.op == "tensor_cast.mla_attention" for r in drafted.ops) == 3  # 2 layers + 1 draft pass
    # the decode step verifies 1 + 1 tokens; the draft's logits are one more lm_head call
    assert drafted.point["query_len"] == 2 and any("1 + 1 tokens" in n for n in drafted.context.notes)
    assert sum(r.module == "lm_head" for r in drafted.ops) == 2
    assert drafted.total_time_s > plain.total_time_s


def test_mtp_block_kept_unquantized(dense_deepseek):
    """NVIDIA's NVFP4 DeepSeek-R1 checkpoints keep the MTP block BF16 (exclude_modules "model.layers.61*"):
    keep_unquantized=("mtp.*",) with per-tensor fp8 elsewhere (1 byte) adds one byte per matrix parameter of
    the block (eh_proj 2h x h and the decoder layer's projections, from named dimensions; its norms are
    vectors, never quantized), and draft passes that read them cost more."""
    model, c = dense_deepseek
    fp8 = analyze(model, mtp=1, quant="fp8")
    kept = analyze(model, mtp=1, quant="fp8", keep_unquantized=("mtp.*",))
    h = c["hidden_size"]
    norms = 2 * h + c["q_lora_rank"] + c["kv_lora_rank"]  # input / post-attention, q_a and kv_a norms
    matrices = 2 * h * h + dense_layer_params(c) - norms
    assert kept.memory.weights_bytes - fp8.memory.weights_bytes == pytest.approx(matrices, rel=1e-9)
    mtp_time = [sum(r.time_s for r in rep.ops if r.module.startswith("mtp.")) for rep in (fp8, kept)]
    assert mtp_time[1] > mtp_time[0]
    stack = [sum(r.time_s for r in rep.ops if r.module.startswith("model.layers.")) for rep in (fp8, kept)]
    assert stack[1] == pytest.approx(stack[0], rel=1e-12)  # the main model untouched
    assert "mtp.* unquantized" in kept.summary()


def test_mtp_block_partial_sums_are_reduced_under_tp(dense_deepseek):
    """Under TP the MTP layer's attention and MLP are split like the stack's, so their partial sums
    are all-reduced at each sub-block's output as in every stack layer (vLLM's MTP layer is the
    model's own decoder layer)."""
    model, _ = dense_deepseek
    report = analyze(model, mtp=1, tp=2)
    reduces = [r for r in report.ops if r.op == "tensor_cast.all_reduce"]
    assert sorted(r.module for r in reduces if r.module.startswith("mtp.")) == ["mtp.0.layers.0.mlp",
                                                                                  "mtp.0.layers.0.self_attn"]
    # the embedding, 2 x 2 in the stack, the draft's embedding lookup, 2 in the MTP layer
    assert len(reduces) == 1 + 2 * 2 + 1 + 2


def test_mtp_layer_cache_is_in_the_cache_by_kind(dense_deepseek):
    """The MTP block's MLA layer holds a latent cache like every other layer; the per-kind split
    covers it (2 stack layers + 1 MTP layer), so the kinds add up to the KV cache."""
    model, c = dense_deepseek
    report = analyze(model, mtp=1)  # decode with one draft: the step verifies 1 + 1 tokens
    per_token = (c["kv_lora_rank"] + c["qk_rope_head_dim"]) * 2  # latent + rope key, bf16
    expected = (2 + 1) * 16 * (4096 + 2) * per_token
    assert report.kv_cache_by_kind == {"mla": expected}
    assert report.memory.kv_cache_bytes == expected


def test_more_drafts_run_more_passes(dense_deepseek):
    model, _ = dense_deepseek
    one, three = analyze(model, mtp=1), analyze(model, mtp=3)
    assert sum(r.op == "tensor_cast.mla_attention" for r in three.ops) == 2 + 3
    assert three.num_parameters == one.num_parameters  # one shipped block, reused
    assert three.point["query_len"] == 4


@pytest.mark.parametrize("acceptance", [0.5, 0.85, 1.0])
def test_time_per_output_token_follows_acceptance(dense_deepseek, acceptance):
    model, _ = dense_deepseek
    drafts = 2
    report = analyze(model, mtp=drafts, mtp_acceptance=acceptance)
    tokens = sum(acceptance**k for k in range(drafts + 1))  # the verified token + each accepted draft prefix
    assert report.accepted_tokens_per_step == pytest.approx(tokens)
    assert report.time_per_output_token_s == pytest.approx(report.total_time_s / tokens)
    assert report.output_tokens_per_s == pytest.approx(16 * tokens / report.total_time_s)
    assert "per output token" in report.summary()
    assert report.to_dict()["speculative"]["acceptance"] == acceptance


def test_default_acceptance_falls_at_later_drafts(dense_deepseek):
    """Default: 0.85 for the first draft, each later one 0.856 x the one before (speculative.py: DeepSeek's
    85-90 % for its one MTP draft; Nebius' 3.20 tokens for the original module at 7 drafts)."""
    model, _ = dense_deepseek
    a1, a2, a3 = 0.85, 0.85 * 0.856, 0.85 * 0.856**2
    report = analyze(model, mtp=3)
    assert report.accepted_tokens_per_step == pytest.approx(1 + a1 + a1 * a2 + a1 * a2 * a3)
    assert report.to_dict()["speculative"]["rates"] == pytest.approx([a1, a2, a3])
    assert "acceptance by draft 0.85, 0.728, 0.623 (default)" in report.summary()
    assert analyze(model, mtp=1).accepted_tokens_per_step == pytest.approx(1.85)  # one draft: the report's 85 %
    # the schedule reproduces the public 7-draft measurement it was set from (3.20 tokens per step)
    from tensor_cast.speculative import SpeculativeDecoding

    assert SpeculativeDecoding(7).tokens_per_step == pytest.approx(3.20, abs=0.005)
    # one rate per draft position, as given
    given = analyze(model, mtp=2, mtp_acceptance=(0.9, 0.5))
    assert given.accepted_tokens_per_step == pytest.approx(1 + 0.9 + 0.9 * 0.5)
    with pytest.raises(InvalidArgumentError, match=r"gives 3 rate\(s\) for 2 draft\(s\)"):
        analyze(model, mtp=2, mtp_acceptance=(0.9, 0.5, 0.4))


def test_symbolic_report_with_mtp_evaluates_like_a_point(dense_deepseek):
    model, _ = dense_deepseek
    symbolic = tensor_cast.analyze(model, device="h100", symbolic=True, mtp=1)
    point = analyze(model, mtp=1)
    assert symbolic.evaluate(16, 2, 4096).total_time_s == pytest.approx(point.total_time_s)


def test_without_mtp_a_decode_step_yields_one_token(dense_deepseek):
    report = analyze(dense_deepseek[0])
    assert report.speculative is None and report.accepted_tokens_per_step == 1
    assert report.time_per_output_token_s == report.total_time_s


@pytest.mark.parametrize("kwargs, message", [
    (dict(mtp=-1), "mtp must be an integer >= 0 .* got -1"),
    (dict(mtp=1.5), "mtp must be an integer >= 0 .* got 1.5"),
    (dict(mtp=True), "mtp must be an integer >= 0 .* got True"),
    (dict(mtp=1, mtp_acceptance=0), r"mtp_acceptance must be a number in \(0, 1\], got 0"),
    (dict(mtp=1, mtp_acceptance=1.2), r"mtp_acceptance must be a number in \(0, 1\], got 1.2"),
    (dict(mtp_acceptance=0.8), "mtp_acceptance=0.8 needs MTP drafts: pass mtp >= 1"),
    (dict(mla_form="fast"), "mla_form must be one of auto, absorbed, expanded, got 'fast'"),
])
def test_bad_mtp_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message):
        tensor_cast.analyze("meta-llama/Llama-3.2-1B", device="h100", batch_size=1, query_len=1, **kwargs)


def test_mtp_on_a_model_without_mtp_layers():
    with pytest.raises(UnsupportedModelError, match=r"meta-llama/Llama-3.2-1B \(model_type 'llama'\) ships no MTP"):
        tensor_cast.analyze("meta-llama/Llama-3.2-1B", device="h100", batch_size=1, query_len=1, mtp=1)


def test_cli_mtp_flags(dense_deepseek, capsys):
    assert main(["analyze", dense_deepseek[0], "--device", "h100", "--batch-size", "8", "--context-len", "2048",
                 "--mtp", "1", "--mtp-acceptance", "0.9", "--mla-form", "absorbed", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "1 draft token(s)/step, acceptance 0.9: 1.900 tokens/step/sequence" in out
    assert "per output token" in out
    assert main(["analyze", dense_deepseek[0], "--device", "h100", "--batch-size", "8", "--mtp", "2",
                 "--mtp-acceptance", "0.9,0.5", "--top", "1"]) == 0
    assert "2 draft token(s)/step, acceptance by draft 0.9, 0.5: 2.350 tokens/step/sequence" in capsys.readouterr().out
    assert main(["analyze", dense_deepseek[0], "--device", "h100", "--mtp", "-2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "argument --mtp: -2 is below 0 (accepted: integers >= 0)" in err[0]
