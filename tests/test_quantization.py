"""Quantization: ops, the quantize_linears / quantize_kv_cache passes, costs and memory."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

import tensor_cast
from tensor_cast.deployment.quantization import SCHEMES
from tensor_cast.ops.quant import dequantize
from tensor_cast.passes.node_facts import facts
from tensor_cast.passes.quantize_linears import quantize_linears

tc = torch.ops.tensor_cast
FMTS = [("fp8", 0, True), ("fp8", 128, True), ("int8", -1, True), ("int8", 0, False), ("nvfp4", 16, True),
        ("mxfp8", 32, True)]


@pytest.mark.parametrize("fmt, group, dynamic", FMTS)
def test_quantize_opcheck_and_roundtrip(fmt, group, dynamic):
    x = torch.randn(4, 256, dtype=torch.bfloat16)
    torch.library.opcheck(tc.quantize.default, (x, fmt, group, dynamic))
    q, scale = tc.quantize(x, fmt, group, dynamic)
    back = dequantize(q, scale, fmt, group)
    # relative step of each format near its max: fp8 e4m3 2^-3, int8 1/127, fp4 e2m1 up to 0.5 (6 vs 4)
    # (mxfp8: its power-of-two scale leaves the group's max at 224-448, the same relative step)
    tolerance = {"fp8": 0.07, "int8": 0.01, "nvfp4": 0.35, "mxfp8": 0.07}[fmt]
    assert (back - x.float()).abs().max() <= tolerance * x.float().abs().max()
    if fmt == "nvfp4":
        assert q.shape == (4, 128) and q.dtype == torch.uint8  # two E2M1 codes per byte
    if fmt == "mxfp8":  # one E8M0 scale per 32: a power of two, rounded up so no element passes 448
        assert scale.shape == (4, 8) and scale.dtype == torch.float8_e8m0fnu
        assert torch.equal(scale.float(), torch.exp2(torch.log2(scale.float()).round()))
        assert q.float().abs().max() <= 448


def test_quant_linear_opcheck():
    x = torch.randn(3, 64, dtype=torch.bfloat16)
    q, scale = tc.quantize(x, "fp8", 0, True)
    weights = [torch.randn(32, 64, dtype=torch.bfloat16), torch.randn(16, 64, dtype=torch.bfloat16)]
    # SchemaCheckMode cannot compare float8 inputs on CPU ("mul" has no Float8 kernel): skip that one
    no_schema = ("test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")
    torch.library.opcheck(tc.quant_linear.default, (q, scale, weights, [None, None], "fp8", torch.bfloat16),
                          test_utils=no_schema)
    torch.library.opcheck(tc.quant_linear.default, (x, None, weights, [None, None], "w4a16", torch.bfloat16))


class MLP(nn.Module):
    def __init__(self, hidden=64, inter=96):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, inter, bias=False)
        self.up_proj = nn.Linear(hidden, inter, bias=False)
        self.down_proj = nn.Linear(inter, hidden, bias=False)

    def forward(self, x):
        return self.down_proj(torch.nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class Tiny(nn.Module):
    """An MLP, a MoE-style router named `gate` and an `lm_head` (the last two stay 16-bit)."""

    def __init__(self, hidden=64, vocab=80):
        super().__init__()
        self.mlp, self.gate, self.lm_head = MLP(hidden), nn.Linear(hidden, 8, bias=False), nn.Linear(hidden, vocab)

    def forward(self, x):
        h = x + self.mlp(x)
        return self.lm_head(h), self.gate(h)


def _count(gm, target):
    return sum(1 for n in gm.graph.nodes if n.target == target)


def _output_meta(gm):
    out = next(n for n in gm.graph.nodes if n.op == "output")
    return [(tuple(a.meta["example_value"].shape), a.meta["example_value"].dtype) for a in out.args[0]]


def test_quantize_linears_pass(capture_module):
    torch.manual_seed(0)
    module = Tiny().to(torch.bfloat16)
    x = torch.randn(2, 5, 64, dtype=torch.bfloat16)
    gm, inputs = capture_module(module, x)
    expected = gm(*inputs)
    before = _output_meta(gm)
    assert _count(gm, torch._C._nn.linear) == 5
    gm = quantize_linears(gm, scheme="fp8")
    # gate_proj, up_proj, down_proj quantized; the router `gate` and lm_head left alone (near-misses)
    assert _count(gm, tc.quant_linear.default) == 3
    assert _count(gm, torch._C._nn.linear) == 2
    # gate_proj and up_proj read the same x: one quantize for both, one for down_proj's input
    assert _count(gm, tc.quantize.default) == 2
    assert _output_meta(gm) == before
    actual = gm(*inputs)
    for a, e in zip(actual, expected, strict=True):
        assert a.shape == e.shape and a.dtype == e.dtype
        torch.testing.assert_close(a.float(), e.float(), rtol=0.15, atol=0.15)  # fp8 activations
    weights = {n.name: facts(n).stored_bytes for n in gm.graph.nodes if n.op == "placeholder"}
    assert [k for k, v in weights.items() if v == 1.0] == [k for k in weights if "_mlp_" in k]
    assert not any(v for k, v in weights.items() if "lm_head" in k or "_gate_parameters" in k)


def test_weight_only_and_lm_head_option(capture_module):
    module = Tiny().to(torch.bfloat16)
    gm, _ = capture_module(module, torch.randn(2, 5, 64, dtype=torch.bfloat16))
    gm = quantize_linears(gm, scheme="w4a16", quantize_lm_head=True)
    assert _count(gm, tc.quantize.default) == 0  # weight-only: activations stay 16-bit
    assert _count(gm, tc.quant_linear.default) == 4 and _count(gm, torch._C._nn.linear) == 1
    int4_group128 = 0.5 + 2 / 128 + 0.5 / 128  # 4-bit weight, fp16 scale and 4-bit zero per 128
    recorded = [facts(n).stored_bytes for n in gm.graph.nodes if n.op == "placeholder" and facts(n).stored_bytes]
    assert recorded == pytest.approx([int4_group128] * 4)


def test_quantized_gemm_cost(h100_cluster):
    m, n, k = 4096, 8192, 8192
    x = torch.empty(m, k, dtype=torch.bfloat16, device="meta")
    w = torch.empty(n, k, dtype=torch.bfloat16, device="meta")
    bf16 = tensor_cast.op_cost(torch.ops.aten.linear.default, x, w, device=h100_cluster)
    xq = torch.empty(m, k, dtype=torch.float8_e4m3fn, device="meta")
    scale = torch.empty(1, dtype=torch.float32, device="meta")
    fp8 = tensor_cast.op_cost(tc.quant_linear.default, xq, scale, [w], [None], "fp8", torch.bfloat16, device=h100_cluster)
    assert fp8.counts.flops == {"fp8": 2 * m * n * k}
    assert bf16.counts.flops == {"bf16": 2 * m * n * k}
    # FP8 halves the weight and activation bytes; the bf16 output stays
    assert fp8.counts.bytes_read == m * k + 4 + n * k
    assert bf16.counts.bytes_read == 2 * (m * k + n * k)
    # the tensor-core peak used doubles (H100 datasheet: 1978.9 dense fp8 vs 989.4 bf16 TFLOP/s) ...
    profile = tensor_cast.load_device("h100-sxm")
    assert profile.rate("fp8")[0] == pytest.approx(2 * profile.rate("bf16")[0], rel=1e-4)
    # ... so a large FP8 GEMM is faster than BF16, but not more than the peaks' ratio (2x)
    assert 1 < bf16.compute_s / fp8.compute_s <= 2
    assert fp8.compute_s >= 2 * m * n * k / 1978.9e12  # never beyond the datasheet FP8 peak
    block = tensor_cast.op_cost(tc.quant_linear.default, xq, torch.empty(m, k // 128, device="meta"), [w], [None],
                                "fp8_block", torch.bfloat16, device=h100_cluster)
    assert block.counts.bytes_read == m * k + 4 * m * k // 128 + n * k + 4 * n * k // (128 * 128)


def test_activation_quantize_cost(h100_cluster):
    x = torch.empty(64, 8192, dtype=torch.bfloat16, device="meta")
    per_tensor = tensor_cast.op_cost(tc.quantize.default, x, "fp8", 0, True, device=h100_cluster)
    assert per_tensor.counts.bytes_read == 2 * x.numel() * 2  # amax pass + quantize pass
    assert per_tensor.counts.bytes_written == x.numel() + 4 and per_tensor.counts.launches == 2
    per_group = tensor_cast.op_cost(tc.quantize.default, x, "fp8", 128, True, device=h100_cluster)
    assert per_group.counts.bytes_read == x.numel() * 2 and per_group.counts.launches == 1
    assert per_group.counts.bytes_written == x.numel() + 4 * x.numel() // 128




def test_fp8_on_a_device_without_fp8_falls_back_explicitly():
    profile = tensor_cast.load_device("a100-80gb-sxm")
    assert profile.compute["fp8_tflops"] == 0  # Ampere has no FP8 tensor cores (A100 datasheet)
    report = tensor_cast.analyze("meta-llama/Llama-3.1-8B", device=profile, batch_size=8, query_len=512, quant="fp8",
                                 num_hidden_layers=2)
    gemms = [r for r in report.ops if r.op == "tensor_cast.quant_linear"]
    assert gemms and all(r.fallbacks == ("fp8->bf16",) for r in gemms)
    assert all(r.compute_s > 0 for r in gemms)  # never a zero compute term
    assert "precision fallbacks  fp8->bf16" in report.summary()


def dims(config):
    hidden, heads, kv, inter = (config[k] for k in ("hidden_size", "num_attention_heads", "num_key_value_heads",
                                                     "intermediate_size"))
    hd = hidden // heads
    linear = hidden * heads * hd + 2 * hidden * kv * hd + heads * hd * hidden + 3 * hidden * inter
    return dict(hidden=hidden, kv=kv, hd=hd, linear=linear, layers=config["num_hidden_layers"], vocab=config["vocab_size"])


def test_fp8_weights_and_kv_cache_on_llama(llama8b_config):
    d = dims(llama8b_config)
    fp8 = tensor_cast.analyze("meta-llama/Llama-3.1-8B", device="h100-sxm", batch_size=64, query_len=1,
                              context_len=4096, quant="fp8", kv_cache_dtype="fp8")
    # linear weights: 1 byte; embeddings, lm_head (excluded) and norms: 2 bytes
    unquantized = 2 * d["vocab"] * d["hidden"] + (2 * d["layers"] + 1) * d["hidden"]
    assert fp8.memory.weights_bytes == pytest.approx(d["layers"] * d["linear"] * 1 + unquantized * 2, rel=1e-12)
    kv_fp8 = 2 * d["kv"] * d["hd"] * d["layers"] * 1 * 64 * (4096 + 1)  # K+V, one byte each
    assert fp8.memory.kv_cache_bytes == kv_fp8
    bf16 = tensor_cast.analyze("meta-llama/Llama-3.1-8B", device="h100-sxm", batch_size=64, query_len=1,
                               context_len=4096, kv_cache_dtype="fp8")
    assert bf16.memory.kv_cache_bytes == kv_fp8  # the KV dtype alone changes only the cache
    assert "KV cache fp8" in fp8.summary() and "weights fp8" in fp8.summary()
    attention = next(r for r in fp8.ops if r.kind == "attention")
    q_and_out = 2 * 64 * 32 * d["hd"] * 2
    kv_token = 2 * d["kv"] * d["hd"] * 1
    assert attention.bytes == 64 * (4096 + 1) * kv_token + 2 * 64 * kv_token + q_and_out


def test_checkpoint_scheme_is_used_by_default(llama8b_config):
    spec = dataclasses.replace(tensor_cast.load_model("meta-llama/Llama-3.1-8B", num_hidden_layers=2),
                               quantization={"quant_method": "fp8", "weight_block_size": [128, 128]})
    report = tensor_cast.analyze(spec, device="h100-sxm", batch_size=1, query_len=128)
    d = dims(llama8b_config)
    block = 1 + 4 / (128 * 128)  # one fp32 scale per 128x128 block
    unquantized = 2 * d["vocab"] * d["hidden"] + (2 * 2 + 1) * d["hidden"]
    assert report.memory.weights_bytes == pytest.approx(2 * d["linear"] * block + unquantized * 2, rel=1e-12)
    assert "fp8_block (checkpoint)" in report.summary()
    assert SCHEMES["fp8_block"].precision == "fp8"
