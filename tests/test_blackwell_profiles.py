"""The B300, GB200 and GB300 profiles: every peak is the datasheet's (derived here from NVIDIA's
8-GPU, per-superchip or per-rack figure, named beside it), their efficiency sections are B200's
and say so key by key, and an NVL72 rack is one NVLink domain: a 16-GPU collective on GB200 /
GB300 runs over NVLink, where on HGX B200 / B300 it crosses the inter-node network."""

from __future__ import annotations

import pytest

import tensor_cast
from tensor_cast.backends.communication import collective_time_s
from tensor_cast.backends.counts import CommInfo, Counts
from tensor_cast.deployment import Deployment, resolve

NEW = ("b300", "gb200", "gb300")
KEYS = ("fp64_tflops", "fp32_tflops", "tf32_tflops", "bf16_tflops", "fp16_tflops", "fp8_tflops", "int8_tops",
        "fp4_tflops")

# Dense peaks in TFLOP/s (TOP/s for INT8): the published figure, divided by the GPUs it covers;
# tensor figures published "with sparsity" are halved, FP4 figures published dense are not.
PEAKS = {
    # NVIDIA HGX platform specifications, HGX B300 (8 GPUs): FP64 10 TF, FP32 600 TF, TF32 18 PF*, FP16/BF16
    # 36 PF*, FP8 72 PF*, INT8 3 POPS*, FP4 108 PF dense (* with sparsity)
    "b300": (10 / 8, 600 / 8, 18_000 / 8 / 2, 36_000 / 8 / 2, 36_000 / 8 / 2, 72_000 / 8 / 2, 3_000 / 8 / 2,
             108_000 / 8),
    # NVIDIA GB200 NVL72 specifications, per GB200 superchip (2 GPUs): FP64 80 TF, FP32 160 TF, TF32 5 PF*,
    # FP16/BF16 10 PF*, FP8 20 PF*, INT8 20 POPS*, FP4 40 PF*
    "gb200": (80 / 2, 160 / 2, 5_000 / 2 / 2, 10_000 / 2 / 2, 10_000 / 2 / 2, 20_000 / 2 / 2, 20_000 / 2 / 2,
              40_000 / 2 / 2),
    # NVIDIA GB300 NVL72 specifications (72 GPUs): FP64 100 TF, FP32 6 PF, TF32 180 PF*, FP16/BF16 360 PF*,
    # FP8 720 PF*, INT8 24 POPS*, FP4 1,080 PF dense
    "gb300": (100 / 72, 6_000 / 72, 180_000 / 72 / 2, 360_000 / 72 / 2, 360_000 / 72 / 2, 720_000 / 72 / 2,
              24_000 / 72 / 2, 1_080_000 / 72),
}
# HBM per GPU (GB) and bandwidth (GB/s): HGX B300 exposes 270 GB of its 288 GB (NVIDIA Blackwell technical brief
# v2.1 Table 3; MLPerf's B300-SXM-270GB), 8 TB/s per GPU; GB200 372 GB and 16 TB/s per superchip of 2; GB300 288 GB
# per GPU (MLPerf's GB300-288GB), 576 TB/s per 72 GPUs
MEMORY = {"b300": (270, 8000), "gb200": (372 / 2, 16_000 / 2), "gb300": (288, 576_000 / 72)}
# Blackwell Ultra doubles Blackwell's SFU exponential throughput (NVIDIA, 'Inside NVIDIA Blackwell Ultra' Table 2:
# 10.7 vs 5 TeraExponentials/s); its tensor-core rate per clock is Blackwell's, so the softmax share of a
# prefill attention tile, in tensor-FLOP equivalents, is half B200's on b300 / gb300 and B200's own on gb200
SFU_SPEEDUP = {"b300": 2.0, "gb200": 1.0, "gb300": 2.0}
SOFTMAX_KEYS = ("attention_prefill_score_flops", "attention_fp8kv_prefill_score_flops")
# GPUs one NVLink domain joins: HGX 8; NVL72 72
DOMAIN = {"b300": 8, "gb200": 72, "gb300": 72}
NVLINK5_GBPS = 1800 / 2  # fifth-generation NVLink: 1.8 TB/s per GPU, bidirectional


@pytest.mark.parametrize("name", NEW)
def test_peaks_are_the_datasheet_figures(name):
    p = tensor_cast.load_device(name)
    for key, expected in zip(KEYS, PEAKS[name], strict=True):
        assert p.compute[key] == pytest.approx(expected, rel=2e-3), (name, key)  # profiles round to 0.1 TF
    capacity, bandwidth = MEMORY[name]
    assert (p.memory_capacity_gib, p.memory_bandwidth_gbps) == (pytest.approx(capacity), pytest.approx(bandwidth))
    assert p.interconnect.gpus_per_node == DOMAIN[name]
    assert p.interconnect.intra_node_bandwidth_gbps == NVLINK5_GBPS


def test_blackwell_ultra_trades_int8_and_fp64_for_fp4():
    b200, b300, gb200, gb300 = (tensor_cast.load_device(n) for n in ("b200", "b300", "gb200", "gb300"))
    assert b300.compute["fp4_tflops"] == 1.5 * b200.compute["fp4_tflops"]  # 108 vs 72 PF dense per 8 GPUs
    assert gb300.compute["fp4_tflops"] == 1.5 * gb200.compute["fp4_tflops"]  # 1.1 EF vs 720 PF dense per rack
    for ultra in (b300, gb300):
        assert ultra.compute["int8_tops"] < ultra.compute["bf16_tflops"] / 10
        assert ultra.compute["fp64_tflops"] < 2
        assert ultra.rate("int8") == (ultra.compute["int8_tops"] * 1e12, "int8")  # cut, not absent: no fallback
    # GB200 is the B200 die at higher power: every tensor rate 2.5/2.25 = 1.11x HGX B200's
    for key in ("bf16_tflops", "fp8_tflops", "fp4_tflops", "tf32_tflops"):
        assert gb200.compute[key] == pytest.approx(b200.compute[key] * 2.5 / 2.25, rel=1e-3), key


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("engine", ("vllm", "torch"))
def test_efficiency_sections_are_b200s_marked_transferred(name, engine):
    p, b200 = tensor_cast.load_device(name, engine), tensor_cast.load_device("b200", engine)
    assert p.engine == engine and p.efficiency and set(p.efficiency) == set(b200.efficiency)
    for key in p.efficiency:
        source = p.sources[f"efficiency.{engine}.{key}"]
        assert source.startswith("transferred from b200 ("), (key, source)
        assert f"unvalidated on {name}" in source
        if key in SOFTMAX_KEYS and SFU_SPEEDUP[name] != 1.0:
            assert p.efficiency[key] == pytest.approx(b200.efficiency[key] / SFU_SPEEDUP[name], rel=2e-3), key
            assert "x 0.5" in source and "MUFU.EX2" in source, source
        else:
            assert p.efficiency[key] == b200.efficiency[key], key
    assert (p.kernel_launch_us, p.graph_kernel_us) == (b200.kernel_launch_us, b200.graph_kernel_us)


@pytest.fixture(scope="module")
def llama8b():
    return tensor_cast.load_model("meta-llama/Llama-3.1-8B")


@pytest.mark.parametrize(("name", "nodes"), [("gb200", 1), ("gb300", 1), ("b200", 2), ("b300", 2)])
def test_a_tp16_group_stays_in_one_nvlink_domain_only_on_nvl72(llama8b, name, nodes):
    d = resolve(Deployment(tp=16), llama8b, tensor_cast.load_device(name))
    assert (d.nodes, d.tp_nodes) == (nodes, nodes)


def test_16_gpu_all_reduce_costs_nvlink_time_on_gb200_and_network_time_on_b200():
    # the torch sections have no measured protocols: the alpha-beta ring / tree model over the link
    gb200, b200 = tensor_cast.load_device("gb200", "torch"), tensor_cast.load_device("b200", "torch")
    n, payload = 16, 256 * 2**20  # bytes per rank: large enough that the ring beats the tree

    def all_reduce(profile, nodes):
        return collective_time_s(Counts(comm=CommInfo("all_reduce", n, payload, nodes=nodes)), profile)

    # by hand: ring all-reduce = 2(n-1) steps of latency + 2(n-1)/n of the payload over the link
    nvlink = 2 * (n - 1) * 0.5e-6 + 2 * (n - 1) / n * payload / (900 * 1e9)  # NVLink5 900 GB/s, NCCL 0.5 us
    # two HGX nodes: NCCL's ring crosses the network on 1 step per pass (2.7 us), the other 14 steps
    # cost the NVLink step at least NCCL's 1 us network post overhead (tuning.cc)
    network = 2 * (14 * max(0.5e-6, 1e-6) + 2.7e-6) + 2 * (n - 1) / n * payload / (50 * 1e9)  # 400 Gb/s NDR NIC
    assert all_reduce(gb200, 1) == pytest.approx(nvlink, rel=1e-9)
    assert all_reduce(b200, 2) == pytest.approx(network, rel=1e-9)
    assert network / nvlink > 15  # 900 / 50 GB/s, less the latency terms

    # under vLLM the fitted NCCL protocols apply to the whole rack: never faster than the NVLink peak,
    # and far below the time the same bytes take on one 400 Gb/s NIC
    vllm = tensor_cast.load_device("gb200", "vllm")
    measured = all_reduce(vllm, 1)
    floor = 2 * (n - 1) / n * payload / (900 * 1e9)
    assert floor < measured < floor / vllm.efficiency["all_reduce_simple_bandwidth"] + 1e-3
    assert measured < 2 * (n - 1) / n * payload / (50 * 1e9) / 5


def test_devices_cli_lists_them_with_transferred_sections_starred(capsys):
    from tensor_cast.cli import main

    assert main(["devices"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:] if line.strip()}
    for name in NEW:
        assert "vllm*, torch*" in rows[name], rows[name]
    assert "vllm, torch*" in rows["b200"]  # fitted on AIConfigurator's B200 tables; torch from H100
    assert "vllm, torch " in rows["h100-sxm"]  # both fitted on H100 measurements
    assert "2500" in rows["gb200"] and "270" in rows["b300"] and "288" in rows["gb300"]
