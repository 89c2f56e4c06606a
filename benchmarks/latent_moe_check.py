"""LatentMoE (Nemotron 3 Super) against NVIDIA's measured vLLM MoE kernels: one table, printed.

Reads AIConfigurator's vLLM 0.24 `moe_perf` table (`--aic`, default ../shared/calibration/aic/h100_sxm)
and keeps the rows of Nemotron 3 Super's routed experts: 512 experts of 2688, top-22, over 1024-wide
latent rows (E512 k22 H1024 I2688). Each row's tokens go through the model's own first MoE block as
tensor_cast traces it (`tensor_cast.analyze` on the registry's Nemotron-3-Super-120B-A12B, one decode
step of that many sequences, the deployment's moe_tp / ep), and the `tensor_cast::moe` op's time —
router over the 4096-wide hidden states plus routed experts, what the table's harness times — is set
beside the measured latency. The shape family is held out from the MoE fit
(`benchmarks/aic_fit.py held_out`: family_hash("E512 k22 H1024 I2688", "moe") = 0.051 < 0.25), so these
are held-out numbers. Rows: balanced routing (the table's power-law rows need the fit's routing draws).

    python benchmarks/latent_moe_check.py [--aic DIR] [--device h100-sxm] [--tokens 1,8,64,1024,4096]
"""

from __future__ import annotations

import argparse
import csv
import gzip
from pathlib import Path

from tabulate import tabulate

import tensor_cast

MODEL = "nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-BF16"
FAMILY = {"hidden_size": "1024", "inter_size": "2688", "num_experts": "512", "topk": "22"}
SCHEMES = {"fp8": "fp8", "fp8_block": "fp8_block", "bfloat16": "none"}


def rows(folder: Path) -> list[dict[str, str]]:
    with gzip.open(folder / "moe_perf.csv.gz", "rt", newline="") as handle:
        return [r for r in csv.DictReader(handle)
                if all(r[k] == v for k, v in FAMILY.items()) and r["distribution"] == "balanced"]


def predicted_ms(device: str, tokens: int, scheme: str, tp: int, ep: int) -> float:
    report = tensor_cast.analyze(MODEL, device=device, batch_size=tokens, query_len=1, context_len=512,
                                 num_hidden_layers=2, quant=scheme, tp=tp, ep=ep)
    (moe,) = [r for r in report.ops if r.op == "tensor_cast.moe"]
    return float(moe.time_s) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aic", default="../shared/calibration/aic/h100_sxm")
    parser.add_argument("--device", default="h100-sxm")
    parser.add_argument("--tokens", default="1,8,64,1024,4096")
    args = parser.parse_args()
    wanted = {int(t) for t in args.tokens.split(",")}
    table, errors = [], []
    for r in sorted(rows(Path(args.aic)), key=lambda r: (r["moe_dtype"], int(r["moe_tp_size"]),
                                                         int(r["moe_ep_size"]), int(r["num_tokens"]))):
        tokens, tp, ep = int(r["num_tokens"]), int(r["moe_tp_size"]), int(r["moe_ep_size"])
        if tokens not in wanted or r["moe_dtype"] not in SCHEMES or tp * ep > 8:
            continue
        measured = float(r["latency"])
        predicted = predicted_ms(args.device, tokens, SCHEMES[r["moe_dtype"]], tp * ep, ep)
        errors.append(abs(predicted / measured - 1))
        table.append((r["moe_dtype"], r["kernel_source"], tp, ep, tokens, f"{measured:.3f}", f"{predicted:.3f}",
                      f"{predicted / measured - 1:+.1%}"))
    print(tabulate(table, headers=("dtype", "kernel", "moe_tp", "ep", "tokens", "measured ms", "predicted ms",
                                   "error")))
    if errors:
        print(f"\n{len(errors)} rows, mean abs error {sum(errors) / len(errors):.1%} (held-out shape family)")


if __name__ == "__main__":
    main()
