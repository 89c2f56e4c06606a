"""Deployment validation and resolution: clear errors, rank layout, pipeline split, defaults."""

from __future__ import annotations

import dataclasses

import pytest

import tensor_cast
from tensor_cast.deployment import Deployment, resolve
from tensor_cast.deployment.config import pipeline_stages
from tensor_cast.deployment.sharding import rank_spec
from tensor_cast.errors import DeploymentError, InvalidArgumentError
from tensor_cast.models.spec import MLPSpec, MoESpec


@pytest.fixture(scope="module")
def llama70b():
    return tensor_cast.load_model("meta-llama/Llama-3.1-70B")


@pytest.fixture(scope="module")
def llama8b_spec():
    return tensor_cast.load_model("meta-llama/Llama-3.1-8B")


def moe_spec(base, experts=64, expert_inter=1408):
    """A MoE variant of a dense spec: enough for validation (nothing is built)."""
    mlp = MLPSpec(kind="moe", moe=MoESpec(num_experts=experts, top_k=6, expert_intermediate_size=expert_inter))
    return dataclasses.replace(base, layers=tuple(dataclasses.replace(layer, mlp=mlp) for layer in base.layers))


def test_tp_must_divide_heads_and_lists_valid_values(llama70b, h100_cluster):
    heads, inter = 64, 28672  # Llama-3.1-70B config
    valid = [d for d in range(1, heads + 1) if heads % d == 0 and inter % d == 0]
    expected = f"tp=3 does not divide num_attention_heads={heads}; valid tp: {', '.join(map(str, valid))}"
    with pytest.raises(DeploymentError) as info:
        resolve(Deployment(tp=3), llama70b, h100_cluster)
    assert str(info.value) == expected


def test_kv_heads_replicated_when_tp_exceeds_them(llama8b_spec, h100_cluster):
    # Llama-3.1-8B: 32 query heads, 8 KV heads; tp=16 gives 2 query heads and 1 (replicated) KV head per rank
    d = resolve(Deployment(tp=16, nodes=2), llama8b_spec, h100_cluster)
    layer = rank_spec(llama8b_spec, d.trace_options()).layers[0]
    assert (layer.attention.num_heads, layer.attention.num_kv_heads) == (32 // 16, 1)
    assert layer.mlp.intermediate_size == 14336 // 16
    with pytest.raises(DeploymentError, match=r"tp=12 does not divide num_attention_heads=32"):
        resolve(Deployment(tp=12, nodes=2, gpus_per_node=6), llama8b_spec, h100_cluster)


def test_ep_errors(llama8b_spec, h100_cluster):
    with pytest.raises(DeploymentError, match=r"ep=2 needs MoE layers; .* \(accepted ep: 1\)"):
        resolve(Deployment(tp=2, ep=2), llama8b_spec, h100_cluster)
    moe = moe_spec(llama8b_spec, experts=60)
    with pytest.raises(DeploymentError, match=r"ep=8 does not divide num_experts=60; valid ep: 1, 2, 4$"):
        resolve(Deployment(dp=8, ep=8), moe, h100_cluster)
    with pytest.raises(DeploymentError, match=r"ep=3 does not divide the tp·dp = 8 GPUs of a pipeline stage .*"
                                              r"valid ep: 1, 2, 4$"):
        resolve(Deployment(tp=8, ep=3), moe, h100_cluster)
    # ep alone (one GPU per stage): the error says how to spread the experts over ep GPUs
    with pytest.raises(DeploymentError, match=r"valid ep: 1 \(for 4 GPUs: tp=4 ep=4, or dp=4 ep=4 for attention DP\)$"):
        resolve(Deployment(ep=4), moe, h100_cluster)
    with pytest.raises(DeploymentError, match=r"moe_tp=2 x ep=8 must equal the tp·dp = 8 GPUs the experts span; "
                                              r"accepted moe_tp: 1$"):
        resolve(Deployment(tp=8, ep=8, moe_tp=2), moe_spec(llama8b_spec, experts=64), h100_cluster)
    with pytest.raises(DeploymentError, match=r"moe_tp=2 x ep=1 must equal the tp·dp = 8 GPUs the experts span \(or "
                                              r"moe_tp = tp with ep 1: experts per DP replica\); accepted moe_tp: 8 or 4$"):
        resolve(Deployment(tp=4, dp=2, moe_tp=2), moe_spec(llama8b_spec, experts=64), h100_cluster)
    with pytest.raises(DeploymentError, match=r"moe_tp=2 needs MoE layers; .* \(accepted moe_tp: tp = 1\)"):
        resolve(Deployment(dp=2, moe_tp=2), llama8b_spec, h100_cluster)
    # TensorRT-LLM tp_size 8, moe_tp 2 x moe_ep 4: E/4 experts per rank, each with I/2 columns
    d = resolve(Deployment(tp=8, ep=4), moe_spec(llama8b_spec, experts=64, expert_inter=1408), h100_cluster)
    assert (d.moe_tp, d.trace_options().ep_dp, d.trace_options().moe_tp) == (2, 1, 2)
    # attention DP4 with MoE TP4 (enable_attention_dp, ep_size 1): the experts span the replicas
    d = resolve(Deployment(dp=4, moe_tp=4), moe_spec(llama8b_spec, experts=64, expert_inter=1408), h100_cluster)
    assert (d.moe_tp, d.ep, d.trace_options().ep_dp, d.ep_nodes) == (4, 1, 4, 1)
    assert "attention DP4 x TP1 + MoE TP4 (all-gather/reduce-scatter)" in d.describe()
    with pytest.raises(DeploymentError, match=r"moe_tp=8 does not divide moe_intermediate_size=1404; valid moe_tp: "
                                              r"1, 2, 4 \(raise ep"):
        resolve(Deployment(dp=8, moe_tp=8), moe_spec(llama8b_spec, experts=64, expert_inter=1404), h100_cluster)
    d = resolve(Deployment(dp=8, ep=8), moe_spec(llama8b_spec, experts=64), h100_cluster)
    assert (d.moe_tp, d.trace_options().ep_dp) == (1, 8)  # experts whole, split over the 8 ranks (test_expert_parallel.py)
    d = resolve(Deployment(tp=4), moe_spec(llama8b_spec, experts=64, expert_inter=1408), h100_cluster)
    assert d.moe_tp == 4  # without ep, each expert is split over the tp ranks
    with pytest.raises(DeploymentError, match=r"moe_tp=8 does not divide moe_intermediate_size=1404; valid moe_tp: "
                                              r"1, 2, 4 \(raise ep"):
        resolve(Deployment(tp=8), moe_spec(llama8b_spec, experts=64, expert_inter=1404), h100_cluster)
    assert resolve(Deployment(tp=8, ep=2), moe_spec(llama8b_spec, experts=64, expert_inter=1404),
                   h100_cluster).moe_tp == 4  # ep 2 brings moe_tp down to 8 / 2 = 4, which divides 1404


def test_world_size_must_match_nodes(llama8b_spec, h100_cluster):
    with pytest.raises(DeploymentError, match=r"world size tp·dp·pp = 8·1·1 = 8 but nodes × gpus_per_node = 2 × 8 = 16"):
        resolve(Deployment(tp=8, nodes=2, gpus_per_node=8), llama8b_spec, h100_cluster)
    with pytest.raises(DeploymentError, match=r"pp=40 exceeds the 32 layers .* valid pp: 1..32"):
        resolve(Deployment(pp=40), llama8b_spec, h100_cluster)


@pytest.mark.parametrize("kwargs, message", [
    ({"tp": 0}, "tp must be a positive integer, got 0"),
    ({"dp": "2"}, "dp must be a positive integer, got '2'"),
    ({"quant": "fp9"}, "unknown quant 'fp9'; accepted: none, fp8, fp8_block"),
    ({"kv_cache_dtype": "fp6"}, "unknown kv_cache_dtype 'fp6'; accepted: bf16"),
    ({"memory_utilization": 1.5}, r"memory_utilization must be a fraction in \(0, 1\], got 1.5"),
])
def test_bad_values_name_value_and_accepted(kwargs, message):
    with pytest.raises((DeploymentError, InvalidArgumentError), match=message):
        Deployment(**kwargs)


def test_analyze_rejects_unknown_keyword():
    with pytest.raises(InvalidArgumentError, match=r"unknown option\(s\) \['tensor_parallel'\]; accepted deployment options: tp, ep"):
        tensor_cast.analyze("meta-llama/Llama-3.1-8B", device="h100-sxm", batch_size=1, query_len=1, tensor_parallel=2)


def test_device_without_node_size_needs_one(llama8b_spec):
    bare = dataclasses.replace(tensor_cast.load_device("h100-sxm"), interconnect=None)
    with pytest.raises(DeploymentError, match="has no \\[interconnect\\] gpus_per_node; pass gpus_per_node"):
        resolve(Deployment(tp=2), llama8b_spec, bare)


def test_rank_layout_spans(llama8b_spec, h100_cluster):
    # TP innermost: a TP8 group fills one 8-GPU node; a PP2 hand-off crosses to the next node
    d = resolve(Deployment(tp=8, pp=2), llama8b_spec, h100_cluster)
    assert (d.world_size, d.nodes, d.tp_nodes, d.pp_nodes) == (16, 2, 1, 2)
    d = resolve(Deployment(tp=16), llama8b_spec, h100_cluster)
    assert (d.nodes, d.tp_nodes) == (2, 2)
    d = resolve(Deployment(tp=2, pp=2, gpus_per_node=4), llama8b_spec, h100_cluster)
    assert (d.nodes, d.tp_nodes, d.pp_nodes) == (1, 1, 1)


def test_pipeline_split_follows_vllm():
    # vLLM get_pp_indices: equal stages, the remainder added to the stages before the last one
    def expected(layers, pp):
        sizes = [layers // pp] * pp
        for i in range(layers % pp):
            sizes[pp - 2 - i] += 1
        return sizes

    for layers, pp in ((80, 3), (61, 4), (126, 8), (32, 2)):
        stages = pipeline_stages(layers, pp)
        assert [len(s) for s in stages] == expected(layers, pp)
        assert [i for s in stages for i in s] == list(range(layers))


def test_checkpoint_quantization_is_the_default(llama8b_spec, h100_cluster):
    deepseek = dataclasses.replace(llama8b_spec, quantization={
        "quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128]})
    d = resolve(Deployment(), deepseek, h100_cluster)
    assert (d.quant, d.quant_source) == ("fp8_block", "checkpoint")
    assert resolve(Deployment(quant="none"), deepseek, h100_cluster).quant == "none"
    # fp8 asked for on that block-FP8 checkpoint is served as its blocks (engines read weight_block_size),
    # and says so; on a 16-bit checkpoint it stays per-tensor, and another format re-quantizes
    d = resolve(Deployment(quant="fp8"), deepseek, h100_cluster)
    assert (d.quant, d.quant_source) == ("fp8_block", "checkpoint")
    assert any("quant=fp8 on a checkpoint stored as fp8_block: served as fp8_block" in n for n in d.notes)
    assert resolve(Deployment(quant="fp8"), llama8b_spec, h100_cluster).quant == "fp8"
    assert (resolve(Deployment(quant="nvfp4"), deepseek, h100_cluster).quant_source) == "user"
    gpt_oss = dataclasses.replace(llama8b_spec, quantization={
        "quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn", "lm_head"]})
    d = resolve(Deployment(), gpt_oss, h100_cluster)
    assert d.quant == "mxfp4" and d.not_converted == ("model.layers.*.self_attn", "lm_head")
    # the same MXFP4 weights run with MXFP8 activations keep the checkpoint's 16-bit attention;
    # another weight format quantizes every linear
    d = resolve(Deployment(quant="w4a8_mxfp4_mxfp8"), gpt_oss, h100_cluster)
    assert (d.quant, d.quant_source) == ("w4a8_mxfp4_mxfp8", "user")
    assert d.not_converted == ("model.layers.*.self_attn", "lm_head")
    marlin = resolve(Deployment(quant="mxfp4_marlin"), gpt_oss, h100_cluster)  # same weights, Marlin's kernel
    assert marlin.not_converted == ("model.layers.*.self_attn", "lm_head")
    assert resolve(Deployment(quant="nvfp4"), gpt_oss, h100_cluster).not_converted == ()
    odd = dataclasses.replace(llama8b_spec, quantization={"quant_method": "bitsandbytes"})
    d = resolve(Deployment(), odd, h100_cluster)
    assert d.quant == "none" and "(quant_method='bitsandbytes') is not modelled" in d.notes[0]


def test_tensorrt_llm_serves_mxfp4_checkpoints_with_mxfp8_activations_on_blackwell(llama8b_spec):
    # TensorRT-LLM's ModelConfig.get_mxfp4_quant_algo: W4A8_MXFP4_MXFP8 on SM 100+, W4A16_MXFP4 on Hopper;
    # vLLM keeps 16-bit activations unless told; an explicit quant is the user's (OVERRIDE_QUANT_ALGO)
    gpt_oss = dataclasses.replace(llama8b_spec, quantization={
        "quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn", "lm_head"]})
    for device in ("b200", "gb300", "rtx-pro-6000"):
        d = resolve(Deployment(), gpt_oss, tensor_cast.load_device(device, "trtllm"))
        assert (d.quant, d.quant_source) == ("w4a8_mxfp4_mxfp8", "checkpoint")
        assert d.not_converted == ("model.layers.*.self_attn", "lm_head")  # the same weights: 16-bit attention
        assert any("serves the checkpoint's mxfp4 as w4a8_mxfp4_mxfp8" in n for n in d.notes)
    for device, engine, quant in (("h100-sxm", "trtllm", None), ("b200", "vllm", None), ("b200", "sglang", None),
                                  ("b200", "trtllm", "mxfp4")):
        d = resolve(Deployment(quant=quant), gpt_oss, tensor_cast.load_device(device, engine))
        assert d.quant == "mxfp4" and not any("serves the checkpoint" in n for n in d.notes)
    # a checkpoint in another scheme is served as stored by every engine
    deepseek = dataclasses.replace(llama8b_spec, quantization={
        "quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128]})
    assert resolve(Deployment(), deepseek, tensor_cast.load_device("b200", "trtllm")).quant == "fp8_block"


def test_tp_refused_for_families_it_cannot_shard():
    with pytest.raises(DeploymentError, match=r"tp=2 is not supported for model_type 'olmoe'.*accepted tp: 1"):
        tensor_cast.analyze("allenai/OLMoE-1B-7B-0924", device="h100", batch_size=1, query_len=1, tp=2)
