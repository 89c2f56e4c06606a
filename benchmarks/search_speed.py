"""Search speed: a DeepSeek-V3 deployment search over three devices, cold and warm trace cache.

    python benchmarks/search_speed.py [--cache-dir DIR] [--jobs 2] [--cold] [--check-screening]

Runs `tensor-cast search` (every layout, KV dtype and concurrency level on h100-sxm, h200 and b200
at 8, 16 and 32 GPUs, ISL 4000 / OSL 500, TTFT 2 s / TPOT 50 ms) and prints a table: configurations
searched (simulated + screened out), distinct simulations, wall and CPU time. `--cold` first
empties the cache directory (a fresh machine); the warm run is the one the ≤ 2-minute target
applies to (2 cores). `--check-screening` also runs the search with `--no-screen` (every level
simulated) and checks that no configuration the default run screened out meets the SLOs, and
that both runs agree on every configuration they both simulated.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

CMD = ["search", "deepseek-ai/DeepSeek-V3", "--devices", "h100-sxm,h200,b200", "--gpus", "8,16,32",
       "--isl", "4000", "--osl", "500", "--ttft", "2s", "--tpot", "50ms"]


def run(env: dict[str, str], jobs: int, out: str, *extra: str) -> tuple[float, float]:
    """(wall, CPU seconds of the search and its workers)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tensor_cast", *CMD, "--jobs", str(jobs), "--json", out, *extra], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return time.perf_counter() - start, cpu


def _key(row: dict) -> tuple:
    return row["device"], row["gpus"], row["config"], row["concurrency"]


def check_screening(screened_run: dict, full_run: dict) -> str:
    full = {_key(r): r for r in full_run["rows"]}
    wrong = [s for s in screened_run["screened"] if full[_key(s)]["meets_slo"]]
    moved = [r for r in screened_run["rows"] if abs(full[_key(r)]["tokens_per_s"] / r["tokens_per_s"] - 1) > 1e-9]
    if wrong or moved:
        raise SystemExit(f"screening check FAILED: {len(wrong)} screened configurations meet the SLOs "
                         f"(e.g. {wrong[:1]}), {len(moved)} simulated rows differ")
    return (f"screening check: none of the {len(screened_run['screened'])} screened configurations meets the SLOs "
            f"when simulated; the {len(screened_run['rows'])} simulated rows equal the full run's")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "tensor_cast_search_bench"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--cold", action="store_true", help="empty the cache first and time the cold run too")
    parser.add_argument("--check-screening", action="store_true",
                        help="also run with --no-screen and check what the screening left out")
    args = parser.parse_args()
    env = {**os.environ, "TENSOR_CAST_CACHE_DIR": args.cache_dir, "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_VERBOSITY": "error"}
    from tabulate import tabulate

    rows = []
    out = os.path.join(tempfile.gettempdir(), f"search_speed_{os.getpid()}.json")
    if args.cold:
        subprocess.run([sys.executable, "-m", "tensor_cast", "cache", "clear"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        rows.append(("cold cache", *run(env, args.jobs, out)))
    rows.append(("warm cache", *run(env, args.jobs, out)))
    with open(out) as handle:
        data = json.load(handle)
    sims = len({(r["device"], r["config"].split("x", 1)[1], r["concurrency"]) for r in data["rows"]})
    print(f"DeepSeek-V3 search, {args.jobs} jobs: {data['simulated'] + len(data['screened'])} configurations "
          f"searched: {data['simulated']} simulated ({sims} distinct simulations), {len(data['screened'])} "
          f"screened out; {len(data['pruned'])} device x variant pruned by memory; {data['meeting_slo']} meet "
          f"the SLOs; load average before the last run {os.getloadavg()[0]:.1f} (2 cores)")
    if args.check_screening:
        full_out = out.replace(".json", "_full.json")
        rows.append(("warm cache, --no-screen", *run(env, args.jobs, full_out, "--no-screen")))
        with open(full_out) as handle:
            print(check_screening(data, json.load(handle)))
    print(tabulate([(name, f"{wall:.1f} s", f"{cpu:.1f} s") for name, wall, cpu in rows],
                   headers=("run", "wall", "CPU (all processes)"), disable_numparse=True))


if __name__ == "__main__":
    main()
