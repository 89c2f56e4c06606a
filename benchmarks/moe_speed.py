"""Cold analysis time of the full-depth MoE registry models (one fresh process per model).

Each model is analyzed at full depth, prefill (batch 1 x 4096) then decode (batch 64, 4096 cached),
in its own interpreter so nothing is cached between models; the trace is built once (one
representative layer per layer kind) and the decode point reuses it. The deployment is the
default one: one GPU, the checkpoint's own quantization (gpt-oss MXFP4 experts, MiniMax-M2 and
MiMo-V2-Flash FP8). Prints a markdown table:

    python benchmarks/moe_speed.py [model ids...] > benchmarks/moe_speed.md
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

MODELS = [
    "Qwen/Qwen3-235B-A22B", "Qwen/Qwen3-30B-A3B", "mistralai/Mixtral-8x7B-v0.1", "openai/gpt-oss-120b",
    "zai-org/GLM-4.5", "MiniMaxAI/MiniMax-M2", "baidu/ERNIE-4.5-300B-A47B-PT", "XiaomiMiMo/MiMo-V2-Flash",
]

CHILD = """
import json, sys, time
t0 = time.perf_counter()
import tensor_cast
from tensor_cast.analysis import ExecutionOptions, trace
t1 = time.perf_counter()
model = sys.argv[1]
prefill = tensor_cast.analyze(model, device="h100-sxm", batch_size=1, query_len=4096)
t2 = time.perf_counter()
decode = tensor_cast.analyze(model, device="h100-sxm", batch_size=64, query_len=1, context_len=4096)
t3 = time.perf_counter()
options = ExecutionOptions(deployment=prefill.context.deployment.trace_options())  # the trace analyze made
traced = trace(tensor_cast.load_model(model), options)
print(json.dumps(dict(import_s=t1 - t0, prefill_s=t2 - t1, decode_s=t3 - t2, layers=prefill.context.num_layers,
                      kinds=len(traced.rep.kinds), seconds=traced.seconds,
                      prefill_ms=prefill.total_time_s * 1e3, decode_ms=decode.total_time_s * 1e3)))
"""


def main(models: list[str]) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    print("| model | layers | kinds | import s | first analyze s (build / capture / passes) | decode analyze s "
          "| prefill 4k ms | decode b64 ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for model in models:
        out = subprocess.run([sys.executable, "-c", CHILD, model], capture_output=True, text=True, env=env, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        s = r["seconds"]
        print(f"| {model} | {r['layers']} | {r['kinds']} | {r['import_s']:.1f} | {r['prefill_s']:.1f} "
              f"({s['build_s']:.1f} / {s['capture_s']:.1f} / {s['passes_s']:.2f}) | {r['decode_s']:.2f} "
              f"| {r['prefill_ms']:.1f} | {r['decode_ms']:.1f} |")


if __name__ == "__main__":
    main(sys.argv[1:] or MODELS)
