"""Device profiles: every built-in profile loads, obeys sanity relations taken from public facts,
carries the datasheet numbers it cites; the validator rejects bad files with messages naming the
key and the accepted values; users can load their own file; the CLI lists and rejects devices."""

from __future__ import annotations

import re

import pytest
import torch
from profile_text import profile_head

import tensor_cast
from tensor_cast.backends.counts import Counts
from tensor_cast.backends.device import (
    INTER_NODE_LINKS,
    INTRA_NODE_LINKS,
    Interconnect,
    builtin_profiles,
    device_names,
    load_device,
    parse_profile,
)
from tensor_cast.backends.kernels import GemmShape
from tensor_cast.backends.roofline import ExecutionMode, op_time
from tensor_cast.cli import main
from tensor_cast.errors import InvalidProfileError, UnknownDeviceError

BUILTIN = ("a100-80gb-sxm", "ascend-910b", "atlas-a3", "b200", "b300", "gb200", "gb300", "h100-nvl", "h100-sxm", "h20",
           "h200", "l4", "l40s", "mi300x", "mi325x", "mi355x", "rtx-pro-6000")


def profiles():
    return [load_device(name) for name in BUILTIN]


def test_every_builtin_profile_loads():
    assert device_names() == sorted(BUILTIN)
    for profile in profiles():
        assert profile.interconnect is not None, profile.name
        assert profile.path.endswith(".toml")


# --- sanity relations (public facts about tensor-core / cube units) -------------------------------

@pytest.mark.parametrize("name", BUILTIN)
def test_sanity_relations(name):
    p = load_device(name)
    c = p.compute
    assert c["fp16_tflops"] == c["bf16_tflops"]  # every listed device runs FP16 and BF16 at one rate
    assert c["bf16_tflops"] > 0
    if c["fp8_tflops"] > 0:
        assert c["fp8_tflops"] >= c["bf16_tflops"]
    if c["int8_tops"] > 0 and p.architecture != "blackwell-ultra":  # Blackwell Ultra cut INT8 to ~1/12 of BF16
        assert c["int8_tops"] >= c["bf16_tflops"]
    if c["fp4_tflops"] > 0:
        assert c["fp4_tflops"] >= c["fp8_tflops"] > 0
    if p.vendor == "nvidia":
        # TF32 tensor cores run at half the BF16 rate (the L40S datasheet rounds 181 up to 183)
        assert c["tf32_tflops"] == pytest.approx(c["bf16_tflops"] / 2, rel=0.02)
    assert c["fp32_tflops"] > 0
    assert p.memory_bandwidth_gbps > 0 and p.memory_capacity_gib > 0
    assert p.compute_units > 0
    link = p.interconnect
    assert link.gpus_per_node >= 1
    assert link.intra_node in INTRA_NODE_LINKS and link.inter_node in INTER_NODE_LINKS
    assert link.intra_node_bandwidth_gbps >= link.inter_node_bandwidth_gbps > 0
    assert link.intra_node_latency_us <= link.inter_node_latency_us


@pytest.mark.parametrize("name", BUILTIN)
def test_every_section_has_a_source(name):
    p = load_device(name)
    sections = ["compute", "memory", "chip", "overhead"]
    sections += ["efficiency"] if p.efficiency else []
    sections += ["interconnect"] if p.interconnect else []
    for section in sections:
        assert any(k == section or k.startswith(section + ".") for k in p.sources), (name, section)
    for key, text in p.sources.items():
        assert len(text) > 20, (name, key)


def test_precision_the_device_lacks_is_zero():
    assert load_device("a100-80gb-sxm").compute["fp8_tflops"] == 0  # Ampere: no FP8 tensor cores
    for name in ("a100-80gb-sxm", "h100-sxm", "h100-nvl", "h20", "h200", "mi300x", "mi325x", "l40s", "l4", "ascend-910b",
                 "atlas-a3"):
        assert load_device(name).compute["fp4_tflops"] == 0, name  # FP4 starts with Blackwell (NVIDIA), CDNA 4 (AMD)
    assert load_device("mi355x").compute["tf32_tflops"] == 0  # CDNA 4: no native TF32 (hipBLASLt emulates it with BF16)
    assert load_device("mi355x").rate("tf32") == (157.3e12, "fp32")
    for name in ("ascend-910b", "atlas-a3"):
        assert load_device(name).compute["fp8_tflops"] == 0, name  # FP8 starts with Ascend 950


# Dense BF16 peak (TFLOP/s), HBM bandwidth (GB/s) and intra-node bandwidth per direction (GB/s), each
# from the public figure named in the comment: sparse tensor figures are halved, bidirectional
# link figures are halved, system totals are divided by the GPU count.
DATASHEET = {
    # NVIDIA H100 datasheet, SXM5: BF16 1,979 TFLOPS with sparsity (989.4 dense in the Hopper
    # whitepaper), 3.35 TB/s HBM3, NVLink 900 GB/s
    "h100-sxm": (989.4, 3350, 900 / 2),
    # NVIDIA H200 datasheet, SXM: same tensor rates as H100 SXM, 4.8 TB/s HBM3e, NVLink 900 GB/s
    "h200": (989.4, 4800, 900 / 2),
    # NVIDIA HGX B200 (8 GPUs): FP16/BF16 36 PFLOPS with sparsity, 64 TB/s HBM3e, NVLink 1.8 TB/s per GPU
    "b200": (36_000 / 8 / 2, 64_000 / 8, 1800 / 2),
    # NVIDIA HGX B300 (8 GPUs): FP16/BF16 36 PFLOPS with sparsity, 8 TB/s HBM3e per GPU, NVLink 1.8 TB/s per GPU
    "b300": (36_000 / 8 / 2, 8000, 1800 / 2),
    # NVIDIA GB200 NVL72 (per superchip of 2 GPUs): FP16/BF16 10 PFLOPS with sparsity, 16 TB/s HBM3e, NVLink 3.6 TB/s
    "gb200": (10_000 / 2 / 2, 16_000 / 2, 3600 / 2 / 2),
    # NVIDIA GB300 NVL72 (72 GPUs): FP16/BF16 360 PFLOPS with sparsity, 576 TB/s HBM3e, NVLink 130 TB/s (rounded
    # from 72 x 1.8)
    "gb300": (360_000 / 72 / 2, 576_000 / 72, 1800 / 2),
    # NVIDIA A100 datasheet, 80GB SXM: BF16 312 TFLOPS (624 with sparsity), 2,039 GB/s, NVLink 600 GB/s
    "a100-80gb-sxm": (312, 2039, 600 / 2),
    # AMD MI300X data sheet: BF16 1,307.4 TFLOPS dense, 5.3 TB/s HBM3, 7 Infinity Fabric links x 128 GB/s
    "mi300x": (1307.4, 5300, 7 * 128 / 2),
    # NVIDIA L40S datasheet: BF16 362.05 TFLOPS (733 with sparsity), 864 GB/s GDDR6, PCIe Gen4 x16 64 GB/s
    "l40s": (362.05, 864, 64 / 2),
    # NVIDIA H100 datasheet, H100 NVL: BF16 1,671 TFLOPS with sparsity, 3.9 TB/s HBM3, NVLink bridge 600 GB/s (a pair)
    "h100-nvl": (1671 / 2, 3900, 600 / 2),
    # Press-reported H20 spec table (Tom's Hardware; no NVIDIA datasheet): BF16 148 TFLOPS dense, 4.0 TB/s HBM3,
    # NVLink 900 GB/s
    "h20": (148, 4000, 900 / 2),
    # AMD MI325X data sheet: BF16 1,307.4 TFLOPS dense (MI300X's), 6 TB/s HBM3E, 7 Infinity Fabric links x 128 GB/s
    "mi325x": (1307.4, 6000, 7 * 128 / 2),
    # AMD MI355X brochure: BF16 5,033.2 TFLOPS with sparsity, 8 TB/s HBM3E, 7 Infinity Fabric links x 153.6 GB/s
    "mi355x": (5033.2 / 2, 8000, 7 * 153.6 / 2),
    # NVIDIA RTX PRO 6000 Blackwell Server Edition page: FP16/BF16 1 PFLOPS with sparsity, 1,597 GB/s GDDR7,
    # PCIe Gen5 x16 128 GB/s
    "rtx-pro-6000": (1000 / 2, 1597, 128 / 2),
    # NVIDIA L4 datasheet: BF16 242 TFLOPS with sparsity, 300 GB/s GDDR6, PCIe Gen4 x16 64 GB/s
    "l4": (242 / 2, 300, 64 / 2),
    # Huawei CloudMatrix384 paper (arXiv 2506.12708): 910C = 2 dies, 752 TFLOPS BF16, 3.2 TB/s; the 910B2
    # is one such die; HCCS 392 GB/s bidirectional per NPU (Atlas 800T A2)
    "ascend-910b": (752 / 2, 3200 / 2, 392 / 2),
    # Same paper, per die of a 910C package: 752/2 TFLOPS, 3.2/2 TB/s, UB 392 GB/s unidirectional / 2 dies
    "atlas-a3": (752 / 2, 3200 / 2, 392 / 2),
}


@pytest.mark.parametrize("name", BUILTIN)
def test_datasheet_numbers(name):
    bf16, hbm, intra = DATASHEET[name]
    p = load_device(name)
    assert p.compute["bf16_tflops"] == pytest.approx(bf16, rel=1e-9)
    assert p.memory_bandwidth_gbps == pytest.approx(hbm, rel=1e-9)
    assert p.interconnect.intra_node_bandwidth_gbps == pytest.approx(intra, rel=1e-9)


def test_inter_node_bandwidth_is_one_nic_per_gpu():
    # 400 Gb/s NDR (H100/H200/H20/B200/GB200/MI300X/MI325X), 400 Gb/s Pollara (MI355X), 800 Gb/s ConnectX-8
    # (B300/GB300), 200 Gb/s HDR (A100), 200 Gb/s RoCE for PCIe cards (L40S, L4, H100 NVL, RTX PRO 6000): bits / 8 = bytes
    for name, gbit in (("h100-sxm", 400), ("h200", 400), ("h20", 400), ("b200", 400), ("gb200", 400), ("b300", 800),
                       ("gb300", 800), ("mi300x", 400), ("mi325x", 400), ("mi355x", 400), ("a100-80gb-sxm", 200),
                       ("l40s", 200), ("l4", 200), ("h100-nvl", 200), ("rtx-pro-6000", 200)):
        assert load_device(name).interconnect.inter_node_bandwidth_gbps == gbit / 8, name


def test_aliases_are_case_insensitive():
    assert load_device("A100-SXM4-80GB") is load_device("a100-80gb-sxm")
    assert load_device("a100") is load_device("a100-80gb-sxm")
    assert load_device(" H200 ") is load_device("h200")
    assert load_device("Ascend-910C").name == "atlas-a3"
    assert load_device("910B").name == "ascend-910b"
    assert load_device("H100NVL").name == "h100-nvl" and load_device("RTX6000-PRO").name == "rtx-pro-6000"
    names = set()
    for p in profiles():
        for key in (p.name, *p.aliases):
            assert key.lower() not in names  # an alias never shadows another device
            names.add(key.lower())


# --- rate() fallback ---------------------------------------------------------------------------

def test_rate_falls_back_explicitly():
    a100 = load_device("a100-80gb-sxm")
    assert a100.rate("fp8") == (312e12, "bf16")
    assert a100.rate("fp4") == (312e12, "bf16")  # fp4 -> fp8 (0) -> bf16
    assert a100.rate("int8") == (624e12, "int8")
    h100 = load_device("h100-sxm")
    assert h100.rate("fp8") == (1978.9e12, "fp8")
    assert h100.rate("fp4") == (1978.9e12, "fp8")
    assert load_device("atlas-a3").rate("fp8") == (376e12, "bf16")
    assert load_device("ascend-910b").rate("tf32") == (11.1e12, "fp32")  # no tf32 key: vector fp32 rate


def test_roofline_reports_the_fallback():
    flops = 2 * 8192 * 8192 * 8192  # the GEMM the measured ceilings are taken at
    a100, h100 = load_device("a100", "torch"), load_device("h100-sxm", "torch")  # the harness's measured ceilings
    square = GemmShape(1, 8192, 8192, 8192)
    fp8 = Counts(flops={"fp8": flops}, launches=0, kernel=square)
    bf16 = Counts(flops={"bf16": flops}, launches=0, kernel=square)
    on_a100 = op_time(fp8, "gemm", a100, ExecutionMode("never"))
    assert on_a100.fallbacks == ("fp8->bf16",)
    # FP8 work on A100 costs exactly what BF16 work costs there ...
    assert on_a100.compute_s == pytest.approx(op_time(bf16, "gemm", a100).compute_s, rel=1e-12)
    # ... never faster than A100's datasheet BF16 peak (312 TFLOP/s dense) ...
    assert on_a100.compute_s >= flops / 312e12
    # ... while H100 runs it at its own FP8 rate: faster than its BF16, bounded by the datasheet
    # peaks (1978.9 dense FP8, 989.4 dense BF16 TFLOP/s), at most twice as fast as BF16
    on_h100 = op_time(fp8, "gemm", h100, ExecutionMode("never"))
    h100_bf16 = op_time(bf16, "gemm", h100).compute_s
    assert on_h100.fallbacks == ()
    assert flops / 1978.9e12 <= on_h100.compute_s < h100_bf16 <= 2 * on_h100.compute_s
    assert h100_bf16 >= flops / 989.4e12


# --- interconnect ------------------------------------------------------------------------------

def test_interconnect_levels():
    link = load_device("h100-sxm").interconnect
    assert isinstance(link, Interconnect)
    assert link.intra.name == "nvlink4" and link.inter.name == "infiniband-ndr"
    assert not link.spans_nodes(8) and link.spans_nodes(16)
    assert load_device("atlas-a3").interconnect.spans_nodes(16) is False  # 16 dies per Atlas 800 A3
    with pytest.raises(ValueError, match="group_size"):
        link.spans_nodes(0)


# --- validator ---------------------------------------------------------------------------------

BASE = profile_head("my-gpu", "My GPU", bandwidth_gbps=3000.0, header_extra='aliases = ["mine"]\n') + """
[interconnect]
gpus_per_node = 4
intra_node = "nvlink4"
intra_node_bandwidth_gbps = 200.0
intra_node_latency_us = 0.5
inter_node = "roce"
inter_node_bandwidth_gbps = 25.0
inter_node_latency_us = 3.0

[sources]
compute = "the vendor's datasheet"
memory = "the vendor's datasheet"
chip = "the vendor's datasheet"
overhead = "none measured: zero"
interconnect = "the server manual"
"interconnect.gpus_per_node" = "the server manual"
"""


def edit(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new)


def test_base_profile_is_valid():
    p = parse_profile(BASE, "mine.toml")
    assert p.name == "my-gpu" and p.interconnect.gpus_per_node == 4 and p.interconnect.pcie_bandwidth_gbps is None
    assert p.efficiency == {}


@pytest.mark.parametrize(("text", "expected"), [
    # unknown key: names it and the accepted keys of its section
    pytest.param(edit("bf16_tflops = 400.0", "bf16_tflops = 400.0\nbf17_tflops = 1.0"), [r"bf17_tflops", r"accepted", r"bf16_tflops"], id="unknown-key"),
    pytest.param(edit("gpus_per_node = 4", "gpus_per_node = 4\nnvlink_count = 18"), [r"nvlink_count", r"accepted", r"gpus_per_node"], id="unknown-interconnect-key"),
    # unknown section
    pytest.param(BASE + "\n[thermals]\ntdp_w = 700\n", [r"\[thermals\]", r"accepted sections", r"interconnect"], id="unknown-section"),
    # missing required key: names it and the required ones
    pytest.param(edit("bandwidth_gbps = 3000.0\n", ""), [r"bandwidth_gbps", r"\[memory\]", r"required: capacity_gib, bandwidth_gbps"], id="missing-key"),
    pytest.param(edit("inter_node_latency_us = 3.0\n", ""), [r"inter_node_latency_us", r"required"], id="missing-interconnect-key"),
    pytest.param(edit("[chip]\ncompute_units = 100\n", ""), [r"missing section \[chip\]", r"required sections"], id="missing-section"),
    # negative numbers, non-numbers, booleans
    pytest.param(edit("bf16_tflops = 400.0", "bf16_tflops = -1.0"), [r"bf16_tflops", r">= 0", r"-1"], id="negative"),
    pytest.param(edit("intra_node_latency_us = 0.5", "intra_node_latency_us = -0.5"), [r"intra_node_latency_us", r">= 0"], id="negative-latency"),
    pytest.param(edit("capacity_gib = 96.0", 'capacity_gib = "96"'), [r"capacity_gib", r">= 0"], id="string-number"),
    pytest.param(edit("fp8_tflops = 800.0", "fp8_tflops = true"), [r"fp8_tflops", r">= 0"], id="bool-number"),
    pytest.param(edit("inter_node_bandwidth_gbps = 25.0", "inter_node_bandwidth_gbps = 0.0"), [r"inter_node_bandwidth_gbps", r"> 0"], id="zero-bandwidth"),
    pytest.param(edit("gpus_per_node = 4", "gpus_per_node = 0"), [r"gpus_per_node", r"integer >= 1", r"0"], id="zero-gpus"),
    pytest.param(edit("gpus_per_node = 4", "gpus_per_node = 4.5"), [r"gpus_per_node", r"integer >= 1"], id="fractional-gpus"),
    pytest.param(edit("compute_units = 100", 'compute_units = "many"'), [r"compute_units", r"integer >= 1"], id="bad-compute-units"),
    # link names come from a table
    pytest.param(edit('intra_node = "nvlink4"', 'intra_node = "nvlink9"'), [r"intra_node", r"nvlink9", r"accepted: nvlink3, nvlink4"], id="unknown-intra-link"),
    pytest.param(edit('inter_node = "roce"', 'inter_node = "carrier-pigeon"'), [r"inter_node", r"carrier-pigeon", r"infiniband-ndr"], id="unknown-inter-link"),
    # schema version
    pytest.param(edit("schema_version = 1", "schema_version = 2"), [r"schema_version 2", r"accepted: 1"], id="schema-version"),
    pytest.param(edit("schema_version = 1", "schema_version = true"), [r"schema_version True", r"accepted: 1"], id="schema-version-bool"),
    # sources must name a section (and an existing key)
    pytest.param(edit('compute = "the vendor', 'thermals = "the vendor'), [r"thermals", r"section one of", r"compute"], id="source-unknown-section"),
    pytest.param(edit('"interconnect.gpus_per_node"', '"interconnect.gpus"'), [r"interconnect.gpus", r"no key 'gpus'"], id="source-unknown-key"),
    # a section written as a plain value, bad aliases, bad TOML
    pytest.param(edit("[chip]\ncompute_units = 100\n", "").replace("aliases", "chip = 3\naliases"), [r"chip must be a table"], id="section-not-table"),
    pytest.param(edit('aliases = ["mine"]', 'aliases = "mine"'), [r"aliases must be a list"], id="aliases-not-list"),
    pytest.param(BASE + "\n[compute\n", [r"not valid TOML"], id="bad-toml"),
])
def test_validator_rejects(text, expected):
    with pytest.raises(InvalidProfileError) as info:
        parse_profile(text, "mine.toml")
    message = str(info.value)
    assert message.startswith("mine.toml: ") and "\n" not in message
    for pattern in expected:
        assert re.search(pattern, message), (pattern, message)


def test_profile_without_interconnect_is_single_device():
    text = BASE[:BASE.index("[interconnect]")] + BASE[BASE.index("[sources]"):].replace('interconnect = "the server manual"\n"interconnect.gpus_per_node" = "the server manual"\n', "")
    p = parse_profile(text, "single.toml")
    assert p.interconnect is None
    with pytest.raises(InvalidProfileError, match=r"my-gpu \(single.toml\) has no \[interconnect\] table, needed for tp=2"):
        p.require_interconnect("tp=2")
    assert load_device("h100").require_interconnect("tp=8") is load_device("h100").interconnect


# --- a user's own profile file -------------------------------------------------------------------

def test_user_profile_file(tmp_path):
    path = tmp_path / "my_gpu.toml"
    path.write_text(BASE)
    p = load_device(str(path))
    assert (p.name, p.memory_bandwidth_gbps, p.path) == ("my-gpu", 3000.0, str(path))
    assert p.interconnect.inter_node == "roce"
    m, n, k = 4096, 2048, 1024
    a = torch.empty(m, k, dtype=torch.bfloat16, device="meta")
    b = torch.empty(k, n, dtype=torch.bfloat16, device="meta")
    cost = tensor_cast.op_cost(torch.ops.aten.mm.default, a, b, device=str(path))
    assert cost.flops == 2 * m * n * k
    # no kernel can beat the profile's own peaks: its BF16 rate and its memory bandwidth
    assert cost.time_s >= max(2 * m * n * k / 400e12, 2 * (m * k + k * n + m * n) / 3000e9)
    faster = tmp_path / "faster.toml"
    faster.write_text(BASE.replace("bf16_tflops = 400.0", "bf16_tflops = 800.0")
                      .replace('name = "my-gpu"', 'name = "faster-gpu"'))
    assert tensor_cast.op_cost(torch.ops.aten.mm.default, a, b, device=str(faster)).compute_s == pytest.approx(
        cost.compute_s / 2, rel=1e-9)


def test_missing_profile_file(tmp_path):
    with pytest.raises(UnknownDeviceError, match="does not exist"):
        load_device(str(tmp_path / "nope.toml"))


# --- CLI ---------------------------------------------------------------------------------------

def test_cli_lists_all_devices(capsys):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    rows = [line.split()[0] for line in out.splitlines()[2:] if line.strip()]
    assert rows == sorted(BUILTIN)


def test_cli_unknown_device_exits_2(capsys):
    assert main(["analyze", "meta-llama/Llama-3.1-8B", "--device", "tpu-v9", "--batch-size", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "unknown device 'tpu-v9'" in err
    for name in BUILTIN:
        assert name in err
    assert set(builtin_profiles())  # the table of built-ins is still intact after the error
