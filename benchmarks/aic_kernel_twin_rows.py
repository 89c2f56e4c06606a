"""One engine's AIConfigurator tables plus another engine's rows of the same kernel at shapes the first lacks.

    python benchmarks/aic_kernel_twin_rows.py --base ../shared/calibration/aic/b200_sxm \
        --twin /tmp/aic_engines/trtllm/b200_sxm --dtype w4a8_mxfp4_mxfp8 --hidden 2880 --out /tmp/aic_b200_mix
    python benchmarks/calibrate_device.py --from-aic /tmp/aic_b200_mix --engine vllm \
        --stages 'moe w4a8_mxfp4_mxfp8' --warm-start --base backends/profiles/b200.toml --out ...

Why: vLLM's MXFP4 x MXFP8 MoE (`VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8=1`) is FlashInfer's TRT-LLM-gen
kernel, TensorRT-LLM's `moe_config.backend: TRTLLM`. vLLM 0.24's B200 table times it on two expert
shapes (H 4096 / 7168), TensorRT-LLM 1.3.0rc20's (`aic_package_tables.py`) also on gpt-oss's (H 2880),
and a fit on two shapes predicted TensorRT-LLM's gpt-oss-shape rows 1.31-1.46x slow at 1-1,024
tokens. On the shapes both tables hold the two harnesses agree within a few percent from 16 tokens
(vLLM's 1.2-1.4x above at <= 8 tokens, 0.8x at EP >= 16).

What it writes: `--out` holds a link to every table of `--base` except `moe_perf.csv.gz`, which is
`--base`'s rows plus `--twin`'s rows of `--dtype` whose hidden size is in `--hidden`, relabelled with
`--base`'s framework, version and kernel name for that dtype (so the base engine's readers take them
as its own kernel's rows). Nothing else is changed; no other device's tables are read.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import sys
from pathlib import Path

from aic_tables import read_table

MOE = "moe_perf.csv.gz"


def twin_rows(base: list[dict[str, str]], twin: list[dict[str, str]], dtype: str,
              hidden: set[int]) -> list[dict[str, str]]:
    """`twin`'s rows of `dtype` at the `hidden` sizes, relabelled as `base`'s kernel of that dtype."""
    own = [r for r in base if r["moe_dtype"] == dtype]
    if not own:
        raise ValueError(f"the base table has no {dtype} rows to take a kernel name from; "
                         f"its dtypes: {', '.join(sorted({r['moe_dtype'] for r in base}))}")
    label = {k: own[0][k] for k in ("framework", "version", "kernel_source")}
    picked = [r for r in twin if r["moe_dtype"] == dtype and int(r["hidden_size"]) in hidden]
    if not picked:
        raise ValueError(f"the twin table has no {dtype} rows at hidden sizes {sorted(hidden)}")
    return [{k: (label[k] if k in label else r[k]) for k in base[0]} for r in picked]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="folder of the engine whose section is fitted")
    ap.add_argument("--twin", required=True, help="folder of the other engine's tables (same device)")
    ap.add_argument("--dtype", required=True, help="moe_dtype whose kernel both engines run")
    ap.add_argument("--hidden", required=True, help="comma-separated hidden sizes taken from --twin")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    base_dir, twin_dir, out = Path(args.base), Path(args.twin), Path(args.out)
    for folder in (base_dir, twin_dir):
        if not (folder / MOE).is_file():
            print(f"error: {folder / MOE} not found; --base and --twin are folders of AIConfigurator tables",
                  file=sys.stderr)
            return 2
    try:
        hidden = {int(h) for h in args.hidden.split(",")}
    except ValueError:
        print(f"error: --hidden must be comma-separated integers, got {args.hidden!r}", file=sys.stderr)
        return 2
    base = read_table(base_dir, "moe_perf")
    try:
        added = twin_rows(base, read_table(twin_dir, "moe_perf"), args.dtype, hidden)
    except ValueError as exc:  # nothing written yet
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    for table in sorted(base_dir.glob("*.csv.gz")):
        if table.name != MOE and not (out / table.name).exists():
            os.symlink(table.resolve(), out / table.name)
    with gzip.open(out / MOE, "wt", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(base[0]))
        writer.writeheader()
        writer.writerows(base + added)
    print(f"{out / MOE}: {len(base)} rows of {base_dir.name} + {len(added)} {args.dtype} rows of {twin_dir} "
          f"(hidden {sorted(hidden)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
