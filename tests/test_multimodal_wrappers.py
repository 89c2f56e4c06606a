"""Multimodal wrappers analyzed as their text decoder (models/adapters/multimodal.py): Kimi-K2.5
(`kimi_k25`: MoonViT + a DeepSeek-V3 decoder) and Mistral 3 (`mistral3`: a Mistral or a Ministral 3
decoder, chosen by the text config's model_type). Parameters against transformers' own text model
built on meta from the same text config (a second route: the LM head included, the vision tower
and projector left out); the KV cache by hand; a text decoder the wrapper does not hold, refused."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

import tensor_cast
from tensor_cast.cli import main

LAYERS, BATCH, CONTEXT = 4, 2, 100


def wrapper_config(model_type: str, text_type: str | None = None, **text_fields):
    config = AutoConfig.for_model(model_type)
    text = config.text_config.to_dict() if text_type is None else AutoConfig.for_model(text_type).to_dict()
    text.update(num_hidden_layers=LAYERS, **text_fields)
    data = config.to_dict()
    data["text_config"] = text
    return data


def text_reference_parameters(text: dict) -> int:
    text_config = AutoConfig.for_model(text["model_type"], **{k: v for k, v in text.items() if k != "model_type"})
    with torch.device("meta"):
        return sum(p.numel() for p in AutoModelForCausalLM.from_config(text_config).parameters())


@pytest.mark.parametrize("model_type, text_type, fields", [
    ("kimi_k25", None, {"n_routed_experts": 16, "num_experts_per_tok": 4, "first_k_dense_replace": 1}),
    ("mistral3", None, {}),
    ("mistral3", "ministral3", {}),
])
def test_wrapper_is_costed_as_its_text_decoder(model_type, text_type, fields, tmp_path):
    data = wrapper_config(model_type, text_type, **fields)
    (tmp_path / "config.json").write_text(json.dumps(data))
    report = tensor_cast.analyze(str(tmp_path), device="h100", batch_size=BATCH, query_len=1, context_len=CONTEXT)
    text = data["text_config"]
    assert report.num_parameters == text_reference_parameters(text)
    assert report.context.architecture.endswith("(text decoder only)")
    if model_type == "kimi_k25":  # MLA: one latent (kv_lora_rank) and one RoPE key (qk_rope_head_dim) per token and layer
        per_token = text["kv_lora_rank"] + text["qk_rope_head_dim"]
    else:
        head_dim = text.get("head_dim") or text["hidden_size"] // text["num_attention_heads"]
        per_token = 2 * text["num_key_value_heads"] * head_dim
    window = text.get("sliding_window") or CONTEXT + 1
    assert report.memory.kv_cache_bytes == BATCH * min(CONTEXT + 1, window) * LAYERS * per_token * 2  # bf16


def test_wrapper_refuses_a_text_decoder_it_does_not_hold(tmp_path, capsys):
    data = wrapper_config("mistral3", "llama")
    (tmp_path / "config.json").write_text(json.dumps(data))
    assert main(["analyze", str(tmp_path), "--device", "h100"]) == 2
    err = capsys.readouterr().err.strip()
    assert "text_config model_type 'llama' is not supported inside mistral3; supported: ministral3, mistral" in err
    assert len(err.splitlines()) == 1


# ---- Qwen3-VL: a text decoder transformers builds only inside its wrapper ------------------------
def qwen3_vl_config(model_type: str, *, tie: bool, **text_fields):
    config = AutoConfig.for_model(model_type, tie_word_embeddings=tie)
    data = config.to_dict()
    data["text_config"].update(num_hidden_layers=LAYERS, tie_word_embeddings=not tie, **text_fields)  # the wrapper decides
    data["vision_config"].update(depth=2, out_hidden_size=data["text_config"]["hidden_size"])
    return data


def wrapper_text_parameters(data: dict) -> int:
    """transformers' own wrapper on meta, less its vision tower: the text decoder and its LM head."""
    from transformers import AutoModelForImageTextToText

    config = AutoConfig.for_model(data["model_type"], **{k: v for k, v in data.items() if k != "model_type"})
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    visual = {id(p) for p in model.model.visual.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in visual)


@pytest.mark.parametrize("model_type, tie, fields", [
    ("qwen3_vl", False, {}),
    ("qwen3_vl", True, {}),
    ("qwen3_vl_moe", False, {"num_experts": 16, "num_experts_per_tok": 4, "decoder_sparse_step": 1, "mlp_only_layers": []}),
])
def test_qwen3_vl_is_costed_as_its_text_decoder(model_type, tie, fields, tmp_path):
    data = qwen3_vl_config(model_type, tie=tie, **fields)
    (tmp_path / "config.json").write_text(json.dumps(data))
    report = tensor_cast.analyze(str(tmp_path), device="h100", batch_size=BATCH, query_len=1, context_len=CONTEXT)
    assert report.num_parameters == wrapper_text_parameters(data)
    assert report.context.architecture.endswith("(text decoder only)")
    text = data["text_config"]
    per_token = 2 * text["num_key_value_heads"] * text["head_dim"]
    assert report.memory.kv_cache_bytes == BATCH * (CONTEXT + 1) * LAYERS * per_token * 2  # bf16


def test_qwen3_vl_30b_a3b_costs_what_qwen3_30b_a3b_costs():
    """Qwen3-VL-30B-A3B's text decoder has Qwen3-30B-A3B's dimensions (both published configs): a
    text step costs the same, op by op (M-RoPE's sections and the larger rope_theta change no cost)."""
    kwargs = dict(device="h100", batch_size=8, query_len=1, context_len=4096, num_hidden_layers=2)
    vl = tensor_cast.analyze("Qwen/Qwen3-VL-30B-A3B-Instruct", **kwargs)
    text = tensor_cast.analyze("Qwen/Qwen3-30B-A3B", **kwargs)
    assert [(r.op, r.flops, r.bytes) for r in vl.ops] == [(r.op, r.flops, r.bytes) for r in text.ops]
    assert vl.total_time_s == pytest.approx(text.total_time_s, rel=1e-12)
    assert vl.memory.kv_cache_bytes == text.memory.kv_cache_bytes
