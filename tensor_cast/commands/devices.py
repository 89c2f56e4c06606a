"""`tensor-cast devices`: the built-in device profiles (TOML only, no torch import). An engine
section copied from another device (not fitted on this one) is starred."""

from __future__ import annotations

import argparse

HELP = "list the built-in device profiles"


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ..backends.device import builtin_profiles
    from ..backends.engines import is_transferred

    seen = {p.name: p for p in builtin_profiles().values()}
    rows = [(p.name, p.display_name, f"{p.compute['bf16_tflops']:.0f}", f"{p.compute['fp8_tflops']:.0f}",
             f"{p.memory_bandwidth_gbps:.0f}", f"{p.memory_capacity_gib:.0f}",
             ", ".join(e + "*" * is_transferred(p, e) for e in p.engine_sections) or "-", ", ".join(p.aliases))
            for p in sorted(seen.values(), key=lambda p: p.name)]
    print(tabulate(rows, headers=("name", "device", "bf16 TFLOP/s", "fp8 TFLOP/s", "HBM GB/s", "HBM GiB",
                                  "engine sections (* transferred)", "aliases"),
                   disable_numparse=True))
    return 0
