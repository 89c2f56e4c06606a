"""Gated DeltaNet in engine sections (backends/efficiency.py `_gdn_efficiency`): the chunked scan in
waves of (sequence, value head) CTAs walking their chunks one after another, plus the conv's and
the fused scan's I/O; the recurrent decode memory-bound with a per-wave floor; the symbolic blend
of the two through a traced model; the GDN stage of the AIC fit (rows summed per layer, held-out
head pairs). Made-up profiles, made-up tables and the shipped profiles only; no measured table is read."""

from __future__ import annotations

import csv
import gzip
import json

import pytest
import torch
from benchmark_modules import benchmarks
from profile_text import profile_head, profile_sources

import tensor_cast
import tensor_cast.ops  # registers torch.ops.tensor_cast.*
from tensor_cast.backends.counts import Counts
from tensor_cast.backends.device import load_device, parse_profile
from tensor_cast.backends.efficiency import efficiency_for
from tensor_cast.backends.kernels import DeltaNetShape
from tensor_cast.sizes import B, S

tc = torch.ops.tensor_cast
HK, HV, DK, DV, K = 2, 4, 128, 128, 4  # key / value heads on the GPU, head dims, conv width
CHANNELS = 2 * HK * DK + HV * DV
SMS, BF16_PEAK, VECTOR_PEAK, BANDWIDTH = 100, 400e12, 50e12, 2000e9  # profile_head's
CHUNK = 64
# one chunk of one value head: K·Kᵀ, the triangular solve, W and U, intra-chunk Q·Kᵀ and ·V, three state products
CHUNK_FLOPS = (2 * CHUNK**2 * DK + 2 * CHUNK**3 / 3 + 2 * CHUNK**2 * (DK + DV) + 2 * CHUNK**2 * (DK + DV)
               + 6 * CHUNK * DK * DV)
GDN = {"attention_gdn_chunk_compute": 0.5, "attention_gdn_chunk_cta_us": 4.0, "attention_gdn_chunk_latency_us": 3.0,
       "attention_gdn_chunk_memory": 0.8, "attention_gdn_recurrent_memory": 0.5, "attention_gdn_recurrent_cta_us": 20.0,
       "attention_gdn_recurrent_latency_us": 6.0}


def profile(values: dict[str, float], name: str = "p"):
    body = "[efficiency.vllm]\nattention_memory = 0.5\nattention_compute = 0.5\n" + "\n".join(
        f"{k} = {v}" for k, v in values.items())
    text = profile_head("gdn-gpu", "GDN GPU") + "\n" + body + "\n" + profile_sources() + '"efficiency" = "a test"\n'
    return parse_profile(text, f"{name}.toml", "vllm")


def gdn_cost(device, batch: int, seq: int, decode_query_len: int):
    def t(*shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
        return torch.empty(shape, dtype=dtype, device="meta")

    return tensor_cast.op_cost(tc.gated_delta_net.default, t(batch, seq, CHANNELS), t(batch, seq, HV), t(batch, seq, HV),
                               t(CHANNELS, 1, K), t(HV, dtype=torch.float32), t(HV), HK, DK, HV, DV, decode_query_len,
                               device=device)


def vector_s(tokens: int) -> float:
    """The conv + SiLU, the gates and the q/k L2 norms at the vector peak."""
    return (tokens * CHANNELS * (2 * K + 4) + 8 * tokens * HV + tokens * HV * 6 * DK) / VECTOR_PEAK


def test_chunked_scan_runs_in_waves_of_sequence_head_ctas():
    """30 prompts of 128 tokens: 120 (sequence, value head) CTAs on 100 SMs are 2 waves, each CTA
    walking 2 chunks at half an SM's share of the peak; the conv and the scan's I/O stream at 0.8
    of HBM and add to it; 3 us per call and 4 us per wave."""
    batch, seq = 30, 128
    tokens, waves, chunks = batch * seq, 2, 2
    cost = gdn_cost(profile(GDN), batch, seq, 1)
    scan = waves * chunks * CHUNK_FLOPS / (BF16_PEAK / SMS * 0.5)
    assert cost.compute_s == pytest.approx(scan + vector_s(tokens), rel=1e-9)
    fused = (3 * tokens * CHANNELS * 2  # conv input and output, q / k / v read by the scan
             + CHANNELS * K * 2 + HV * 4 + HV * 2  # conv weight, A_log (fp32), dt_bias
             + 2 * batch * (K - 1) * CHANNELS * 2  # conv state in and out
             + 4 * tokens * HV * 2  # a, b in; g, beta
             + tokens * HV * DV * 2  # output
             + 2 * batch * HV * DK * DV * 2)  # the state read and written once
    assert cost.memory_s == pytest.approx(fused / (BANDWIDTH * 0.8), rel=1e-9)
    assert cost.time_s == pytest.approx(cost.compute_s + cost.memory_s + (3.0 + waves * 4.0) * 1e-6, rel=1e-9)


def test_a_partial_wave_costs_a_whole_one():
    """100 CTAs fill one wave of 100 SMs; 104 take two, as long as 200 would."""
    one, two = gdn_cost(profile(GDN), 25, 4096, 1), gdn_cost(profile(GDN), 26, 4096, 1)
    assert (two.compute_s - vector_s(26 * 4096)) / (one.compute_s - vector_s(25 * 4096)) == pytest.approx(2.0, rel=1e-9)


def test_recurrent_decode_streams_its_state_with_a_floor_per_wave():
    device = profile(GDN)
    # 16000 CTAs: 160 waves x 2 us = 0.32 ms < the 1 GB state stream at 1 TB/s
    many = gdn_cost(profile({**GDN, "attention_gdn_recurrent_cta_us": 2.0}), 4000, 1, 1)
    assert many.memory_s == pytest.approx(many.bytes / (BANDWIDTH * 0.5), rel=1e-9)
    assert many.bytes >= 2 * 4000 * HV * DK * DV * 2  # the state read and written
    few = gdn_cost(device, 100, 1, 1)  # 400 CTAs: 4 waves x 20 us = 80 us > 26 MB at 1 TB/s
    assert few.memory_s == pytest.approx(4 * 20e-6, rel=1e-9)
    assert few.time_s == pytest.approx(max(few.compute_s, few.memory_s) + 6e-6, rel=1e-9)


def test_a_section_without_gdn_keys_keeps_the_attention_base():
    cost = gdn_cost(profile({}), 30, 128, 1)
    assert cost.memory_s == pytest.approx(cost.bytes / (BANDWIDTH * 0.5), rel=1e-12)


def test_symbolic_form_blends_to_each_form_at_its_step_length():
    counts = Counts(flops={"bf16": 1}, bytes_read=1,
                    kernel=DeltaNetShape(sequences=B, q_len=S, v_heads=HV, chunk=CHUNK, chunk_flops=1, fused_bytes=1,
                                         recurrent=S <= 1))
    eff = efficiency_for("attention", counts, profile(GDN))
    assert float(eff.latency_s.subs({B: 8, S: 1})) == pytest.approx(6e-6, rel=1e-12)
    assert float(eff.latency_s.subs({B: 30, S: 100})) == pytest.approx((3.0 + 2 * 4.0) * 1e-6, rel=1e-12)
    assert float(eff.overlap.subs({B: 8, S: 1})) == 0 and float(eff.overlap.subs({B: 8, S: 100})) == 1


def test_a_traced_hybrid_model_costs_its_gdn_layers_with_the_engine_model(tmp_path):
    """A one-layer Qwen3-Next (linear attention only) traced symbolically under a vllm section with
    GDN keys: at a decode and a prefill point the layer's row is the op's own cost at that shape."""
    config = {"model_type": "qwen3_next", "architectures": ["Qwen3NextForCausalLM"], "hidden_size": 256,
              "intermediate_size": 512, "num_hidden_layers": 1, "layer_types": ["linear_attention"],
              "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64, "linear_num_key_heads": HK,
              "linear_num_value_heads": HV, "linear_key_head_dim": DK, "linear_value_head_dim": DV,
              "linear_conv_kernel_dim": K, "vocab_size": 1024, "num_experts": 4, "num_experts_per_tok": 2,
              "moe_intermediate_size": 128, "shared_expert_intermediate_size": 128, "mlp_only_layers": [0],
              "decoder_sparse_step": 1, "full_attention_interval": 4, "max_position_embeddings": 4096,
              "torch_dtype": "bfloat16"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    device = profile(GDN, "traced")
    report = tensor_cast.analyze(str(tmp_path), device=device, engine="vllm", symbolic=True)
    for batch, seq, decode_query_len in ((8, 1, 1), (2, 300, 0)):
        point = report.evaluate(batch_size=batch, query_len=seq, context_len=0)
        row = next(r for r in point.ops if r.op == "tensor_cast.gated_delta_net")
        # (the model's A_log is bf16, gdn_cost's fp32: 8 bytes apart)
        assert row.time_s == pytest.approx(gdn_cost(device, batch, seq, decode_query_len).time_s, rel=1e-6)


@pytest.fixture(scope="module")
def aic():
    return benchmarks("aic_fit", "aic_tables")


def test_gdn_fit_holds_out_a_stable_set_of_head_pairs(aic):
    aic_fit, _ = aic
    from calibration_cases import Case, Row

    pairs = [(1, 2), (1, 4), (2, 2), (2, 4), (2, 6), (2, 8), (4, 4), (4, 8), (4, 12), (4, 16), (8, 8), (8, 16),
             (8, 24), (8, 32), (16, 16), (16, 32), (16, 48), (16, 64)]  # the tables' (key, value) heads per GPU

    def case(hk: int, hv: int) -> Case:
        return Case(row=Row("gdn", "x", {}, "bf16", 1.0), cls="gdn chunked", group=f"hk{hk} hv{hv}",
                    stage="gdn chunked", ops=())

    held = [p for p in pairs if aic_fit.held_out(case(*p))]
    assert held == [(1, 2), (4, 4), (4, 8), (4, 12), (4, 16)]
    from tensor_cast.backends.efficiency import EFFICIENCY_KEYS
    for stage in aic_fit.GDN_STAGES:
        assert all(p.key.split(".", 1)[1] in EFFICIENCY_KEYS for p in stage.params)


COLUMNS = ("framework", "version", "device", "op_name", "kernel_source", "phase", "batch_size", "seq_len", "num_tokens",
           "d_model", "d_conv", "num_k_heads", "head_k_dim", "num_v_heads", "head_v_dim", "model_name", "latency")


def write_table(folder, rows):
    with gzip.open(folder / "gdn_perf.csv.gz", "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for kernel, phase, batch, seq, latency_ms in rows:
            writer.writerow(("vLLM", "0.24.0", "GPU", "gdn", kernel, phase, batch, seq, batch * seq, 1024, K, HK, DK, HV,
                             DV, "m", latency_ms))


def test_gdn_cases_sum_a_layers_two_kernels(aic, tmp_path):
    _, aic_tables = aic
    write_table(tmp_path, [("causal_conv1d_fn", "context", 2, 256, 0.010),
                           ("chunk_gated_delta_rule_flashinfer", "context", 2, 256, 0.030),
                           ("causal_conv1d_update", "generation", 8, 1, 0.002),
                           ("fused_recurrent_gated_delta_rule_packed_decode", "generation", 8, 1, 0.005),
                           ("causal_conv1d_update", "generation", 16, 1, 0.002)])  # its scan row is missing
    cases = aic_tables.gdn_cases(tmp_path)
    assert [(c.cls, c.row.params["B"], c.measured_s) for c in cases] == [
        ("gdn chunked", 2, pytest.approx(40e-6)), ("gdn recurrent", 8, pytest.approx(7e-6))]
    assert all(c.group == f"hk{HK} hv{HV}" for c in cases)
    chunked, recurrent = (c.ops[0].counts.kernel for c in cases)
    assert chunked.recurrent is False and recurrent.recurrent is True  # a context row is the chunked form


def test_gdn_cases_reject_a_token_count_that_is_not_batch_times_length(aic, tmp_path):
    _, aic_tables = aic
    write_table(tmp_path, [("causal_conv1d_fn", "context", 2, 256, 0.010)])
    with gzip.open(tmp_path / "gdn_perf.csv.gz", "rt") as handle:
        text = handle.read().replace(",512,", ",500,")
    with gzip.open(tmp_path / "gdn_perf.csv.gz", "wt") as handle:
        handle.write(text)
    with pytest.raises(ValueError, match="num_tokens"):
        aic_tables.gdn_cases(tmp_path)


@pytest.mark.parametrize("name", ("h100-sxm", "b200"))
def test_shipped_vllm_sections_cost_a_gdn_layer_from_the_fit(name):
    """Qwen3.5's 16 / 32 heads: a decode of 1024 sequences streams at least the state (64 KB per
    sequence and head, read and written) at the datasheet rate; the fitted scan fraction is a
    tensor-core share, not a lookup knob."""
    device = load_device(name, "vllm")
    assert 0.2 < device.efficiency["attention_gdn_chunk_compute"] <= 1.0
    assert 0.2 < device.efficiency["attention_gdn_recurrent_memory"] <= 1.0
    assert "attention_gdn_chunk_compute" not in load_device(name, "torch").efficiency
    channels = 2 * 16 * 128 + 32 * 128
    meta = dict(device="meta", dtype=torch.bfloat16)
    cost = tensor_cast.op_cost(tc.gated_delta_net.default, torch.empty(1024, 1, channels, **meta),
                               torch.empty(1024, 1, 32, **meta), torch.empty(1024, 1, 32, **meta),
                               torch.empty(channels, 1, K, **meta), torch.empty(32, device="meta"),
                               torch.empty(32, **meta), 16, 128, 32, 128, 1, device=name, engine="vllm")
    assert cost.time_s > 2 * 1024 * 32 * 128 * 128 * 2 / (device.memory_bandwidth_gbps * 1e9)
