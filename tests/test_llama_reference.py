"""The numbers the core issue pins for Llama-3.1-8B, each derived here from named dimensions."""

from __future__ import annotations

import pytest


def dims(config):
    heads, kv, hidden = config["num_attention_heads"], config["num_key_value_heads"], config["hidden_size"]
    head_dim = hidden // heads
    return dict(hidden=hidden, heads=heads, kv=kv, head_dim=head_dim, inter=config["intermediate_size"],
                layers=config["num_hidden_layers"], vocab=config["vocab_size"])


def linear_params_per_layer(d):
    attention = d["hidden"] * d["heads"] * d["head_dim"] + 2 * d["hidden"] * d["kv"] * d["head_dim"] \
        + d["heads"] * d["head_dim"] * d["hidden"]
    mlp = 3 * d["hidden"] * d["inter"]
    return attention + mlp


def test_prefill_flops(llama8b, llama8b_config):
    d, batch, seq = dims(llama8b_config), 1, 2048
    tokens = batch * seq
    gemm = 2 * tokens * linear_params_per_layer(d) * d["layers"]
    # causal: query i attends i + 1 keys -> S(S+1)/2 pairs, QK^T and PV each 2*head_dim FLOPs per pair
    attention = 2 * 2 * d["head_dim"] * batch * d["heads"] * (seq * (seq + 1) // 2) * d["layers"]
    lm_head = 2 * batch * d["hidden"] * d["vocab"]  # last token only
    report = llama8b.evaluate(batch_size=batch, query_len=seq, context_len=0)
    tensor_core = report.flops_by_precision["bf16"]
    assert tensor_core == pytest.approx(gemm + attention + lm_head, rel=1e-9)
    assert report.total_flops == pytest.approx(29.7e12, rel=0.005)


def test_decode_flops(llama8b, llama8b_config):
    d, batch, context = dims(llama8b_config), 64, 4096
    gemm = 2 * batch * linear_params_per_layer(d) * d["layers"]
    attention = 2 * 2 * d["head_dim"] * batch * d["heads"] * (context + 1) * d["layers"]  # attends C + 1 keys
    lm_head = 2 * batch * d["hidden"] * d["vocab"]
    report = llama8b.evaluate(batch_size=batch, query_len=1, context_len=context)
    assert report.flops_by_precision["bf16"] == pytest.approx(gemm + attention + lm_head, rel=1e-9)
    assert report.total_flops == pytest.approx(1.098e12, rel=0.002)


def test_weights_and_kv_cache(llama8b, llama8b_config):
    d = dims(llama8b_config)
    params = d["layers"] * (linear_params_per_layer(d) + 2 * d["hidden"]) + 2 * d["vocab"] * d["hidden"] + d["hidden"]
    report = llama8b.evaluate(batch_size=64, query_len=1, context_len=4096)
    assert report.num_parameters == params
    assert report.memory.weights_bytes == 2 * params
    assert report.memory.weights_bytes == pytest.approx(16.06e9, rel=1e-3)
    # K and V, per KV head, per layer, bf16, for every token held after the step (C + S)
    kv_bytes = 2 * d["kv"] * d["head_dim"] * d["layers"] * 2 * 64 * (4096 + 1)
    assert report.memory.kv_cache_bytes == kv_bytes
    assert report.memory.kv_cache_bytes == pytest.approx(34.36e9, rel=1e-3)


def test_decode_reads_each_kv_head_once_per_step(llama8b, llama8b_config):
    """GQA trap: KV bytes scale with KV heads (8), not query heads (32); the cache is read once."""
    d, batch, context = dims(llama8b_config), 64, 4096
    report = llama8b.evaluate(batch_size=batch, query_len=1, context_len=context)
    attention = [r for r in report.ops if r.kind == "attention"]
    assert len(attention) == d["layers"]
    kv_token = 2 * d["kv"] * d["head_dim"] * 2  # K + V bytes per token per layer
    cache_read = batch * (context + 1) * kv_token
    append = batch * kv_token  # the new token's K/V read and written by the cache update
    q_and_out = 2 * batch * d["heads"] * d["head_dim"] * 2
    assert attention[0].bytes == cache_read + 2 * append + q_and_out


def test_lm_head_only_last_token(llama8b, llama8b_config):
    d = dims(llama8b_config)
    report = llama8b.evaluate(batch_size=3, query_len=100, context_len=0)
    head = [r for r in report.ops if r.module == "lm_head"]
    assert len(head) == 1
    assert head[0].flops == 2 * 3 * d["hidden"] * d["vocab"]
