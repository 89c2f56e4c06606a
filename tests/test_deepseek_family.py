"""DeepSeek-V3-style families (DeepSeek-V3 / R1 / V3.2, Kimi-K2, GLM-5, DeepSeek-V2 / V2-Lite): parameter counts by two
routes (the meta model vs an analytic count from the published config's named dimensions), the
active parameters, the layer structure, the latent KV cache, and clear errors.
"""

from __future__ import annotations

import json

import pytest

import tensor_cast
from tensor_cast.errors import UnsupportedModelError
from tensor_cast.memory import parameter_table
from tensor_cast.models import registry
from tensor_cast.models.build import build_representative
from tensor_cast.models.loader import load_spec

FAMILY = ["deepseek-ai/DeepSeek-V3", "deepseek-ai/DeepSeek-R1", "deepseek-ai/DeepSeek-V3.2",
          "deepseek-ai/DeepSeek-V3.2-Exp", "moonshotai/Kimi-K2-Instruct", "zai-org/GLM-5",
          "deepseek-ai/DeepSeek-V2", "deepseek-ai/DeepSeek-V2-Lite"]


def analytic_params(c: dict) -> tuple[int, int]:
    """(total, active per token) from named dimensions."""
    hidden, heads, layers = c["hidden_size"], c["num_attention_heads"], c["num_hidden_layers"]
    rope, nope, v_dim, q_rank, kv_rank = (c["qk_rope_head_dim"], c["qk_nope_head_dim"], c["v_head_dim"],
                                          c["q_lora_rank"], c["kv_lora_rank"])
    query = hidden * heads * (nope + rope) if q_rank is None else hidden * q_rank + q_rank + q_rank * heads * (nope + rope)
    attention = query + hidden * (kv_rank + rope) + kv_rank + kv_rank * heads * (nope + v_dim) + heads * v_dim * hidden
    if "index_topk" in c:  # DeepSeek sparse attention's indexer: wq_b, wk, k_norm (LayerNorm), weights_proj
        dim, index_heads = c["index_head_dim"], c["index_n_heads"]
        attention += q_rank * index_heads * dim + hidden * dim + 2 * dim + hidden * index_heads
    norms = 2 * hidden
    dense_mlp = 3 * hidden * c["intermediate_size"]
    expert = 3 * hidden * c["moe_intermediate_size"]
    routed, shared, router = c["n_routed_experts"] * expert, c["n_shared_experts"] * expert, c["n_routed_experts"] * hidden
    dense_layers = c["first_k_dense_replace"]
    moe_layers = layers - dense_layers
    embeddings = 2 * c["vocab_size"] * hidden + hidden  # embedding, lm_head, final norm
    total = (layers * (attention + norms) + dense_layers * dense_mlp + moe_layers * (routed + shared + router)
             + embeddings)
    active = total - moe_layers * routed * (1 - c["num_experts_per_tok"] / c["n_routed_experts"])
    return total, round(active)


def counted(model_id: str) -> tuple[int, float]:
    table = parameter_table(build_representative(load_spec(model_id)))
    return sum(p.total for p in table), sum(p.total * p.active_fraction for p in table)


@pytest.mark.parametrize("model_id", FAMILY)
def test_parameters_match_the_analytic_count(model_id):
    total, active = counted(model_id)
    expected_total, expected_active = analytic_params(registry.lookup(model_id).config)
    assert total == expected_total
    assert active == pytest.approx(expected_active, abs=1)


@pytest.mark.parametrize("model_id, public_total, public_active", [
    ("deepseek-ai/DeepSeek-V3", 671e9, 37e9),  # DeepSeek-V3 technical report
    ("moonshotai/Kimi-K2-Instruct", 1.03e12, 32e9),  # model card: 1T total (1.03T), 32B activated
    ("zai-org/GLM-5", 744e9, 40e9),
    ("deepseek-ai/DeepSeek-V2", 236e9, 21e9),  # model card: 236B total, 21B activated
])
def test_public_sizes(model_id, public_total, public_active):
    total, active = counted(model_id)
    assert total == pytest.approx(public_total, rel=0.01)
    assert active == pytest.approx(public_active, rel=0.05)
    if model_id == "deepseek-ai/DeepSeek-V3":
        assert active == pytest.approx(public_active, rel=0.02)


def test_kimi_k2_loads_through_the_deepseek_v3_path():
    assert registry.lookup("moonshotai/Kimi-K2-Instruct").config["model_type"] == "kimi_k2"
    spec = load_spec("moonshotai/Kimi-K2-Instruct")
    assert spec.model_type == "deepseek_v3"
    kinds = spec.layer_kinds()
    assert [len(ix) for _, ix in kinds] == [1, 60]  # first_k_dense_replace = 1
    assert kinds[1][0].mlp.moe.num_experts == 384 and kinds[1][0].attention.num_heads == 64


def test_deepseek_v3_layer_kinds_and_routing():
    spec = load_spec("deepseek-ai/DeepSeek-V3")
    (dense, dense_ix), (moe, moe_ix) = spec.layer_kinds()
    assert dense_ix == [0, 1, 2] and moe_ix == list(range(3, 61))
    assert dense.mlp.kind == "dense" and dense.mlp.intermediate_size == 18432
    m = moe.mlp.moe
    assert (m.num_experts, m.top_k, m.num_shared_experts, m.router, m.num_groups, m.top_k_groups) == \
        (256, 8, 1, "sigmoid", 8, 4)
    mla = moe.attention.mla
    assert (mla.kv_lora_rank, mla.qk_rope_head_dim, mla.q_lora_rank) == (512, 64, 1536)
    assert spec.mtp_layers == 1


@pytest.fixture(scope="module")
def deepseek_v3_attention():
    """All 61 layers with the MoE sub-blocks skipped: the attention side of DeepSeek-V3 at full
    depth (two layer kinds, so one trace of ~2 layers)."""
    skip = {i: {"skip_mlp": True} for i in range(3, 61)}
    return tensor_cast.analyze("deepseek-ai/DeepSeek-V3", device="h100", symbolic=True, per_layer_config=skip)


def test_one_mla_attention_per_layer(deepseek_v3_attention):
    point = deepseek_v3_attention.evaluate(batch_size=8, query_len=1, context_len=1024)
    mla = [r for r in point.ops if r.op == "tensor_cast.mla_attention"]
    assert len(mla) == 61 and sorted(r.layer for r in mla) == list(range(61))
    assert not [r for r in point.ops if r.op == "tensor_cast.attention"]
    assert not [r for r in point.ops if "kv_b_proj" in r.module]  # the up-projection lives inside the op


def test_latent_kv_cache(deepseek_v3_attention):
    """61 layers x (kv_lora_rank 512 + rope 64) x 2 bytes per token in bf16, not expanded K/V."""
    batch, context = 32, 4096
    point = deepseek_v3_attention.evaluate(batch_size=batch, query_len=1, context_len=context)
    per_token = 61 * (512 + 64) * 2
    assert per_token == 70_272
    assert point.memory.kv_cache_bytes == batch * (context + 1) * per_token


def test_deepseek_v2_lite_layers_latent_cache_and_complex_rope():
    """DeepSeek-V2-Lite (27 layers, no query LoRA): MLA in every layer over the latent cache (512 + 64 values per
    token and layer), its complex-table RoPE fused to one rope op per layer, MoE from layer 1 on; TP2 halves the
    weights of the heads (the latent cache is replicated: one latent per token)."""
    c = registry.lookup("deepseek-ai/DeepSeek-V2-Lite").config
    layers = c["num_hidden_layers"]
    point = tensor_cast.analyze("deepseek-ai/DeepSeek-V2-Lite", device="h100", batch_size=4, query_len=1,
                                context_len=1000)
    by_op = {op: sorted(r.layer for r in point.ops if r.op == op)
             for op in ("tensor_cast.mla_attention", "tensor_cast.rope", "tensor_cast.moe", "tensor_cast.attention")}
    assert by_op == {"tensor_cast.mla_attention": list(range(layers)), "tensor_cast.rope": list(range(layers)),
                     "tensor_cast.moe": list(range(c["first_k_dense_replace"], layers)), "tensor_cast.attention": []}
    assert point.memory.kv_cache_bytes == 4 * 1001 * layers * (c["kv_lora_rank"] + c["qk_rope_head_dim"]) * 2
    assert point.num_parameters == pytest.approx(15.7e9, rel=0.01)  # model card: 15.7B total, 2.4B activated
    assert point.active_parameters == pytest.approx(2.4e9, rel=0.05)  # without the input embedding (a lookup)


def test_mla_form_option_changes_decode_cost(deepseek_v3_attention):
    skip = {i: {"skip_mlp": True} for i in range(3, 61)}
    kw = dict(device="h100", batch_size=8, query_len=1, context_len=8192, per_layer_config=skip)
    auto = tensor_cast.analyze("deepseek-ai/DeepSeek-V3", **kw)
    expanded = tensor_cast.analyze("deepseek-ai/DeepSeek-V3", mla_form="expanded", **kw)
    absorbed = tensor_cast.analyze("deepseek-ai/DeepSeek-V3", mla_form="absorbed", **kw)
    assert auto.total_flops == absorbed.total_flops < expanded.total_flops
    assert auto.context.options["mla_form"] == "auto" and expanded.context.options["mla_form"] == "expanded"


def test_deepseek_v32_runs_the_indexer_each_layer():
    report = tensor_cast.analyze("deepseek-ai/DeepSeek-V3.2", device="h100", batch_size=4, query_len=1,
                                 context_len=65_536, num_hidden_layers=3)
    ops = [r.op for r in report.ops]
    assert ops.count("tensor_cast.dsa_indexer") == 3 and ops.count("tensor_cast.mla_attention") == 3
    config = registry.lookup("deepseek-ai/DeepSeek-V3.2").config
    topk, heads, dim = config["index_topk"], config["index_n_heads"], config["index_head_dim"]
    indexer = next(r for r in report.ops if r.op == "tensor_cast.dsa_indexer")
    pairs = 4 * (65_536 + 1)  # the indexer scores every cached key
    assert indexer.flops == 2 * heads * dim * pairs + (3 * heads + 1) * pairs
    attention = next(r for r in report.ops if r.op == "tensor_cast.mla_attention")
    core = 2 * 4 * 128 * topk * (2 * 512 + 64)  # ... the attention only the top-k of them
    absorb = 2 * 4 * 128 * 128 * 512 * 2
    assert attention.flops == core + absorb + 4 * 4 * 128 * topk


def test_glm5_shared_indexer_layers_are_refused(tmp_path):
    config = dict(registry.lookup("zai-org/GLM-5").config, index_topk_freq=2)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedModelError, match="'glm_moe_dsa'.*reuse another layer's sparse-attention top-k"):
        tensor_cast.analyze(str(tmp_path), device="h100", batch_size=1, query_len=1)


def test_unsupported_mla_family_names_its_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "longcat_flash", "hidden_size": 64}))
    with pytest.raises(UnsupportedModelError, match="model_type 'longcat_flash' is not supported"):
        tensor_cast.analyze(str(tmp_path), device="h100", batch_size=1, query_len=1)


def test_fp8_kv_cache_halves_the_latent_and_indexer_caches():
    kw = dict(device="h100", batch_size=8, query_len=1, context_len=4096, num_hidden_layers=1)
    bf16 = tensor_cast.analyze("deepseek-ai/DeepSeek-V3.2", **kw)
    fp8 = tensor_cast.analyze("deepseek-ai/DeepSeek-V3.2", kv_cache_dtype="fp8", **kw)
    config = registry.lookup("deepseek-ai/DeepSeek-V3.2").config
    per_token = config["kv_lora_rank"] + config["qk_rope_head_dim"] + config["index_head_dim"]  # latent, rope key, index key
    assert bf16.memory.kv_cache_bytes == 8 * 4097 * per_token * 2
    assert fp8.memory.kv_cache_bytes == 8 * 4097 * per_token * 1
