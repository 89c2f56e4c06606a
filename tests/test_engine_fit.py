"""The engine-section models and their fit: measured collective protocols (NCCL's two protocol
families, vLLM's custom all-reduce below its size limit), the GEMM-variant and fp8-KV parameters,
fit recovery on synthetic data (benchmarks/aic_fit.py), and the physical sanity of the shipped
vllm sections. Never reads the shared AIC tables: synthetic rows and the shipped profiles only."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
import sympy
import torch
from benchmark_modules import benchmarks
from profile_text import profile_head, profile_sources

import tensor_cast
from tensor_cast.backends.attention_tiles import decode_tiles
from tensor_cast.backends.communication import collective_time_s
from tensor_cast.backends.device import load_device, parse_profile
from tensor_cast.backends.formulas.collectives import collective_counts
from tensor_cast.backends.kernels import AttentionShape
from tensor_cast.sizes import B, S

REPO = Path(__file__).resolve().parent.parent
LINK_GBPS = 400.0
HEAD = profile_head("proto-gpu", "Protocol GPU") + f"""
[interconnect]
gpus_per_node = 8
intra_node = "nvlink4"
intra_node_bandwidth_gbps = {LINK_GBPS}
intra_node_latency_us = 0.5
inter_node = "infiniband-ndr"
inter_node_bandwidth_gbps = 50.0
inter_node_latency_us = 3.0
"""
SOURCES = profile_sources("interconnect")


def text(efficiency: str = "") -> str:
    """HEAD, an efficiency block (e.g. "[efficiency.vllm]\nkey = 1"), and sources for every section."""
    return HEAD + "\n" + efficiency + "\n" + SOURCES + ('"efficiency" = "a test"\n' if efficiency else "")
NCCL = {"latency_us": 5.0, "step_us": 0.8, "ll_bandwidth": 0.3, "simple_us": 15.0, "simple_bandwidth": 0.75}
CUSTOM = {"latency_us": 4.0, "step_us": 0.1, "ll_bandwidth": 0.5, "simple_us": 30.0, "simple_bandwidth": 0.8}


def section(**extra: float) -> str:
    lines = [f"all_reduce_{k} = {v}" for k, v in NCCL.items()]
    lines += [f"all_gather_{k} = {v}" for k, v in NCCL.items()]
    lines += [f"{k} = {v}" for k, v in extra.items()]
    return text("[efficiency.vllm]\n" + "\n".join(lines))


def comm_time(profile, collective, n, payload, nodes=1):
    return collective_time_s(collective_counts(collective, group_size=n, nodes=nodes, scope="tp", payload=payload,
                                               read=payload, written=payload), profile)


def hand(params, steps, traffic):
    """The faster of the two protocols, from the parameters (µs, fractions) and the link peak."""
    bandwidth = LINK_GBPS * 1e9
    fixed = (params["latency_us"] + steps * params["step_us"]) * 1e-6
    low_latency = fixed + traffic / (bandwidth * params["ll_bandwidth"])
    bulk = fixed + params["simple_us"] * 1e-6 + traffic / (bandwidth * params["simple_bandwidth"])
    return min(low_latency, bulk)


@pytest.mark.parametrize("payload", [2**10, 2**20, 2**24, 2**28])
def test_nccl_all_reduce_is_the_faster_protocol(payload):
    profile = parse_profile(section(), "p.toml", "vllm")
    n = 8
    expected = hand(NCCL, 2 * (n - 1), 2 * (n - 1) / n * payload)
    assert comm_time(profile, "all_reduce", n, payload) == pytest.approx(expected, rel=1e-12)


def test_protocol_switch_happens_where_the_bulk_protocol_catches_up():
    profile = parse_profile(section(), "p.toml", "vllm")
    n = 4
    bandwidth = LINK_GBPS * 1e9
    # LL == Simple when traffic (1/f_ll - 1/f_simple) / β = t_simple
    traffic = NCCL["simple_us"] * 1e-6 * bandwidth / (1 / NCCL["ll_bandwidth"] - 1 / NCCL["simple_bandwidth"])
    switch = traffic / ((n - 1) / n)  # all_gather payload at the switch
    below, above = comm_time(profile, "all_gather", n, 0.5 * switch), comm_time(profile, "all_gather", n, 2 * switch)
    fixed = (NCCL["latency_us"] + (n - 1) * NCCL["step_us"]) * 1e-6
    assert below == pytest.approx(fixed + 0.5 * traffic / (bandwidth * NCCL["ll_bandwidth"]), rel=1e-12)
    assert above == pytest.approx(fixed + NCCL["simple_us"] * 1e-6 + 2 * traffic / (bandwidth * NCCL["simple_bandwidth"]),
                                  rel=1e-12)


def test_custom_all_reduce_below_its_limit_nccl_above():
    extra = {f"custom_all_reduce_{k}": v for k, v in CUSTOM.items()}
    profile = parse_profile(section(custom_all_reduce_max_mib=8.0, **extra), "p.toml", "vllm")
    n, limit = 8, 8 * 2**20
    assert comm_time(profile, "all_reduce", n, limit) == pytest.approx(
        hand(CUSTOM, 2 * (n - 1), 2 * (n - 1) / n * limit), rel=1e-12)
    assert comm_time(profile, "all_reduce", n, limit + 2) == pytest.approx(
        hand(NCCL, 2 * (n - 1), 2 * (n - 1) / n * (limit + 2)), rel=1e-12)
    payload = B * S * 8192 * 2  # symbolic: a Piecewise that agrees with both sides of the limit
    expr = comm_time(profile, "all_reduce", n, payload)
    for b, s in ((1, 1), (64, 1), (1, 2048)):
        concrete = comm_time(profile, "all_reduce", n, b * s * 8192 * 2)
        assert float(expr.xreplace({B: sympy.Integer(b), S: sympy.Integer(s)})) == pytest.approx(concrete, rel=1e-12)


@pytest.mark.parametrize("n", [2, 4, 8])
def test_all_to_all_own_slice_costs_its_share_of_a_peer(n):
    """all_to_all with `all_to_all_self_share` s: the traffic is the (n - 1) / n peers' share of the
    payload plus s / n for the rank's own slice. s = 1: every slice costs a peer's, so a 256 MiB
    payload takes the same time at 2, 4 and 8 GPUs past the fixed costs (B200: 810 / 825 / 834 us)."""
    a2a = {f"all_to_all_{k}": v for k, v in NCCL.items()}
    payload = 2**28
    for share in (0.0, 0.5, 1.0):
        profile = parse_profile(section(**a2a, all_to_all_self_share=share), "p.toml", "vllm")
        traffic = ((n - 1) + share) / n * payload
        assert comm_time(profile, "all_to_all", n, payload) == pytest.approx(hand(NCCL, n - 1, traffic), rel=1e-12)
    plain = parse_profile(section(**a2a), "p.toml", "vllm")  # no key: the peers' share only, as before
    assert comm_time(plain, "all_to_all", n, payload) == pytest.approx(hand(NCCL, n - 1, (n - 1) / n * payload),
                                                                      rel=1e-12)
    # s = 1 on a large payload: the bulk protocol moves the whole payload, whatever n
    bulk = (NCCL["simple_us"] + NCCL["latency_us"] + (n - 1) * NCCL["step_us"]) * 1e-6
    full = parse_profile(section(**a2a, all_to_all_self_share=1.0), "p.toml", "vllm")
    assert comm_time(full, "all_to_all", n, payload) - bulk == pytest.approx(
        payload / (LINK_GBPS * 1e9 * NCCL["simple_bandwidth"]), rel=1e-12)


def test_all_to_all_self_share_is_a_fraction():
    a2a = "\n".join(f"all_to_all_{k} = {v}" for k, v in NCCL.items())
    with pytest.raises(tensor_cast.errors.InvalidProfileError, match="all_to_all_self_share"):
        parse_profile(text(f"[efficiency.vllm]\n{a2a}\nall_to_all_self_share = 1.5"), "p.toml", "vllm")


def test_groups_spanning_nodes_and_unmeasured_collectives_keep_the_link_model():
    measured = parse_profile(section(), "p.toml", "vllm")
    plain = parse_profile(text(), "q.toml")
    for collective, n, nodes in (("reduce_scatter", 8, 1), ("send_recv", 2, 1)):
        assert comm_time(measured, collective, n, 2**24, nodes) == comm_time(plain, collective, n, 2**24, nodes)
    # a group spanning nodes: the link model plus the measured call's fixed cost t0 (latency_us)
    t0 = NCCL["latency_us"] * 1e-6
    assert comm_time(measured, "all_reduce", 16, 2**24, 2) == pytest.approx(t0 + comm_time(plain, "all_reduce", 16, 2**24, 2))


def test_fp8_kv_cache_uses_its_own_bandwidth_fraction():
    profile = parse_profile(text("[efficiency.vllm]\nattention_memory = 0.9\nattention_fp8kv_memory = 0.45"),
                            "p.toml", "vllm")
    batch, hq, hkv, d, context = 64, 32, 8, 128, 8191

    def decode(kv_dtype):
        q = torch.empty(batch, hq, 1, d, dtype=torch.bfloat16, device="meta")
        k = torch.empty(batch, hkv, 1, d, dtype=kv_dtype, device="meta")
        return tensor_cast.op_cost(torch.ops.tensor_cast.attention.default, q, k, k, context, 0.1, True, 0, None,
                                   device=profile)

    bf16, fp8 = decode(torch.bfloat16), decode(torch.float8_e4m3fn)
    # half the KV bytes at half the bandwidth fraction: the same KV streaming time
    kv_bf16 = 2 * batch * hkv * (context + 1) * d * 2
    assert bf16.memory_s == pytest.approx((bf16.bytes) / (2000e9 * 0.9), rel=1e-12)
    assert fp8.memory_s == pytest.approx(fp8.bytes / (2000e9 * 0.45), rel=1e-12)
    assert fp8.bytes < bf16.bytes and abs(fp8.bytes - kv_bf16 / 2) < 0.01 * kv_bf16


def test_attention_cta_floor_bounds_small_decodes():
    cta_us = 3.0
    profile = parse_profile(text(f"[efficiency.vllm]\nattention_cta_us = {cta_us}"), "p.toml", "vllm")
    batch, hq, hkv, d = 2048, 32, 8, 128  # 16384 (sequence, KV head) one-CTA items over 100 SMs: 163.84 each
    q = torch.empty(batch, hq, 1, d, dtype=torch.bfloat16, device="meta")
    k = torch.empty(batch, hkv, 1, d, dtype=torch.bfloat16, device="meta")
    cost = tensor_cast.op_cost(torch.ops.tensor_cast.attention.default, q, k, k, 3, 0.1, True, 0, None, device=profile)
    assert cost.memory_s == pytest.approx(batch * hkv / 100 * cta_us * 1e-6, rel=1e-12)


def test_gemm_variant_keys_override_the_kind_for_that_scheme_only():
    profile = parse_profile(text("[efficiency.vllm]\ngemm_compute = 0.7\ngemm_fp8_block_compute = 0.5"), "p.toml", "vllm")
    aic_tables, calibration_cases = benchmarks("aic_tables", "calibration_cases")
    IN_GRAPH = calibration_cases.IN_GRAPH
    from tensor_cast.backends.roofline import op_time

    m = n = k = 8192
    for variant, fraction in (("fp8", 0.7), ("fp8_block", 0.5)):
        linear = aic_tables.gemm_ops(m, n, k, variant)[-1]
        t = op_time(linear.counts, linear.kind, profile, IN_GRAPH)
        assert float(t.compute_s) == pytest.approx(2 * m * n * k / (800e12 * fraction), rel=1e-12), variant


# ---- fit recovery on synthetic data ------------------------------------------------------------------
@pytest.fixture(scope="module")
def aic():
    pytest.importorskip("scipy")
    return benchmarks("aic_fit", "aic_tables", "calibration_cases", "calibration_fit")


def test_fit_recovers_nccl_protocol_parameters(aic):
    aic_fit, aic_tables, cases_module, cf = aic
    truth = parse_profile(section(), "truth.toml", "vllm")
    cases = []
    for n in (2, 8):
        for elements in (2**e for e in range(8, 29, 2)):
            ops = tuple(aic_tables.collective_ops("all_reduce", n, elements, torch.bfloat16))
            row = cases_module.Row("nccl", "all_reduce", {"n": n, "elements": elements}, "half", 0.0)
            case = cases_module.Case(row=row, cls="nccl all_reduce", group=f"n{n}", stage="nccl all_reduce", ops=ops)
            cases.append(replace(case, row=replace(row, median_us=case.predict(truth) * 1e6)))
    stage = next(s for s in aic_fit.STAGES if s.name == "nccl all_reduce")
    start = parse_profile(text("[efficiency.vllm]\nmemory = 1.0"), "start.toml", "vllm")
    fitted = cf.fit_stage(stage, cases, start)
    for key, value in NCCL.items():
        assert fitted[f"efficiency.all_reduce_{key}"] == pytest.approx(value, rel=0.02, abs=0.05), key


def test_cta_floor_scales_its_head_dim_share():
    cta_us, share = 3.0, 0.5
    profile = parse_profile(text(f"[efficiency.vllm]\nattention_cta_us = {cta_us}\nattention_cta_dim_share = {share}"),
                            "p.toml", "vllm")
    batch, hq, hkv, d = 2048, 32, 8, 64  # 16384 items: 163.84 a SM, half the head_dim of the reference
    q = torch.empty(batch, hq, 1, d, dtype=torch.bfloat16, device="meta")
    k = torch.empty(batch, hkv, 1, d, dtype=torch.bfloat16, device="meta")
    cost = tensor_cast.op_cost(torch.ops.tensor_cast.attention.default, q, k, k, 3, 0.1, True, 0, None, device=profile)
    assert cost.memory_s == pytest.approx(163.84 * cta_us * (1 - share + share * 64 / 128) * 1e-6, rel=1e-12)


@pytest.mark.parametrize(("batch", "context", "blocks_per_cta"), [(1, 32767, 8), (1, 999, 1), (32, 32767, 86)])
def test_split_kv_decode_takes_fa3s_dynamic_split(batch, context, blocks_per_cta):
    """FlashAttention-3's dynamic split (flash_prepare_scheduler.cu) on 100 SMs, one KV head per sequence,
    n = ceil(keys / 128) blocks: blocks_per_sm = ceil(1.1 x items x n / 100), splits = clamp(ceil(n /
    blocks_per_sm), 1, 32), each CTA streaming its ceil(n / splits) blocks at attention_sm_gbps.
    One sequence over 32,768 keys: n = 256, blocks_per_sm = ceil(2.816) = 3, ceil(256 / 3) = 86 splits,
    capped at 32: 8 blocks a CTA. Over 1,000 keys: n = 8, blocks_per_sm = 1, 8 splits of one block. 32
    sequences over 32,768: blocks_per_sm = ceil(90.1) = 91, 3 splits of 86 blocks (96 CTAs, one wave)."""
    sm_gbps = 10.0
    profile = parse_profile(text(f"[efficiency.vllm]\nattention_sm_gbps = {sm_gbps}"), "p.toml", "vllm")
    q = torch.empty(batch, 8, 1, 128, dtype=torch.bfloat16, device="meta")
    k = torch.empty(batch, 1, 1, 128, dtype=torch.bfloat16, device="meta")
    cost = tensor_cast.op_cost(torch.ops.tensor_cast.attention.default, q, k, k, context, 0.1, True, 0, None,
                               device=profile)
    block_bytes = 128 * (128 + 128) * 2
    assert cost.memory_s == pytest.approx(blocks_per_cta * block_bytes / (sm_gbps * 1e9), rel=1e-12)


def test_a_decode_ctas_set_up_and_its_blocks_add_over_the_sms():
    """2,048 sequences x 8 KV heads over 4 keys: 16,384 one-block items, one split each (blocks_per_sm
    = ceil(1.1 x 16,384 / 100) = 181 > 1 block), 163.84 CTAs an SM on 100 SMs, each cta_us plus one
    64 KiB block at sm_gbps: 163.84 x (3 + 65,536 / 10 GB/s) = 163.84 x 9.5536 us. Fewer CTAs than SMs
    take one CTA's time (the split tests above)."""
    profile = parse_profile(text("[efficiency.vllm]\nattention_cta_us = 3.0\nattention_sm_gbps = 10.0"), "p.toml",
                            "vllm")
    q = torch.empty(2048, 32, 1, 128, dtype=torch.bfloat16, device="meta")
    k = torch.empty(2048, 8, 1, 128, dtype=torch.bfloat16, device="meta")
    cost = tensor_cast.op_cost(torch.ops.tensor_cast.attention.default, q, k, k, 3, 0.1, True, 0, None, device=profile)
    assert cost.memory_s == pytest.approx(163.84 * (3.0 + 65536 / 10e3) * 1e-6, rel=1e-12)


def test_a_window_past_its_start_reads_one_key_block_more_than_it_covers():
    """A 128-key window once the cache is longer: its first key falls inside a block, so the CTA walks
    ceil(127 / 128) + 1 = 2 blocks (the tables: 11.8 -> 13.3 us on H100 from 128 to 256 cached keys at
    B = 1, flat after); at 100 cached keys, 1 block. One sequence, one KV head, sm_gbps only."""
    profile = parse_profile(text("[efficiency.vllm]\nattention_sm_gbps = 10.0"), "p.toml", "vllm")
    q = torch.empty(1, 8, 1, 128, dtype=torch.bfloat16, device="meta")
    k = torch.empty(1, 1, 1, 128, dtype=torch.bfloat16, device="meta")
    for context, blocks in ((99, 1), (4095, 2)):
        cost = tensor_cast.op_cost(torch.ops.tensor_cast.attention.default, q, k, k, context, 0.1, True, 128, None,
                                   device=profile)
        # one item: blocks_per_sm = 1, one split per block, one block a CTA
        assert cost.memory_s == pytest.approx(65536 / 10e9, rel=1e-12), context
        shape = cost_shape(context)
        assert decode_tiles(shape, 128, 128, 100, 32).blocks == blocks, context


def cost_shape(context: int) -> AttentionShape:
    return AttentionShape(q_len=1, keys=context + 1, head_dim=128, v_dim=128, window=128, batch=1, kv_heads=1,
                          q_heads=8)


# ---- the shipped vllm sections -----------------------------------------------------------------------
FITTED = ("h100-sxm", "b200")


@pytest.mark.parametrize("name", FITTED)
def test_vllm_section_is_physically_sane(name):
    profile = load_device(name, "vllm")
    assert profile.engine == "vllm" and profile.engine_note == ""
    eff = profile.efficiency
    variants = [(v, p) for v, p in (("bf16", "bf16"), ("fp8", "fp8"), ("fp8_block", "fp8"))
                if f"gemm_{v}_compute" in eff]
    assert {"bf16", "fp8"} <= {v for v, _ in variants}
    for variant, precision in variants:
        peak, _ = profile.rate(precision)
        sustained = peak * eff[f"gemm_{variant}_compute"] * (1 + eff[f"gemm_{variant}_k_overhead"] / 8192)
        assert 0.3 * peak < sustained < peak, variant  # below the datasheet's dense peak
        assert eff[f"gemm_{variant}_latency_us"] > 0 and eff[f"gemm_{variant}_memory"] <= 1.0
    assert 0.5 < eff["attention_memory"] <= 1.0 and eff["attention_latency_us"] > 0 and eff["attention_cta_us"] > 0
    for collective in ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "custom_all_reduce"):
        assert eff[f"{collective}_latency_us"] > 1.0, collective  # a collective costs microseconds, not zero
        assert eff[f"{collective}_ll_bandwidth"] < eff[f"{collective}_simple_bandwidth"] <= 1.0, collective
    data = tomllib.loads(Path(profile.path if Path(profile.path).is_file() else
                              REPO / "backends" / "profiles" / Path(profile.path).name).read_text())
    for key in data["efficiency"]["vllm"]:
        assert f"efficiency.vllm.{key}" in data["sources"], key


def test_h200_vllm_section_is_the_h100_fit_marked_transferred():
    h100, h200 = load_device("h100-sxm", "vllm"), load_device("h200", "vllm")
    assert dict(h200.efficiency) == dict(h100.efficiency)
    assert all("transferred from h100-sxm" in h200.sources[f"efficiency.vllm.{k}"] for k in h200.efficiency)
    assert h200.memory_bandwidth_gbps > h100.memory_bandwidth_gbps  # its own bandwidth, same fractions


def test_collectives_no_longer_run_at_the_link_peak():
    """Llama-3.1-70B TP4 prefill all-reduce of 2048 tokens x 8192 x bf16 = 32 MiB: the link peak
    alone gives 2(n-1)/n x 32 MiB / 450 GB/s = 112 us; NCCL measures more (issue 8)."""
    payload = 2048 * 8192 * 2
    peak_only = 2 * 3 / 4 * payload / 450e9
    x = torch.empty(2048, 8192, dtype=torch.bfloat16, device="meta")
    cost = tensor_cast.op_cost(torch.ops.tensor_cast.all_reduce.default, x, 4, 1, "tp", device="h100-sxm")
    assert cost.time_s > 1.2 * peak_only


PREFILL_TRUTH = {"attention_prefill_compute": 0.65, "attention_prefill_latency_us": 8.0,
                 "attention_prefill_cta_us": 3.0, "attention_prefill_tail": 0.6, "attention_prefill_kv_ns": 0.4,
                 "attention_prefill_memory": 0.3, "attention_prefill_score_flops": 100.0}


def test_fit_recovers_the_tiled_prefill_parameters(aic):
    """Prefill rows made by a known section (PackGQA, 128-row tiles) over prompt lengths, batches,
    head configurations and windows: the prefill stage finds the section again."""
    aic_fit, aic_tables, cases_module, cf = aic
    fixed = {"attention_prefill_block": 128, "attention_prefill_pack_gqa": 1, "vector": 0.5}
    truth = parse_profile(text("[efficiency.vllm]\n" + "\n".join(
        f"{k} = {v}" for k, v in {**PREFILL_TRUTH, **fixed}.items())), "truth.toml", "vllm")
    cases = []
    for (hq, hkv, d), batch, isl, window in [
            (c, b, s, w) for c in ((32, 8, 128), (8, 8, 64), (64, 4, 128)) for b in (1, 8, 64)
            for s in (16, 128, 1000, 4096) for w in (0, 128)]:
        ops = tuple(aic_tables.attention_ops(batch, hq, hkv, d, isl, 0, window, "bf16"))
        row = cases_module.Row("attn", "prefill", {"B": batch, "isl": isl}, "bf16", 0.0)
        case = cases_module.Case(row=row, cls="attention prefill", group=f"hq{hq} hkv{hkv} d{d}",
                                 stage="attention prefill", ops=ops)
        cases.append(replace(case, row=replace(row, median_us=case.predict(truth) * 1e6)))
    stage = next(s for s in aic_fit.STAGES if s.name == "attention prefill")
    stage = replace(stage, fixed={**stage.fixed, "efficiency.attention_prefill_pack_gqa": 1})
    start = parse_profile(text("[efficiency.vllm]\nvector = 0.5"), "start.toml", "vllm")
    fitted = cf.fit_stage(stage, cases, start)
    for key, value in PREFILL_TRUTH.items():
        assert fitted[f"efficiency.{key}"] == pytest.approx(value, rel=0.02), key


def test_a_robust_loss_keeps_unflagged_glitches_from_pulling_the_fit(aic):
    """Synthetic NCCL rows from known parameters, two of the 22 (one large message per GPU count)
    timed 3x slow, glitches no rule flags: least squares drags the bulk protocol's bandwidth from its
    0.75 to ~0.51, soft L1 with a 10 % scale (the CUTLASS fp8 stage's loss) keeps it within 10 %."""
    aic_fit, aic_tables, cases_module, cf = aic
    truth = parse_profile(section(), "truth.toml", "vllm")
    cases = []
    for n in (2, 8):
        for i, elements in enumerate(2**e for e in range(8, 29, 2)):
            ops = tuple(aic_tables.collective_ops("all_reduce", n, elements, torch.bfloat16))
            row = cases_module.Row("nccl", "all_reduce", {"n": n, "elements": elements}, "half", 0.0)
            case = cases_module.Case(row=row, cls="nccl all_reduce", group=f"n{n}", stage="nccl all_reduce", ops=ops)
            glitch = 3.0 if (n, i) in ((2, 9), (8, 9)) else 1.0  # large messages: the bulk protocol's
            cases.append(replace(case, row=replace(row, median_us=case.predict(truth) * 1e6 * glitch)))
    stage = next(s for s in aic_fit.STAGES if s.name == "nccl all_reduce")
    start = parse_profile(text("[efficiency.vllm]\nmemory = 1.0"), "start.toml", "vllm")
    key = "efficiency.all_reduce_simple_bandwidth"
    squared = cf.fit_stage(stage, cases, start)[key]
    robust = cf.fit_stage(replace(stage, loss=aic_fit.FP8_LOSS, loss_scale=aic_fit.FP8_LOSS_SCALE), cases, start)[key]
    assert abs(squared / NCCL["simple_bandwidth"] - 1) > 0.25  # 0.51
    assert abs(robust / NCCL["simple_bandwidth"] - 1) < 0.1  # 0.70
    with pytest.raises(ValueError, match="loss must be one of linear, soft_l1"):
        replace(stage, loss="l1")


def test_isolated_gemm_rows_are_marked_kept_out_of_the_fit_and_reported_apart(aic, tmp_path, monkeypatch):
    """A row more than 1.8x off both of its M neighbours (one neighbour at an end of the sweep) is a
    measurement glitch (at an end of the sweep: off its two nearest): marked, never fitted, and the error
    table gives the held-out mean without it.
    A real step (2x from one neighbour, level with the other) is kept."""
    import csv
    import gzip

    aic_fit, aic_tables, _, _ = aic
    sweeps = {  # (N, K) -> latency in ms by M
        (512, 1024): {1: 0.020, 2: 0.006, 4: 0.0062, 8: 0.0064},  # M = 1: 3.3x its two nearest
        (768, 768): {1: 0.006, 2: 0.0061, 4: 0.0030, 8: 0.0063},  # M = 4: 2.0x / 2.1x below both; M = 8 (an end) level with M = 2
        (1024, 1024): {1: 0.006, 2: 0.006, 4: 0.012, 8: 0.0125},  # M = 4: a step, level with M = 8
    }
    rows = [{"framework": "VLLM", "version": "0.24.0", "device": "B200", "op_name": "gemm",
             "kernel_source": "CutlassFP8ScaledMMLinearKernel", "gemm_dtype": "fp8", "m": m, "n": n, "k": k,
             "latency": latency} for (n, k), by_m in sweeps.items() for m, latency in by_m.items()]
    with gzip.open(tmp_path / "gemm_perf.csv.gz", "wt", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert aic_tables.isolated_gemm_rows(aic_tables.read_table(tmp_path, "gemm_perf")) == {
        ("CutlassFP8ScaledMMLinearKernel", "fp8", 1, 512, 1024), ("CutlassFP8ScaledMMLinearKernel", "fp8", 4, 768, 768)}
    cases = aic_tables.gemm_cases(tmp_path, per_variant=len(rows))
    marked = {(c.row.params["M"], c.row.params["N"]) for c in cases if aic_fit.isolated(c)}
    assert marked == {(1, 512), (4, 768)}
    seen = []
    monkeypatch.setattr(aic_fit.cf, "fit_stage", lambda stage, used, profile: seen.extend(used) or {})
    aic_fit.fit_engine(cases, load_device("b200", "vllm"), "test", stages=[aic_fit.STAGES[1]])
    assert seen and {id(c) for c in seen} == {id(c) for c in cases if not aic_fit.isolated(c)
                                               and not aic_fit.held_out(c)}
    # every case counted as held out: the clean mean leaves the two isolated rows out
    everything_held = [replace(c, stage=aic_tables.NOT_FITTED) for c in cases]
    profile = load_device("b200", "vllm")
    errors = aic_fit.class_errors(everything_held, profile, key=lambda c: "all")
    assert errors[0].isolated_n == 2 and errors[0].held_n == len(rows) == 12
    pct = [abs(aic_fit.predict(c, profile) / c.measured_s - 1) * 100 for c in everything_held if not aic_fit.isolated(c)]
    assert errors[0].held_clean_mean == pytest.approx(sum(pct) / len(pct))


def test_quantization_bound_rows_are_the_small_n_large_m_cutlass_fp8_rows(aic, tmp_path, monkeypatch):
    """Every CUTLASS fp8 row with N <= 128 at M = 8,192 or 16,384 (the GEMM ~10% of the row, the
    per-tensor quantization the rest) is reported as its own class, evaluation only: never fitted,
    every row in the held-out column; isolated rows, another kernel, a wider N, M = 32,768 left out."""
    import csv
    import gzip

    aic_fit, aic_tables, _, _ = aic
    kept = {(8192, 32, 65536), (16384, 128, 2048), (8192, 128, 4096)}
    rows = [(m, n, k, "CutlassFP8ScaledMMLinearKernel", "fp8") for m, n, k in kept]
    rows += [(8192, 256, 4096, "CutlassFP8ScaledMMLinearKernel", "fp8"),  # N too wide: the GEMM's time
             (32768, 32, 4096, "CutlassFP8ScaledMMLinearKernel", "fp8"),  # M = 32,768: left out
             (4096, 32, 4096, "CutlassFP8ScaledMMLinearKernel", "fp8"),  # M too small
             (8192, 32, 4096, "DeepGemmFp8BlockScaledMMKernel", "fp8_block")]  # another kernel
    table = [{"framework": "VLLM", "version": "0.24.0", "device": "B200", "op_name": "gemm", "kernel_source": kernel,
              "gemm_dtype": dtype, "m": m, "n": n, "k": k, "latency": 0.1} for m, n, k, kernel, dtype in rows]
    with gzip.open(tmp_path / "gemm_perf.csv.gz", "wt", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    read = aic_tables.read_table(tmp_path, "gemm_perf")
    cases = aic_tables.quant_bound_cases(read, set())
    assert {(c.row.params["M"], c.row.params["N"], c.row.params["K"]) for c in cases} == kept
    assert all(c.stage == aic_tables.NOT_FITTED and aic_fit.held_out(c) for c in cases)
    isolated = {("CutlassFP8ScaledMMLinearKernel", "fp8", 8192, 32, 65536)}
    assert len(aic_tables.quant_bound_cases(read, isolated)) == 2
    # in the gemm family's cases, beside (not instead of) the sampled rows; never handed to a stage
    every = aic_tables.gemm_cases(tmp_path, per_variant=len(rows))
    assert sum(c.cls == aic_tables.QUANT_BOUND_CLASS for c in every) == 3
    assert sum(c.stage == "gemm fp8" for c in every) == 6
    seen = []
    monkeypatch.setattr(aic_fit.cf, "fit_stage", lambda stage, used, profile: seen.extend(used) or {})
    aic_fit.fit_engine(every, load_device("b200", "vllm"), "test")
    assert seen and not any(c.cls == aic_tables.QUANT_BOUND_CLASS for c in seen)


# ---- block-FP8 GEMMs (DeepGEMM) inside a CUDA graph -------------------------------------------------
def test_fp8_block_gpu_fixed_costs_are_set_not_fitted():
    # the tables' small-M fp8_block rows sit on the eager host floor, so the stage sets the GPU-side
    # fixed cost and split-K term instead of fitting them (aic_fit.py, the fp8_block stage)
    aic_fit, cf = benchmarks("aic_fit", "calibration_fit")
    stage = next(s for s in aic_fit.STAGES if s.name == "gemm fp8_block")
    fitted = {p.key for p in stage.params}
    for key, value in (("efficiency.gemm_fp8_block_latency_us", aic_fit.FP8_BLOCK_GPU_LATENCY_US),
                       ("efficiency.gemm_fp8_block_splitk_us", 0.0)):
        assert key not in fitted and stage.fixed[key] == value
    assert "efficiency.gemm_fp8_block_compute" in fitted  # the rest of the stage is still fitted
    for name in FITTED:
        eff = load_device(name, "vllm").efficiency
        assert eff["gemm_fp8_block_latency_us"] == aic_fit.FP8_BLOCK_GPU_LATENCY_US
        assert eff["gemm_fp8_block_splitk_us"] == 0.0


def test_block_fp8_decode_gemm_in_a_graph_is_near_deepgemms_published_time():
    # DeepGEMM README (Feb 2025), H800 (H100's die and HBM): M x N x K = 64 x 2112 x 7168 at 206 TFLOPS
    aic_tables, calibration_cases = benchmarks("aic_tables", "calibration_cases")
    from tensor_cast.backends.roofline import ExecutionMode, op_time

    profile = load_device("h100-sxm", "vllm")
    m, n, k = 64, 2112, 7168
    published = 2 * m * n * k / 206e12  # 9.40 us
    linear = aic_tables.gemm_ops(m, n, k, "fp8_block")[-1]
    graph = float(op_time(linear.counts, linear.kind, profile, calibration_cases.IN_GRAPH).time_s)
    assert 0.9 * published < graph < 1.35 * published
    # an eager call still waits for DeepGEMM's host-side launcher (the tables' floor)
    eager = float(op_time(linear.counts, linear.kind, profile, ExecutionMode("never")).time_s)
    assert eager == pytest.approx(profile.efficiency["gemm_fp8_block_call_floor_us"] * 1e-6)
    # a decode-size projection (Qwen3-235B q/k/v at TP4: M 4, N 2304, K 4096) is weight-streaming bound:
    # its 9.4 MB of fp8 weights at the fitted HBM fraction plus the graph-replayed fixed costs
    m, n, k = 4, 2304, 4096
    linear = aic_tables.gemm_ops(m, n, k, "fp8_block")[-1]
    graph = float(op_time(linear.counts, linear.kind, profile, calibration_cases.IN_GRAPH).time_s)
    stream = n * k / (profile.memory_bandwidth_gbps * 1e9 * profile.efficiency["gemm_fp8_block_memory"])
    assert stream < graph < stream + 5e-6


def test_moe_rows_of_a_flag_selected_kernel_are_evaluated_with_its_scheme(aic, tmp_path):
    """A MoE table's rows of a kernel only a launch flag selects (Marlin for MXFP4 experts,
    VLLM_MXFP4_USE_MARLIN=1) become evaluated-only cases costed with its scheme (mxfp4_marlin), beside
    the default kernel's fitted cases (OAI Triton for w4a16_mxfp4 on Hopper); the fit never sees them."""
    import csv
    import gzip

    _, aic_tables, _, _ = aic
    kernels = {"vllm_gptossmxfp4moe_triton_oaitritonmxfp4expertsmonolithic": (2880, 2880, 128, 4),
               "vllm_compressedtensorsw4a4mxfp4moe_marlin_marlinexperts": (3584, 3072, 896, 16)}
    rows = [{"framework": "VLLM", "version": "0.24.0", "device": "H100", "op_name": "moe", "kernel_source": source,
             "moe_dtype": "w4a16_mxfp4", "num_tokens": t, "hidden_size": h, "inter_size": i, "topk": k,
             "num_experts": e, "moe_tp_size": 1, "moe_ep_size": 1, "distribution": "balanced", "latency": 0.1}
            for source, (h, i, e, k) in kernels.items() for t in (16, 256)]
    with gzip.open(tmp_path / "moe_perf.csv.gz", "wt", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cases = aic_tables.moe_cases(tmp_path)
    flagged = [c for c in cases if "marlin" in c.row.name]
    default = [c for c in cases if "oaitriton" in c.row.name]
    assert len(flagged) == len(default) == 2
    assert {c.stage for c in flagged} == {aic_tables.NOT_FITTED} and {c.stage for c in default} == {"moe mxfp4"}
    assert {c.cls for c in flagged} == {"moe w4a16_mxfp4 on marlin (mxfp4_marlin; evaluated only)"}
    assert {c.ops[0].counts.kernel.variant for c in flagged} == {"mxfp4_marlin"}
    assert {c.ops[0].counts.kernel.variant for c in default} == {"mxfp4"}
