"""TOML text of a made-up device profile for tests of profile parsing, engines and fits.

The required sections with round numbers (TFLOP/s, GB/s, 100 compute units, no launch costs)
that tests derive their expectations from; each test appends the sections it is about
(interconnect, efficiency, sources). Imported by test modules (pytest's `pythonpath`).
"""

from __future__ import annotations


def profile_head(name: str, display_name: str, *, bandwidth_gbps: float = 2000.0, header_extra: str = "") -> str:
    """The header, [compute], [memory], [chip] and [overhead] of a profile; `header_extra`: more
    top-level keys (e.g. 'aliases = ["mine"]\\n')."""
    return f"""\
schema_version = 1
name = "{name}"
display_name = "{display_name}"
vendor = "acme"
architecture = "x1"
{header_extra}
[compute]
fp32_tflops = 50.0
bf16_tflops = 400.0
fp16_tflops = 400.0
fp8_tflops = 800.0
int8_tops = 800.0
fp4_tflops = 0.0

[memory]
capacity_gib = 96.0
bandwidth_gbps = {bandwidth_gbps}

[chip]
compute_units = 100

[overhead]
kernel_launch_us = 0.0
graph_kernel_us = 0.0
"""


def profile_sources(*extra: str) -> str:
    """A [sources] table naming "a test" for the sections `profile_head` writes and `extra` ones."""
    names = ("compute", "memory", "chip", "overhead", *extra)
    return "\n[sources]\n" + "".join(f'{name} = "a test"\n' for name in names)
