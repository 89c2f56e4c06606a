"""Serving fidelity: simulated TTFT / TPOT vs measured serving runs (AIConfigurator silicon sample).

    python benchmarks/serving_fidelity.py --data ../shared/serving/silicon_sample_visible.csv \
        [--sample N] [--devices h100_sxm,b200_sxm] [--out rows.csv]

Every agg and disagg row on a system with a tensor_cast device profile is mapped to a
deployment and simulated as the benchmark ran it: a closed loop of `silicon_concurrency`
clients (all starting together), fixed isl/osl, `--requests-per-client` requests each. Rows
that cannot be mapped are listed with the reason. Prints a markdown table of mean absolute
relative error of TTFT and TPOT per device x engine x model family, with coverage.

Mapping (decided from the CSV's README and the engines' launch flags):
- system: h100_sxm -> h100-sxm, b200_sxm -> b200 (the other systems have no profile here).
- model: the HF id, or its registry twin with the same architecture: *-Instruct -> base,
  Qwen3-235B-A22B-FP8 -> Qwen3-235B-A22B + fp8, MiniMax-M2.5 -> MiniMax-M2, Kimi-K2.5 ->
  Kimi-K2-Instruct (the text backbone), zhipuai/GLM-5 -> zai-org/GLM-5, nvidia/X-NVFP4 -> X + nvfp4.
- parallelism: tp = tp_size (attention TP), dp = attention_dp_size (empty = 1); MoE: moe_ep_size
  equal to tp x dp -> ep = tp x dp (attention DP + EP, or TP + EP); moe_ep_size 1 and
  moe_tp_size = tp with dp 1 -> ep = 1 (MoE TP); any other MoE split (MoE TP across attention-DP
  ranks, mixed MoE TP x EP) is not modelled by tensor_cast and is listed as unsupported. pp > 1: unsupported.
- quantization: gemm/moe quant modes fp8 -> fp8 (DeepSeek/Kimi/GLM/MiniMax/Qwen-FP8 checkpoints
  keep their own block-FP8), fp8_block -> fp8_block, nvfp4 -> nvfp4, int4_wo -> w4a16, empty ->
  the checkpoint's own (bf16, or MXFP4 for gpt-oss); the MoE mode wins when the two differ (the
  experts hold most weights). KV cache fp8 for nvfp4 rows (the NVFP4 recipes' setting), else the
  model dtype.
- engine: backend column (vllm, sglang, trtllm) with each engine's defaults (engines.py), except
  SGLang's chunked_prefill_size, which follows its GPU-memory tiers (8192 on H100, 16384 on B200),
  and TensorRT-LLM's max_num_tokens, set to max(8192, isl + concurrency): without context chunking
  a smaller budget admits a prompt only when no decode is running (every request waits for the
  previous wave), which the measured TTFTs rule out; the benchmark recipes size it this way.
- replicas: when silicon_concurrency is a multiple (> 1) of batch_size x attention DP, the run
  served several identical replicas; one replica is simulated with batch_size x attention DP clients.
- protocol: closed loop, all clients start together, `--requests-per-client` requests each;
  `--range-ratio r` draws lengths uniformly in [L(1-r), L(1+r)] and `--warmup` leaves the first
  wave (one request per client) out of the latency statistics, as benchmark tools' warm-up does.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from collections import defaultdict
from typing import Any

SYSTEMS = {"h100_sxm": "h100-sxm", "b200_sxm": "b200"}
MODELS = {
    "meta-llama/Llama-3.1-8B-Instruct": ("meta-llama/Llama-3.1-8B", None),
    "meta-llama/Llama-3.1-70B": ("meta-llama/Llama-3.1-70B", None),
    "Qwen/Qwen3-32B": ("Qwen/Qwen3-32B", None),
    "Qwen/Qwen3-235B-A22B-FP8": ("Qwen/Qwen3-235B-A22B", "fp8"),
    "Qwen/Qwen3.5-397B-A17B": ("Qwen/Qwen3.5-397B-A17B", None),
    "deepseek-ai/DeepSeek-R1": ("deepseek-ai/DeepSeek-R1", None),
    "deepseek-ai/DeepSeek-V3": ("deepseek-ai/DeepSeek-V3", None),
    "openai/gpt-oss-120b": ("openai/gpt-oss-120b", None),
    "MiniMaxAI/MiniMax-M2.5": ("MiniMaxAI/MiniMax-M2", None),
    "moonshotai/Kimi-K2.5": ("moonshotai/Kimi-K2-Instruct", None),
    "zhipuai/GLM-5": ("zai-org/GLM-5", None),
    "nvidia/DeepSeek-R1-NVFP4": ("deepseek-ai/DeepSeek-R1", "nvfp4"),
    "nvidia/DeepSeek-V3.1-NVFP4": ("deepseek-ai/DeepSeek-V3", "nvfp4"),
    "nvidia/Qwen3-32B-NVFP4": ("Qwen/Qwen3-32B", "nvfp4"),
}
FAMILY = [("llama", "Llama"), ("qwen3.5", "Qwen3.5"), ("qwen3-235b", "Qwen3-MoE"), ("qwen3-32b", "Qwen3-dense"),
          ("deepseek", "DeepSeek"), ("gpt-oss", "gpt-oss"), ("minimax", "MiniMax"), ("kimi", "Kimi"), ("glm", "GLM")]
CHECKPOINT_FP8 = ("deepseek", "kimi", "glm", "minimax", "qwen3-235b-a22b-fp8")
QUANT = {"fp8": "fp8", "fp8_block": "fp8_block", "nvfp4": "nvfp4", "int4_wo": "w4a16"}


class Unsupported(Exception):
    pass


def family(model_path: str) -> str:
    low = model_path.lower()
    return next((name for key, name in FAMILY if key in low), "other")


def _int(value: str, default: int = 1) -> int:
    return int(float(value)) if value not in ("", None) else default


def concurrency(row: dict[str, str]) -> int:
    m = re.search(r"silicon_concurrency=(\d+)", row["silicon_data_source"])
    if m:
        return int(m.group(1))
    return _int(row["batch_size"]) * _int(row["attention_dp_size"])


def per_replica_concurrency(row: dict[str, str]) -> int:
    """Clients one simulated replica serves: a few TensorRT-LLM rows measured many identical
    replicas behind one load balancer (silicon_concurrency a multiple of batch_size x attention
    DP, e.g. 416 = 32 x 13): one replica then sees batch_size x attention DP clients."""
    c = concurrency(row)
    if row["mode"] != "agg" or not row["batch_size"]:
        return c
    per = _int(row["batch_size"]) * _int(row["attention_dp_size"])
    return per if c > per and c % per == 0 else c


def parallel(row: dict[str, str], prefix: str = "") -> dict[str, int]:
    tp, dp = _int(row[prefix + "tp_size"]), _int(row[prefix + "attention_dp_size"])
    mtp, mep = _int(row[prefix + "moe_tp_size"]), _int(row[prefix + "moe_ep_size"])
    if _int(row[prefix + "pp_size"]) > 1:
        raise Unsupported("pipeline parallelism (pp > 1)")
    world = tp * dp
    if mep == world and mep > 1:
        return {"tp": tp, "dp": dp, "ep": world}
    if mep <= 1 and dp == 1:
        return {"tp": tp}
    if mep <= 1 and mtp == 1 and dp > 1 and tp == 1:
        return {"tp": 1, "dp": dp}  # dense model in attention-DP replicas
    raise Unsupported(f"MoE split moe_tp={mtp} x moe_ep={mep} over tp={tp} x attention_dp={dp}")


def quant(row: dict[str, str], model_path: str, forced: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    mode = row["moe_quant_mode"] or row["gemm_quant_mode"]
    if forced:
        out["quant"] = forced
    elif mode:
        if mode not in QUANT:
            raise Unsupported(f"quant mode {mode}")
        if not (mode == "fp8" and any(k in model_path.lower() for k in CHECKPOINT_FP8)):
            out["quant"] = QUANT[mode]
    if mode == "nvfp4" or forced == "nvfp4":
        out["kv_cache_dtype"] = "fp8"
    return out


def setup(row: dict[str, str], range_ratio: float = 0.0) -> dict[str, Any]:
    if row["system"] not in SYSTEMS:
        raise Unsupported(f"no device profile for {row['system']}")
    if row["model_path"] not in MODELS:
        raise Unsupported(f"model {row['model_path']} not in the registry")
    model, forced = MODELS[row["model_path"]]
    kwargs: dict[str, Any] = {"device": SYSTEMS[row["system"]], "engine": row["backend"],
                              **quant(row, row["model_path"], forced)}
    if row["backend"] == "sglang" and row["system"] == "b200_sxm":
        kwargs["engine_args"] = {"max_num_batched_tokens": 16384}
    if row["backend"] == "trtllm":  # no context chunking: a step must hold a whole prompt beside the decodes
        longest = int(row["isl"]) + round(int(row["isl"]) * range_ratio) + 1
        kwargs["engine_args"] = {"max_num_batched_tokens": max(8192, longest + concurrency(row))}
    if row["mode"] == "disagg":
        pools = []
        for role in ("prefill", "decode"):
            p = parallel(row, role + "_")
            pools.append(f"{role}: {_int(row[role + '_num_workers'])}x " + " ".join(f"{k}{v}" for k, v in p.items()))
        kwargs["disagg"] = "; ".join(pools)
    else:
        kwargs.update(parallel(row))
    return {"model": model, **kwargs}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--sample", type=int, default=0, help="at most N rows per device x engine x family (0: all)")
    ap.add_argument("--requests-per-client", type=int, default=8)
    ap.add_argument("--warmup", action="store_true", help="leave the first request of every client out")
    ap.add_argument("--range-ratio", type=float, default=0.0,
                    help="simulate lengths uniform in [L(1-r), L(1+r)] (desynchronizes the closed loop)")
    ap.add_argument("--devices", default=",".join(SYSTEMS))
    ap.add_argument("--out", help="per-row CSV of predictions")
    args = ap.parse_args()

    import tensor_cast
    from tensor_cast.errors import TensorCastError

    with open(args.data, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["system"] in args.devices.split(",")
                and r["mode"] in ("agg", "disagg")]
    groups: dict[tuple[str, str, str], list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        groups[(r["system"], r["backend"], family(r["model_path"]))].append(r)
    if args.sample:
        for key, members in groups.items():
            step = max(1, len(members) // args.sample)
            groups[key] = members[::step][: args.sample]
    results: list[dict[str, Any]] = []
    skipped: dict[str, list[str]] = defaultdict(list)
    start = time.time()
    todo = sorted((r for members in groups.values() for r in members),
                  key=lambda r: (r["model_path"], r["system"], r["backend"], r["mode"]))
    for i, row in enumerate(todo):
        try:
            kwargs = setup(row, args.range_ratio)
            c = per_replica_concurrency(row)
            report = tensor_cast.simulate(**kwargs, concurrency=c, num_requests=c * args.requests_per_client,
                                          isl=int(row["isl"]), osl=int(row["osl"]), range_ratio=args.range_ratio,
                                          warmup_requests=c if args.warmup else 0)
        except Unsupported as exc:
            skipped[str(exc)].append(row["id"])
            continue
        except TensorCastError as exc:
            skipped[f"{type(exc).__name__}: {str(exc)[:110]}"].append(row["id"])
            continue
        ttft, tpot = float(row["silicon_ttft_ms"]) / 1e3, float(row["silicon_tpot_ms"]) / 1e3
        results.append({"id": row["id"], "system": row["system"], "engine": row["backend"], "mode": row["mode"],
                        "family": family(row["model_path"]), "pred_ttft_s": report.mean_ttft_s, "meas_ttft_s": ttft,
                        "pred_tpot_s": report.mean_tpot_s, "meas_tpot_s": tpot,
                        "ttft_err": abs(report.mean_ttft_s - ttft) / ttft, "tpot_err": abs(report.mean_tpot_s - tpot) / tpot})
        if sys.stderr.isatty():
            sys.stderr.write(f"\r{i + 1}/{len(todo)} rows, {time.time() - start:.0f} s")
    print(f"protocol: {args.requests_per_client} requests per client, range ratio {args.range_ratio}, "
          f"warm-up {'first wave excluded' if args.warmup else 'none'}")
    print(f"\n{len(results)} rows simulated, {sum(len(v) for v in skipped.values())} not, of {len(todo)} "
          f"({'sampled ' + str(args.sample) + ' per group' if args.sample else 'all rows'}) in {time.time() - start:.0f} s\n")
    table: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        table[(r["system"], r["engine"], r["family"])].append(r)
    print("| device | engine | family | rows simulated / in group | TPOT MAE | TTFT MAE |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for key in sorted(groups):
        got = table.get(key, [])
        tp = f"{100 * sum(r['tpot_err'] for r in got) / len(got):.1f}%" if got else "-"
        tt = f"{100 * sum(r['ttft_err'] for r in got) / len(got):.1f}%" if got else "-"
        print(f"| {key[0]} | {key[1]} | {key[2]} | {len(got)} / {len(groups[key])} | {tp} | {tt} |")
    if results:
        for mode in ("agg", "disagg"):
            sub = [r for r in results if r["mode"] == mode]
            if sub:
                print(f"| all | | {mode} | {len(sub)} | {100 * sum(r['tpot_err'] for r in sub) / len(sub):.1f}% | "
                      f"{100 * sum(r['ttft_err'] for r in sub) / len(sub):.1f}% |")
        print(f"| all | | all | {len(results)} | {100 * sum(r['tpot_err'] for r in results) / len(results):.1f}% | "
              f"{100 * sum(r['ttft_err'] for r in results) / len(results):.1f}% |")
    print("\nrows not simulated:")
    for reason, ids in sorted(skipped.items(), key=lambda kv: -len(kv[1])):
        print(f"- {len(ids)} rows: {reason} (e.g. {ids[0]})")
    if args.out:
        with open(args.out, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(results[0]) if results else ["id"])
            writer.writeheader()
            writer.writerows(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
