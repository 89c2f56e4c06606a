"""Multi-head latent attention in engine sections (backends/efficiency.py `_mla_efficiency`): the
core at its own fractions plus a cost per call, per new token and per new token and local head,
separately for the absorbed (decode) and expanded (prefill) forms and for an 8-bit latent cache;
the MLA stage of the AIC fit (held-out head counts) and the shipped vllm sections' MLA values.
Made-up profiles and the shipped profiles only; no measured table is read."""

from __future__ import annotations

import pytest
import torch
from benchmark_modules import benchmarks
from profile_text import profile_head, profile_sources

import tensor_cast
from tensor_cast.backends.counts import Counts
from tensor_cast.backends.device import load_device, parse_profile
from tensor_cast.backends.efficiency import efficiency_for
from tensor_cast.backends.kernels import MLAShape
from tensor_cast.sizes import B, S

HEADS, RANK, ROPE, NOPE, V = 16, 512, 64, 128, 128  # DeepSeek-V3's latent dims, 16 local heads
BANDWIDTH_GBPS = 2000.0  # profile_head's
FRACTIONS = {"attention_mla_compute": 0.6, "attention_mla_memory": 0.8, "attention_mla_prefill_compute": 0.7}
COSTS = {"attention_mla_latency_us": 30.0, "attention_mla_token_ns": 50.0, "attention_mla_head_token_ns": 2.0,
         "attention_mla_prefill_latency_us": 40.0, "attention_mla_prefill_token_ns": 10.0,
         "attention_mla_prefill_head_token_ns": 1.0, "attention_fp8kv_mla_latency_us": 70.0}


def profile(values: dict[str, float], name: str = "p"):
    body = "[efficiency.vllm]\nattention_memory = 0.5\nattention_compute = 0.5\n" + "\n".join(
        f"{k} = {v}" for k, v in values.items())
    text = profile_head("mla-gpu", "MLA GPU") + "\n" + body + "\n" + profile_sources() + '"efficiency" = "a test"\n'
    return parse_profile(text, f"{name}.toml", "vllm")


def mla_cost(device, batch: int, q_len: int, context: int, latent: torch.dtype = torch.bfloat16):
    def t(*shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
        return torch.empty(shape, dtype=dtype, device="meta")

    args = (t(batch, HEADS, q_len, NOPE), t(batch, HEADS, q_len, ROPE), t(batch, 1, q_len, RANK, dtype=latent),
            t(batch, 1, q_len, ROPE, dtype=latent), t(HEADS * (NOPE + V), RANK), context, (NOPE + ROPE) ** -0.5,
            None, 1)
    return tensor_cast.op_cost(torch.ops.tensor_cast.mla_attention.default, *args, device=device)


@pytest.mark.parametrize("batch, q_len, latent, expected_us", [
    # absorbed decode, 64 sequences: 30 us + 50 ns x 64 tokens + 2 ns x 64 tokens x 16 heads
    (64, 1, torch.bfloat16, 30.0 + 0.050 * 64 + 0.002 * 64 * HEADS),
    # expanded prefill, 2 x 256 tokens: the prefill keys
    (2, 256, torch.bfloat16, 40.0 + 0.010 * 512 + 0.001 * 512 * HEADS),
    # an 8-bit latent cache: its own per-call cost, the per-token keys of the bf16 path
    (64, 1, torch.float8_e4m3fn, 70.0 + 0.050 * 64 + 0.002 * 64 * HEADS),
])
def test_mla_pays_a_cost_per_call_per_token_and_per_token_and_head(batch, q_len, latent, expected_us):
    without, with_costs = profile(FRACTIONS, "without"), profile({**FRACTIONS, **COSTS}, "with")
    added = mla_cost(with_costs, batch, q_len, 4095, latent).time_s - mla_cost(without, batch, q_len, 4095, latent).time_s
    assert added * 1e6 == pytest.approx(expected_us, rel=1e-9)


def test_absorbed_decode_reads_the_latent_at_the_mla_bandwidth_fraction():
    cost = mla_cost(profile(FRACTIONS), 64, 1, 32767)
    assert cost.memory_s == pytest.approx(cost.bytes / (BANDWIDTH_GBPS * 1e9 * 0.8), rel=1e-12)
    # at least the latent + rope key of 64 x 32768 cached tokens, 2 bytes each
    assert cost.bytes >= 64 * 32768 * (RANK + ROPE) * 2


def test_a_section_without_mla_keys_keeps_the_attention_base():
    cost = mla_cost(profile({}), 64, 1, 32767)
    assert cost.memory_s == pytest.approx(cost.bytes / (BANDWIDTH_GBPS * 1e9 * 0.5), rel=1e-12)


def test_symbolic_form_blends_to_each_form_at_its_step_length():
    device = profile({**FRACTIONS, **COSTS})
    counts = Counts(flops={"bf16": 1}, bytes_read=1, kernel=MLAShape(tokens=B * S, heads=HEADS, absorbed=S <= 1))
    latency = efficiency_for("attention", counts, device).latency_s
    decode_us = 30.0 + 0.050 * 8 + 0.002 * 8 * HEADS
    prefill_us = 40.0 + 0.010 * 8 * 100 + 0.001 * 8 * 100 * HEADS
    assert float(latency.subs({B: 8, S: 1})) * 1e6 == pytest.approx(decode_us, rel=1e-12)
    assert float(latency.subs({B: 8, S: 100})) * 1e6 == pytest.approx(prefill_us, rel=1e-12)


@pytest.fixture(scope="module")
def aic():
    return benchmarks("aic_fit", "aic_tables")


def test_mla_fit_holds_two_head_counts_out(aic):
    aic_fit, aic_tables = aic
    from calibration_cases import Case, Row

    def case(heads: int) -> Case:
        return Case(row=Row("mla", "x", {"heads": heads}, "bf16", 1.0), cls="mla decode", group=f"heads{heads}",
                    stage="mla", ops=())

    held = [h for h in (1, 2, 4, 8, 16, 32, 64, 128) if aic_fit.held_out(case(h))]
    assert held == [2, 64]
    stages = {s.name: s for s in aic_fit.STAGES}
    assert {"mla", "mla fp8kv"} <= set(stages)
    from tensor_cast.backends.efficiency import EFFICIENCY_KEYS
    for stage in ("mla", "mla fp8kv"):
        assert all(p.key.split(".", 1)[1] in EFFICIENCY_KEYS for p in stages[stage].params)


@pytest.mark.parametrize("name", ("h100-sxm", "b200"))
def test_shipped_vllm_sections_cost_an_mla_layer_with_its_glue(name):
    """DeepSeek-V3's MLA layer on one GPU: the fitted per-call costs are microseconds, and a one-token
    decode over 4k cached tokens at 128 heads costs at least its latent read at the datasheet rate."""
    device = load_device(name, "vllm")
    eff = device.efficiency
    for kv in ("", "_fp8kv"):
        assert 1.0 < eff[f"attention{kv}_mla_latency_us"] < 100.0
        assert 0.3 < eff[f"attention{kv}_mla_memory"] <= 1.0
        assert 0.0 < eff[f"attention{kv}_mla_prefill_latency_us"] < 100.0
    cost = mla_cost(name, 64, 1, 4095)
    assert cost.time_s > 64 * 4096 * (RANK + ROPE) * 2 / (device.memory_bandwidth_gbps * 1e9)
