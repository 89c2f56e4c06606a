"""A synthetic device profile for the efficiency-model tests (test_efficiency.py,
test_attention_efficiency.py): round peaks (1,000 TFLOP/s bf16, 4,000 GB/s, 100 SMs, launch gaps
1 us in a graph / 3 us eager) and whatever [efficiency] keys a test names, so expected times are
derived by hand from those numbers."""

from __future__ import annotations

from tensor_cast.backends.device import parse_profile
from tensor_cast.backends.roofline import ExecutionMode

PEAK_TFLOPS, BANDWIDTH_GBPS, SMS = 1000.0, 4000.0, 100
GRAPH_US, EAGER_US = 1.0, 3.0


def profile_text(efficiency: dict[str, float]) -> str:
    table = "\n".join(f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}" for k, v in efficiency.items())
    return f"""
schema_version = 1
name = "synthetic"
display_name = "synthetic test device"
vendor = "test"
architecture = "test"
[compute]
fp32_tflops = 50.0
bf16_tflops = {PEAK_TFLOPS}
fp16_tflops = {PEAK_TFLOPS}
fp8_tflops = {2 * PEAK_TFLOPS}
int8_tops = {2 * PEAK_TFLOPS}
fp4_tflops = 0.0
[memory]
capacity_gib = 80.0
bandwidth_gbps = {BANDWIDTH_GBPS}
[chip]
compute_units = {SMS}
[overhead]
kernel_launch_us = {EAGER_US}
graph_kernel_us = {GRAPH_US}
[efficiency]
{table}
[sources]
compute = "synthetic"
memory = "synthetic"
chip = "synthetic"
overhead = "synthetic"
efficiency = "synthetic"
"""


def synthetic(**efficiency: float):
    return parse_profile(profile_text(efficiency), "<synthetic>")


IN_GRAPH = ExecutionMode("always")
