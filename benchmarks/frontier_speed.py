"""How long a full-size frontier-model analysis takes: DeepSeek-V3 (61 layers, + MTP), Kimi-K2,
DeepSeek-V3.2, GLM-5, Qwen3-Next, Qwen3.5 — each in a fresh process (cold: imports, build,
capture, passes, costing) and then a second shape point on the same trace (warm).

    python benchmarks/frontier_speed.py            # prints a markdown table
    python benchmarks/frontier_speed.py --write    # also writes benchmarks/frontier_speed.md

Each analysis traces one decoder layer per distinct layer kind (plus the MTP block), so depth
does not change the time.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

CASES = [
    ("deepseek-ai/DeepSeek-V3", {}),
    ("deepseek-ai/DeepSeek-V3", {"mtp": 1}),
    ("moonshotai/Kimi-K2-Instruct", {}),
    ("deepseek-ai/DeepSeek-V3.2", {}),
    ("zai-org/GLM-5", {}),
    ("Qwen/Qwen3-Next-80B-A3B-Instruct", {}),
    ("Qwen/Qwen3.5-397B-A17B", {}),
]

CHILD = """
import json, sys, time
start = time.perf_counter()
import tensor_cast
imported = time.perf_counter()
model, options = sys.argv[1], json.loads(sys.argv[2])
report = tensor_cast.analyze(model, device="h100", symbolic=True, **options)
decode = report.evaluate(batch_size=64, query_len=1 + options.get("mtp", 0), context_len=4096)
decode.total_time_s, decode.memory.kv_cache_bytes, len(decode.ops)
cold = time.perf_counter()
prefill = report.evaluate(batch_size=1, query_len=8192, context_len=0)
prefill.total_time_s, len(prefill.ops)
warm = time.perf_counter()
print(json.dumps({"import_s": imported - start, "first_point_s": cold - imported, "second_point_s": warm - cold,
                  "layers": decode.context.num_layers}))
"""


def run(model: str, options: dict) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")
    out = subprocess.run([sys.executable, "-c", CHILD, model, json.dumps(options)], capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    rows = ["| model | options | layers | import (s) | trace + first point (s) | second point (s) |",
            "| --- | --- | ---: | ---: | ---: | ---: |"]
    for model, options in CASES:
        r = run(model, options)
        label = ", ".join(f"{k}={v}" for k, v in options.items()) or "-"
        rows.append(f"| {model} | {label} | {r['layers']} | {r['import_s']:.1f} | {r['first_point_s']:.1f} | "
                    f"{r['second_point_s']:.2f} |")
    table = "\n".join(rows)
    print(table)
    if "--write" in sys.argv:
        cpu = platform.processor() or platform.machine()
        header = (f"# Frontier-model analysis time\n\nMeasured by `benchmarks/frontier_speed.py` ({cpu}, "
                  f"{os.cpu_count()} CPUs visible, Python {platform.python_version()}); one fresh process per row.\n\n")
        Path(__file__).with_suffix(".md").write_text(header + table + "\n")


if __name__ == "__main__":
    main()
