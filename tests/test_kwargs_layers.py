"""The swapped decoder layers of Nemotron and StableLM (models/kwargs_layers.py): transformers' layers drop the
forward's kwargs before attention, so the swap re-states their forward passing them on. On CPU with random
weights, a tiny model's logits are the same before and after the swap (eager attention, no tensor_cast op),
for Nemotron's pre-norm layer and both of StableLM's residual orders (with its per-head q/k LayerNorms);
StableLM-2-12B's layout (parallel residual, q/k LayerNorms) counts transformers' parameters."""

from __future__ import annotations

import json

import pytest
import torch
from swap_reference import randomize
from transformers import AutoConfig, AutoModelForCausalLM

import tensor_cast
from tensor_cast.models.module_swaps import apply_module_swaps

TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=96,
            vocab_size=101)


@pytest.mark.parametrize("model_type, fields", [
    ("nemotron", {}),
    ("stablelm", {"use_parallel_residual": False, "qk_layernorm": False}),
    ("stablelm", {"use_parallel_residual": True, "qk_layernorm": True}),
])
def test_swapped_layers_keep_the_logits(model_type, fields):
    torch.manual_seed(0)
    config = AutoConfig.for_model(model_type, **TINY, **fields)
    config._attn_implementation = "eager"
    model = AutoModelForCausalLM.from_config(config).eval()
    randomize(model, scale=0.1)
    ids = torch.randint(0, TINY["vocab_size"], (2, 7))
    with torch.no_grad():
        expected = model(ids).logits
        assert apply_module_swaps(model) == TINY["num_hidden_layers"]
        got = model(ids).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_stablelm_parallel_residual_layout_parameters_and_kv(tmp_path):
    # StableLM-2-12B's kind: parallel residual, per-head q/k LayerNorms (shapes cut to 2 layers)
    fields = dict(hidden_size=512, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
                  intermediate_size=1376, vocab_size=1000, use_parallel_residual=True, qk_layernorm=True)
    config = AutoConfig.for_model("stablelm", **fields)
    data = config.to_dict()
    data["architectures"] = ["StableLmForCausalLM"]
    (tmp_path / "config.json").write_text(json.dumps(data))
    with torch.device("meta"):
        reference = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
    report = tensor_cast.analyze(str(tmp_path), device="h100", batch_size=3, query_len=1, context_len=50)
    assert report.num_parameters == reference
    head_dim = 512 // 8
    assert report.memory.kv_cache_bytes == 2 * 3 * 51 * 2 * 2 * head_dim * 2  # layers x batch x tokens x K,V x kv x hd x bf16
    assert sum(r.op == "tensor_cast.attention" for r in report.ops) == 2
