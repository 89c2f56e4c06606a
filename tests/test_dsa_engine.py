"""DeepSeek sparse attention in engine sections (backends/efficiency.py `_dsa_efficiency`,
`_indexer_efficiency`): sparse MLA absorbed at every step length, its decode and prefill kernels,
the head padding and fp8 mixed-batch switch of vLLM's FlashMLA sparse backend; the indexer's
logits, its engine key layout, per-call / per-token costs and eager host floor; the DSA stage of
the AIC fit (module rows built from DeepSeek-V3.2 / GLM-5 dims, held-out head configurations).
Made-up profiles, made-up tables and the shipped profiles only; no measured table is read."""

from __future__ import annotations

import csv
import gzip

import pytest
import torch
from benchmark_modules import benchmarks
from profile_text import profile_head, profile_sources

import tensor_cast
import tensor_cast.ops  # registers torch.ops.tensor_cast.*
from tensor_cast.backends.counts import Counts
from tensor_cast.backends.device import load_device, parse_profile
from tensor_cast.backends.efficiency import efficiency_for
from tensor_cast.backends.kernels import MLAShape
from tensor_cast.sizes import S

tc = torch.ops.tensor_cast
BANDWIDTH = 2000e9  # profile_head's
RANK, ROPE, NOPE, V, TOPK = 512, 64, 128, 128, 2048  # DeepSeek-V3.2's latent dims and top-k
DSA = {"attention_mla_compute": 0.6, "attention_mla_latency_us": 30.0,
       "attention_dsa_compute": 0.5, "attention_dsa_memory": 0.8, "attention_dsa_latency_us": 40.0,
       "attention_dsa_token_ns": 10.0, "attention_dsa_head_token_ns": 2.0, "attention_dsa_prefill_compute": 0.7,
       "attention_dsa_prefill_latency_us": 50.0, "attention_dsa_prefill_token_ns": 20.0,
       "attention_dsa_prefill_head_token_ns": 1.0, "attention_dsa_head_pad": 64,
       "attention_fp8kv_dsa_latency_us": 60.0, "attention_fp8kv_dsa_prefill_min_heads": 32}
INDEXER = {"attention_dsa_indexer_compute": 0.4, "attention_dsa_indexer_memory": 0.5,
           "attention_dsa_indexer_latency_us": 8.0, "attention_dsa_indexer_token_ns": 100.0,
           "attention_dsa_indexer_key_bytes": 132, "attention_dsa_indexer_call_floor_us": 900.0}


def profile(values: dict[str, float], name: str = "p"):
    body = "[efficiency.vllm]\nattention_memory = 0.5\nattention_compute = 0.5\n" + "\n".join(
        f"{k} = {v}" for k, v in values.items())
    text = profile_head("dsa-gpu", "DSA GPU") + "\n" + body + "\n" + profile_sources() + '"efficiency" = "a test"\n'
    return parse_profile(text, f"{name}.toml", "vllm")


def efficiency(heads: int, tokens: int, short_step, kv_itemsize: int = 2, values: dict | None = None):
    counts = Counts(flops={"bf16": 1}, bytes_read=1, kernel=MLAShape(
        tokens=tokens, heads=heads, kv_itemsize=kv_itemsize, absorbed=True, sparse=True, short_step=short_step))
    return efficiency_for("attention", counts, profile(DSA if values is None else values))


def test_sparse_auto_form_is_absorbed_for_prefill_too():
    def cost(seq: int, form: str):
        meta = dict(device="meta", dtype=torch.bfloat16)
        args = (torch.empty(2, 16, seq, NOPE, **meta), torch.empty(2, 16, seq, ROPE, **meta),
                torch.empty(2, 1, seq, RANK, **meta), torch.empty(2, 1, seq, ROPE, **meta),
                torch.empty(16 * (NOPE + V), RANK, **meta), 0, 0.1, torch.empty(2, seq, TOPK, device="meta",
                                                                               dtype=torch.int32), 1)
        return tensor_cast.op_cost(tc.mla_attention.default, *args, device="h100", mla_form=form).counts

    auto, absorbed = cost(256, "auto"), cost(256, "absorbed")
    assert auto.flops == absorbed.flops and auto.bytes == absorbed.bytes
    assert auto.kernel.sparse and auto.kernel.absorbed is True and auto.kernel.short_step is False
    assert cost(1, "auto").kernel.short_step is True


def test_decode_pads_the_heads_to_the_kernels_tile():
    """16 local heads in a 64-head tile: the core at a quarter of its fraction, the per-head cost
    for 64 heads; 40 us + 10 ns x 64 tokens + 2 ns x 64 tokens x 64 heads."""
    eff = efficiency(16, 64, True)
    assert eff.compute == pytest.approx(0.5 * 16 / 64, rel=1e-12)
    assert eff.memory == 0.8
    assert eff.latency_s * 1e6 == pytest.approx(40.0 + 0.010 * 64 + 0.002 * 64 * 64, rel=1e-12)


def test_prefill_has_its_own_kernel_values_and_128_heads_fill_two_tiles():
    eff = efficiency(128, 4096, False)
    assert eff.compute == pytest.approx(0.7, rel=1e-12)
    assert eff.latency_s * 1e6 == pytest.approx(50.0 + 0.020 * 4096 + 0.001 * 4096 * 128, rel=1e-12)


def test_below_pad_min_heads_another_backend_runs_unpadded():
    eff = efficiency(16, 64, True, values={**DSA, "attention_dsa_pad_min_heads": 17})
    assert eff.compute == pytest.approx(0.5, rel=1e-12)
    assert eff.latency_s * 1e6 == pytest.approx(40.0 + 0.010 * 64 + 0.002 * 64 * 16, rel=1e-12)


def test_fp8_prefill_with_few_heads_runs_the_decode_kernel():
    """vLLM's mixed-batch mode: an fp8 cache and fewer than 32 local heads run every prefill token
    through the fp8 decode kernel (the decode values, its own per-call cost); 32 heads run the
    prefill kernel."""
    few = efficiency(16, 4096, False, kv_itemsize=1)
    assert few.latency_s * 1e6 == pytest.approx(60.0 + 0.010 * 4096 + 0.002 * 4096 * 64, rel=1e-12)
    many = efficiency(32, 4096, False, kv_itemsize=1)
    assert many.latency_s * 1e6 == pytest.approx(50.0 + 0.020 * 4096 + 0.001 * 4096 * 64, rel=1e-12)


def test_symbolic_step_blends_decode_and_prefill():
    eff = efficiency(128, 64, S <= 1)
    assert float(eff.latency_s.subs({S: 1})) * 1e6 == pytest.approx(40.0 + 0.64 + 0.002 * 64 * 128, rel=1e-12)
    assert float(eff.latency_s.subs({S: 2})) * 1e6 == pytest.approx(50.0 + 1.28 + 0.001 * 64 * 128, rel=1e-12)


def test_dense_mla_keeps_the_mla_values():
    counts = Counts(flops={"bf16": 1}, bytes_read=1, kernel=MLAShape(tokens=64, heads=16, absorbed=True))
    eff = efficiency_for("attention", counts, profile(DSA))
    assert eff.compute == 0.6 and eff.latency_s * 1e6 == pytest.approx(30.0)


def indexer_cost(device, batch: int, seq: int, context: int, cuda_graphs: str = "always"):
    heads, dim = 64, 128
    meta = dict(device="meta", dtype=torch.bfloat16)
    return tensor_cast.op_cost(tc.dsa_indexer.default, torch.empty(batch, seq, heads, dim, **meta),
                               torch.empty(batch, seq, dim, **meta), torch.empty(batch, seq, heads, **meta), context,
                               TOPK, device=device, cuda_graphs=cuda_graphs)


def test_indexer_reads_the_engines_key_layout():
    """64 sequences over 65536 cached tokens: the bf16 keys the trace counts (256 B a token) are
    read as vLLM's fp8 keys with a scale (132 B) at half the HBM rate; 8 us + 100 ns per token."""
    batch, context = 64, 65535
    with_keys, without = indexer_cost(profile(INDEXER), batch, 1, context), indexer_cost(profile({}), batch, 1, context)
    cached = batch * (context + 1)
    engine_bytes = with_keys.bytes - cached * 128 * 2 + cached * 132
    assert with_keys.memory_s == pytest.approx(engine_bytes / (BANDWIDTH * 0.5), rel=1e-9)
    assert without.memory_s == pytest.approx(without.bytes / (BANDWIDTH * 0.5), rel=1e-9)  # the attention base
    assert with_keys.latency_s == pytest.approx((8.0 + 0.1 * batch) * 1e-6, rel=1e-9)


def test_indexer_host_floor_applies_to_eager_calls_only():
    eager, graph = (indexer_cost(profile(INDEXER), 1, 16, 0, mode) for mode in ("never", "always"))
    assert eager.time_s == pytest.approx(900e-6, rel=1e-9)
    assert graph.time_s < 100e-6


@pytest.fixture(scope="module")
def aic():
    return benchmarks("aic_fit", "aic_tables")


def test_dsa_fit_holds_out_a_stable_set_of_head_configurations(aic):
    aic_fit, _ = aic
    from calibration_cases import Case, Row

    def case(group: str) -> Case:
        return Case(row=Row("dsa", "x", {}, "bf16", 1.0), cls="dsa decode", group=group, stage="dsa", ops=())

    groups = [f"{m} heads{h}" for m in ("V3.2", "GLM-5") for h in (1, 2, 4, 8, 16, 32, 64, 128)]
    held = [g for g in groups if aic_fit.held_out(case(g))]
    assert held == ["V3.2 heads2", "V3.2 heads16", "V3.2 heads32", "V3.2 heads128", "GLM-5 heads32"]
    from tensor_cast.backends.efficiency import EFFICIENCY_KEYS
    for stage in aic_fit.DSA_STAGES:
        assert all(p.key.split(".", 1)[1] in EFFICIENCY_KEYS for p in stage.params)
    for switches in aic_fit.DSA_KERNEL_SWITCHES.values():
        assert all(k.split(".", 1)[1] in EFFICIENCY_KEYS for k in switches)


COLUMNS = ("framework", "version", "device", "op_name", "kernel_source", "model", "architecture", "mla_dtype",
           "kv_cache_dtype", "gemm_type", "num_heads", "batch_size", "isl", "tp_size", "step", "latency")


def test_dsa_cases_cost_a_glm5_layer_with_its_indexer(aic, tmp_path):
    """A context row (4 prompts of 512 tokens over a 128-token prefix, eager) and a generation row
    (8 sequences of 4096 tokens, one new) of GLM-5 at 16 local heads; a fp8_block row is skipped."""
    _, aic_tables = aic
    for table, rows in (("dsa_context_module_perf", [(4, 512, 128, "bfloat16", 2.5), (4, 512, 128, "fp8_block", 2.0)]),
                        ("dsa_generation_module_perf", [(8, 1, 4096, "bfloat16", 0.3)])):
        with gzip.open(tmp_path / f"{table}.csv.gz", "wt", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            for batch, isl, step, gemm, latency in rows:
                writer.writerow(("VLLM", "0.24.0", "GPU", table, "FLASHMLA_SPARSE", "zai-org/GLM-5",
                                 "GlmMoeDsaForCausalLM", "bfloat16", "bfloat16", gemm, 16, batch, isl, 1, step, latency))
    prefill, decode = aic_tables.dsa_cases(tmp_path)
    assert (prefill.cls, prefill.group, prefill.mode.cuda_graphs) == ("dsa prefill", "GLM-5 heads16", "never")
    assert (decode.cls, decode.mode.cuda_graphs) == ("dsa decode", "always")
    names = [str(o.call.op) for o in prefill.ops]
    assert names.count("tensor_cast.dsa_indexer.default") == 1
    indexer = next(o for o in prefill.ops if str(o.call.op) == "tensor_cast.dsa_indexer.default")
    # GLM-5's indexer: 32 heads x 128, every one of the 512 queries scores the prefix and the causal new keys
    assert indexer.counts.kernel.cached_tokens == 4 * (128 + 512)
    attention = next(o for o in prefill.ops if str(o.call.op) == "tensor_cast.mla_attention.default")
    assert attention.counts.kernel.sparse and attention.counts.kernel.heads == 16
    q_b = [o for o in prefill.ops if str(o.call.op) == "aten.linear.default"][1]
    assert q_b.counts.kernel.n == 16 * (192 + 64) and q_b.counts.kernel.k == 2048  # GLM-5: q_lora 2048, nope 192
    decode_attention = next(o for o in decode.ops if str(o.call.op) == "tensor_cast.mla_attention.default")
    assert decode_attention.counts.kernel.short_step is True


@pytest.mark.parametrize("name", ("h100-sxm", "b200"))
def test_shipped_vllm_sections_cost_a_dsa_layer_from_the_fit(name):
    device = load_device(name, "vllm")
    eff = device.efficiency
    assert eff["attention_dsa_indexer_key_bytes"] == 132
    assert eff["attention_dsa_head_pad"] == (64 if device.architecture == "hopper" else 128)
    assert 0.05 < eff["attention_dsa_indexer_compute"] <= 1.0 and 0.05 < eff["attention_dsa_compute"] <= 1.0
    assert "attention_dsa_compute" not in load_device(name, "torch").efficiency
    # 64 sequences decoding over 65536 cached tokens: at least the indexer keys (132 B a token) at the datasheet rate
    cost = indexer_cost(name, 64, 1, 65535)
    assert cost.time_s > 64 * 65536 * 132 / (device.memory_bandwidth_gbps * 1e9)
