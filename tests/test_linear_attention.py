"""Linear attention (gated DeltaNet): the op, the swap of transformers' module, the cost rule from
named dimensions, and Qwen3-Next's hybrid layer structure and state memory.

Dimensions are Qwen3-Next-80B-A3B's (published config): Hk = 16 key heads, Hv = 32 value heads,
dk = dv = 128, conv kernel K = 4; full attention: 16 heads, 2 KV heads, head_dim 256.
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import Qwen3NextConfig
from transformers.models.qwen3_next.modeling_qwen3_next import Qwen3NextGatedDeltaNet

import tensor_cast
from tensor_cast.models import registry
from tensor_cast.models.module_swaps import apply_module_swaps

tc = torch.ops.tensor_cast
HK, HV, DK, DV, K = 16, 32, 128, 128, 4
CHANNELS = 2 * HK * DK + HV * DV


def test_gated_delta_net_opcheck():
    torch.manual_seed(0)
    args = (torch.randn(2, 5, 2 * 2 * 4 + 4 * 4), torch.randn(2, 5, 4), torch.randn(2, 5, 4), torch.randn(32, 1, 3),
            torch.randn(4), torch.randn(4), 2, 4, 4, 4, 1)
    torch.library.opcheck(tc.gated_delta_net.default, args)


def test_swapped_module_computes_what_transformers_computes():
    """The swap (projections + one op + fused gated norm) against transformers' own forward (its
    torch chunk loop), on CPU with random weights."""
    torch.manual_seed(0)
    config = Qwen3NextConfig(hidden_size=32, linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=8,
                             linear_value_head_dim=8, linear_conv_kernel_dim=4, num_hidden_layers=1,
                             layer_types=["linear_attention"])
    module = Qwen3NextGatedDeltaNet(config, 0).eval()
    hidden = torch.randn(2, 7, 32)
    with torch.no_grad():
        expected = module(hidden)
        holder = torch.nn.ModuleList([module])
        assert apply_module_swaps(holder) == 1
        assert type(module).__name__ == "TensorCastQwen3NextGatedDeltaNet"
        got = module(hidden)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def gdn_cost(batch, seq, decode_query_len=1):
    meta = dict(device="meta", dtype=torch.bfloat16)
    args = (torch.empty(batch, seq, CHANNELS, **meta), torch.empty(batch, seq, HV, **meta),
            torch.empty(batch, seq, HV, **meta), torch.empty(CHANNELS, 1, K, **meta), torch.empty(HV, **meta),
            torch.empty(HV, **meta), HK, DK, HV, DV, decode_query_len)
    return tensor_cast.op_cost(tc.gated_delta_net.default, *args, device="h100").counts


def conv_and_gating_flops(tokens):
    return tokens * CHANNELS * (2 * K + 4) + 8 * tokens * HV  # depthwise conv + SiLU; g and beta


def test_decode_is_the_recurrent_update():
    batch = 8
    counts = gdn_cost(batch, 1)
    per_token_head = 7 * DK * DV + 6 * DK  # decay, Sᵀk, k·δᵀ, Sᵀq; q/k L2 norms
    assert counts.flops == {"vector": conv_and_gating_flops(batch) + batch * HV * per_token_head}
    state = batch * HV * DK * DV * 2  # bf16
    conv_state = batch * (K - 1) * CHANNELS * 2
    assert counts.state_bytes == state + conv_state
    assert counts.bytes_read >= state + conv_state and counts.bytes_written >= state + conv_state


def test_prefill_is_the_chunked_form():
    batch, seq, chunk = 2, 128, 64
    chunks = batch * (seq // chunk)
    per_chunk_head = (2 * chunk**2 * DK  # K·Kᵀ
                      + 2 * chunk**3 / 3  # triangular solve
                      + 2 * chunk**2 * (DK + DV)  # W, U
                      + 2 * chunk**2 * (DK + DV)  # intra-chunk Q·Kᵀ and ·V
                      + 6 * chunk * DK * DV)  # W·S, Q·S, Kᵀ·V
    counts = gdn_cost(batch, seq)
    assert counts.flops["bf16"] == pytest.approx(chunks * HV * per_chunk_head)
    assert counts.flops["vector"] == conv_and_gating_flops(batch * seq) + batch * seq * HV * 6 * DK
    # a partial last chunk costs a whole chunk
    assert gdn_cost(batch, seq + 1).flops["bf16"] == pytest.approx(batch * 3 * HV * per_chunk_head)


def test_mtp_drafts_keep_the_recurrent_kernel():
    assert gdn_cost(4, 3, decode_query_len=3).flops.keys() == {"vector"}
    assert "bf16" in gdn_cost(4, 3, decode_query_len=1).flops


@pytest.fixture(scope="module")
def qwen3_next_dense(tmp_path_factory):
    """Qwen3-Next-80B-A3B at full depth with dense MLPs (mlp_only_layers = every layer): the
    attention side is the published one, the MoE side is not under test here."""
    config = dict(registry.lookup("Qwen/Qwen3-Next-80B-A3B-Instruct").config)
    config["mlp_only_layers"] = list(range(config["num_hidden_layers"]))
    folder = tmp_path_factory.mktemp("qwen3_next_dense")
    (folder / "config.json").write_text(json.dumps(config))
    return tensor_cast.analyze(str(folder), device="h100", symbolic=True), config


def test_qwen3_next_has_36_linear_and_12_full_attention_layers(qwen3_next_dense):
    report, config = qwen3_next_dense
    point = report.evaluate(batch_size=4, query_len=1, context_len=8192)
    ops = [r.op for r in point.ops]
    assert ops.count("tensor_cast.gated_delta_net") == 36
    assert ops.count("tensor_cast.attention") == 12
    linear_layers = {r.layer for r in point.ops if r.op == "tensor_cast.gated_delta_net"}
    assert linear_layers == {i for i in range(48) if (i + 1) % config["full_attention_interval"] != 0}


def test_qwen3_next_state_memory_replaces_the_kv_cache(qwen3_next_dense):
    report, config = qwen3_next_dense
    batch, context = 4, 8192
    point = report.evaluate(batch_size=batch, query_len=1, context_len=context)
    recurrent = 36 * batch * (HV * DK * DV + (K - 1) * CHANNELS) * 2  # fixed size, whatever the context
    kv = 12 * batch * (context + 1) * 2 * config["num_key_value_heads"] * config["head_dim"] * 2
    assert point.memory.kv_cache_bytes == recurrent + kv
    longer = report.evaluate(batch_size=batch, query_len=1, context_len=4 * context)
    gdn_bytes = [r.bytes for r in point.ops if r.op == "tensor_cast.gated_delta_net"]
    assert gdn_bytes == [r.bytes for r in longer.ops if r.op == "tensor_cast.gated_delta_net"]


def test_sliding_window_caps_the_cache():
    """Mistral-7B-v0.1 slides a 4096-token window over every layer: past it, the cache stops growing."""
    config = registry.lookup("mistralai/Mistral-7B-v0.1").config
    window, kv, head_dim = config["sliding_window"], config["num_key_value_heads"], 128
    report = tensor_cast.analyze("mistralai/Mistral-7B-v0.1", device="h100", batch_size=2, query_len=1,
                                 context_len=32_000, num_hidden_layers=1)
    assert report.memory.kv_cache_bytes == 2 * window * kv * head_dim * 2 * 2


def test_qwen3_5_published_multimodal_layout_loads_its_text_decoder(tmp_path):
    """Qwen3.5 ships `Qwen3_5MoeForConditionalGeneration` with the decoder under `text_config`."""
    from tensor_cast.models.loader import load_spec

    text = {k: v for k, v in registry.lookup("Qwen/Qwen3.5-35B-A3B").config.items() if k != "architectures"}
    config = {"architectures": ["Qwen3_5MoeForConditionalGeneration"], "model_type": "qwen3_5_moe",
              "text_config": text, "vision_config": {"depth": 2, "hidden_size": 64}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    spec = load_spec(str(tmp_path))
    assert spec.model_type == "qwen3_5_moe_text" and spec.mtp_layers == text["mtp_num_hidden_layers"]
    kinds = {layer.describe(): len(ix) for layer, ix in spec.layer_kinds()}
    assert kinds == {"linear + moe(256x512, top8)": 30, "full + moe(256x512, top8)": 10}
    linear = spec.layers[0].attention.linear
    assert (linear.num_key_heads, linear.num_value_heads, linear.key_head_dim) == (16, 32, 128)


def test_qwen3_5_dense_every_mlp_is_dense(tmp_path):
    """Qwen3.5's dense models (`qwen3_5_text`, multimodal `qwen3_5`, e.g. Qwen3.5-27B): the hybrid
    3 x DeltaNet + 1 x full attention stack with a dense MLP in every layer; parameters by hand."""
    h, inter, layers, vocab = 64, 96, 8, 128
    hk, hv, dk, dv, conv = 2, 4, 16, 16, 4
    heads, kv, hd = 4, 2, 16
    text = {"model_type": "qwen3_5_text", "hidden_size": h, "intermediate_size": inter, "num_hidden_layers": layers,
            "num_attention_heads": heads, "num_key_value_heads": kv, "head_dim": hd, "vocab_size": vocab,
            "linear_num_key_heads": hk, "linear_num_value_heads": hv, "linear_key_head_dim": dk,
            "linear_value_head_dim": dv, "linear_conv_kernel_dim": conv, "tie_word_embeddings": False,
            "layer_types": (["linear_attention"] * 3 + ["full_attention"]) * 2, "mtp_num_hidden_layers": 1}
    config = {"architectures": ["Qwen3_5ForConditionalGeneration"], "model_type": "qwen3_5", "text_config": text,
              "vision_config": {"depth": 2, "hidden_size": 64}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    from tensor_cast.models.loader import load_spec

    report = tensor_cast.analyze(str(tmp_path), device="h100", batch_size=2, query_len=1, context_len=100)
    spec = load_spec(str(tmp_path))
    assert spec.model_type == "qwen3_5_text" and spec.mtp_layers == 1
    kinds = {layer.describe(): len(ix) for layer, ix in spec.layer_kinds()}
    assert kinds == {f"linear + dense({inter})": 6, f"full + dense({inter})": 2}
    # by hand (transformers' Qwen3.5 modules): the gated full attention projects q and its gate (2 x heads x hd)
    mlp = 3 * h * inter
    norms = 2 * h
    full = h * 2 * heads * hd + 2 * h * kv * hd + heads * hd * h + 2 * hd  # q+gate, k, v, o, q/k norm
    channels = 2 * hk * dk + hv * dv
    linear = h * (channels + hv * dv) + 2 * h * hv + channels * conv + 2 * hv + dv + hv * dv * h
    expected = vocab * h * 2 + h + 6 * (linear + mlp + norms) + 2 * (full + mlp + norms)
    assert report.num_parameters == expected
    assert sum(r.op == "tensor_cast.gated_delta_net" for r in report.ops) == 6
