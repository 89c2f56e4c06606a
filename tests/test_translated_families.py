"""Configs translated onto a built-in architecture (models/translations.py): Ling 2.0 (`bailing_moe`,
remote code on the hub) built as GLM-4.5's modules. Parameters, active parameters and the KV cache
by hand from the config's named dimensions (a second route: nothing here reads glm4_moe); the
translation's fields; the settings it refuses, in one line and with exit status 2 from the CLI."""

from __future__ import annotations

import json

import pytest

import tensor_cast
from tensor_cast.cli import main
from tensor_cast.errors import UnsupportedModelError
from tensor_cast.models import registry
from tensor_cast.models.translations import translate

LING = ("inclusionAI/Ling-1T", "inclusionAI/Ling-mini-2.0")


def ling_parameters(c: dict) -> tuple[int, int]:
    """(total, active per token) of a Ling 2.0 config, by hand: embeddings and an untied LM head; per layer
    GQA attention (q, k, v, o), per-head q/k RMSNorm, two RMSNorms; the first k layers a SwiGLU MLP, the
    rest a router (E x hidden), E routed SwiGLU experts and the shared expert(s); the final norm. Active:
    all but the input embedding (a lookup) and the E - k routed experts a token skips per MoE layer."""
    h, v, layers = c["hidden_size"], c["vocab_size"], c["num_hidden_layers"]
    heads, kv, d = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    experts, top_k, width = c["num_experts"], c["num_experts_per_tok"], c["moe_intermediate_size"]
    dense_layers = c["first_k_dense_replace"]
    attention = h * heads * d + 2 * h * kv * d + heads * d * h + 2 * d + 2 * h
    expert = 3 * h * width
    moe = experts * h + experts * expert + c["num_shared_experts"] * expert
    total = (2 * v * h + layers * attention + dense_layers * 3 * h * c["intermediate_size"]
             + (layers - dense_layers) * moe + h)
    active = total - v * h - (layers - dense_layers) * (experts - top_k) * expert
    return total, active


@pytest.mark.parametrize("model_id", LING)
def test_ling_parameters_active_parameters_and_kv_cache_by_hand(model_id):
    c = registry.lookup(model_id).config
    report = tensor_cast.analyze(model_id, device="h100", batch_size=2, query_len=1, context_len=100)
    total, active = ling_parameters(c)
    assert report.num_parameters == total
    assert report.active_parameters == active
    assert report.num_parameters == pytest.approx(registry.lookup(model_id).public_parameters, rel=0.01)
    kv = 2 * 101 * c["num_hidden_layers"] * 2 * c["num_key_value_heads"] * c["head_dim"] * 2  # K and V, bf16
    assert report.memory.kv_cache_bytes == kv
    assert report.context.architecture == "BailingMoeV2ForCausalLM"


def test_ling_mini_public_active_count():
    """The model card's 789M activated parameters without embeddings: the active count less the LM head."""
    c = registry.lookup("inclusionAI/Ling-mini-2.0").config
    report = tensor_cast.analyze("inclusionAI/Ling-mini-2.0", device="h100", batch_size=1, query_len=1)
    assert report.active_parameters - c["vocab_size"] * c["hidden_size"] == pytest.approx(789e6, rel=0.01)


def test_ling_one_moe_op_per_moe_layer_and_qk_norm():
    c = registry.lookup("inclusionAI/Ling-mini-2.0").config
    point = tensor_cast.analyze("inclusionAI/Ling-mini-2.0", device="h100", batch_size=4, query_len=1, context_len=64)
    layers = c["num_hidden_layers"]
    moe = sorted(r.layer for r in point.ops if r.op == "tensor_cast.moe")
    assert moe == list(range(c["first_k_dense_replace"], layers))
    assert sorted(r.layer for r in point.ops if r.op == "tensor_cast.attention") == list(range(layers))


def test_translation_renames_and_derives_fields():
    c = registry.lookup("inclusionAI/Ling-1T").config
    out = translate(c, "test")
    assert out["model_type"] == "glm4_moe" and "auto_map" not in out
    assert (out["n_routed_experts"], out["n_shared_experts"], out["attention_bias"]) == (256, 1, False)
    assert "num_experts" not in out
    assert out["partial_rotary_factor"] == c["rotary_dim"] / c["head_dim"] == 0.5
    assert translate({"model_type": "llama", "hidden_size": 8}, "test") == {"model_type": "llama", "hidden_size": 8}


@pytest.mark.parametrize("change, needle", [
    ({"architectures": ["BailingMoeForCausalLM"]}, "architecture 'BailingMoeForCausalLM' is not supported"),
    ({"use_bias": True}, "use_bias=True is not supported"),
    ({"score_function": "softmax"}, "score_function='softmax' is not supported"),
])
def test_translation_refuses_what_the_target_cannot_express(change, needle, tmp_path, capsys):
    config = {**registry.lookup("inclusionAI/Ling-mini-2.0").config, **change}
    with pytest.raises(UnsupportedModelError, match=needle):
        translate(config, "test")
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert main(["analyze", str(tmp_path), "--device", "h100"]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_translated_config_missing_a_field_names_it_as_written(tmp_path, capsys):
    config = {k: v for k, v in registry.lookup("inclusionAI/Ling-mini-2.0").config.items() if k != "num_experts"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert main(["analyze", str(tmp_path), "--device", "h100"]) == 2
    err = capsys.readouterr().err.strip()
    assert "model_type 'bailing_moe' lacks required field(s) num_experts (required:" in err
    assert "n_routed_experts" not in err and len(err.splitlines()) == 1


def test_ling_runs_without_remote_code(tmp_path):
    """The written config names remote code (auto_map); the translation builds it without it."""
    config = registry.lookup("inclusionAI/Ling-1T").config
    assert "auto_map" in config
    (tmp_path / "config.json").write_text(json.dumps(config))
    report = tensor_cast.analyze(str(tmp_path), device="h100", batch_size=1, query_len=1, num_hidden_layers=6)
    assert report.num_parameters > 0


def test_hub_config_needing_remote_code_is_translated_from_its_json(monkeypatch):
    """A hub id outside the registry whose config needs remote code: its config.json is read as data and
    translated (no hub here: AutoConfig's refusal and the file are stood in for)."""
    from transformers import AutoConfig

    from tensor_cast.models import loader, locate

    def refuse(*args, **kwargs):
        raise ValueError("requires you to execute the configuration file in that repo; set trust_remote_code=True")

    mini = registry.lookup("inclusionAI/Ling-mini-2.0").config
    monkeypatch.setattr(locate, "is_offline", lambda: False)
    monkeypatch.setattr(AutoConfig, "from_pretrained", refuse)
    monkeypatch.setattr(loader, "_hub_config_json", lambda model: dict(mini, num_hidden_layers=8))
    spec = loader.load_spec("someone/Ling-mini-2.0-finetune")
    assert spec.model_type == "glm4_moe" and spec.architecture == "BailingMoeV2ForCausalLM" and len(spec.layers) == 8
    monkeypatch.setattr(loader, "_hub_config_json", lambda model: None)  # not fetched: the remote-code refusal stands
    with pytest.raises(UnsupportedModelError, match="needs remote code"):
        loader.load_spec("someone/Ling-mini-2.0-finetune")
