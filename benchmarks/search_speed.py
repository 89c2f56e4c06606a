"""Search speed: a DeepSeek-V3 deployment search over three devices, cold and warm trace cache.

    python benchmarks/search_speed.py [--cache-dir DIR] [--jobs 2] [--cold]

Runs `tensor_cast.search` (every layout, KV dtype and concurrency level on h100-sxm, h200 and b200
at 8, 16 and 32 GPUs, ISL 4000 / OSL 500) and prints a table: configurations simulated, distinct
simulations, traces, wall time. `--cold` first empties the cache directory (a fresh machine);
the second run is the warm one the ≤ 2-minute target applies to (2 cores).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

CMD = ["search", "deepseek-ai/DeepSeek-V3", "--devices", "h100-sxm,h200,b200", "--gpus", "8,16,32",
       "--isl", "4000", "--osl", "500", "--ttft", "2s", "--tpot", "50ms"]


def run(env: dict[str, str], jobs: int, out: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tensor_cast", *CMD, "--jobs", str(jobs), "--json", out], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "tensor_cast_search_bench"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--cold", action="store_true", help="empty the cache first and time the cold run too")
    args = parser.parse_args()
    env = {**os.environ, "TENSOR_CAST_CACHE_DIR": args.cache_dir, "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_VERBOSITY": "error"}
    import json

    from tabulate import tabulate

    rows = []
    out = os.path.join(tempfile.gettempdir(), "search_speed.json")
    if args.cold:
        subprocess.run([sys.executable, "-m", "tensor_cast", "cache", "clear"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        cold = run(env, args.jobs, out)
        rows.append(("cold cache", cold))
    warm = run(env, args.jobs, out)
    rows.append(("warm cache", warm))
    with open(out) as handle:
        data = json.load(handle)
    sims = len({(r["device"], r["config"].split("x", 1)[1], r["concurrency"]) for r in data["rows"]})
    print(f"DeepSeek-V3 search, {args.jobs} jobs: {data['simulated']} configurations "
          f"({sims} distinct simulations), {len(data['pruned'])} device x variant pruned by memory, "
          f"{data['meeting_slo']} meet the SLOs")
    print(tabulate([(name, f"{t:.1f} s") for name, t in rows], headers=("run", "wall"), disable_numparse=True))


if __name__ == "__main__":
    main()
