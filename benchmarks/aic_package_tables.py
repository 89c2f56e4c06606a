"""AIConfigurator's packaged kernel tables of other engines -> the layout `aic_tables.py` reads.

    pip download aiconfigurator-core==0.12.0 --no-deps -d /tmp/aic
    python benchmarks/aic_package_tables.py --wheel /tmp/aic/aiconfigurator_core-0.12.0-*.whl \\
        --out /tmp/aic_engines [--engines trtllm,sglang] [--devices h100_sxm,b200_sxm]

`shared/calibration/aic/<device>/` holds NVIDIA's measurements of vLLM 0.24's kernels, converted
from the parquet files of AIConfigurator (github.com/ai-dynamo/aiconfigurator, Apache-2.0). The same
package also ships tables measured with TensorRT-LLM's and SGLang's own kernels
(`aiconfigurator_core/systems/data/<device>/<op>/<engine>/<version>/*.parquet`). This script writes
those of the named engines as `<out>/<engine>/<device>/<table>.csv.gz`, one row per measured
kernel call, columns unchanged (latency in ms), which is the layout `calibrate_device.py --from-aic`
and `fidelity.py --aic` read.

Which devices: only those whose vLLM tables are in `shared/calibration/aic` (H100 SXM, B200 SXM).
The package also holds other devices' tables and a serving sample of devices deliberately held
out of the shared data (predictions for them are checked on data no fit has seen); this script
never opens a member outside `systems/data/<allowed device>/`, and refuses any other device.

Which version: a table name (e.g. `moe_perf`) can come in several versions of an engine; the one
with the most rows is taken (the later ones of a release are partial re-collections that point
back to it in `reuse.yaml`), the newest of equally long ones, and its version is printed.
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
import zipfile
from collections import defaultdict
from pathlib import Path

ALLOWED_DEVICES = ("h100_sxm", "b200_sxm")  # the devices of shared/calibration/aic
PREFIX = "aiconfigurator_core/systems/data/"


def members(wheel: zipfile.ZipFile, devices: list[str], engines: list[str]) -> dict[tuple[str, str, str], list[str]]:
    """(engine, device, table) -> parquet members, reading only the allowed devices' names."""
    found: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for name in wheel.namelist():
        if not name.startswith(PREFIX) or not name.endswith(".parquet"):
            continue
        parts = name[len(PREFIX):].split("/")  # device / op / engine / version / table.parquet
        if len(parts) != 5 or parts[0] not in devices or parts[2] not in engines:
            continue
        found[(parts[2], parts[0], parts[4].removesuffix(".parquet"))].append(name)
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheel", required=True, help="aiconfigurator_core wheel (pip download aiconfigurator-core)")
    ap.add_argument("--out", required=True, help="output folder (<engine>/<device>/<table>.csv.gz)")
    ap.add_argument("--engines", default="trtllm,sglang")
    ap.add_argument("--devices", default=",".join(ALLOWED_DEVICES))
    args = ap.parse_args()
    devices = args.devices.split(",")
    refused = [d for d in devices if d not in ALLOWED_DEVICES]
    if refused:
        print(f"aic_package_tables: device {', '.join(refused)} refused: only the devices of "
              f"shared/calibration/aic ({', '.join(ALLOWED_DEVICES)}) may be read", file=sys.stderr)
        return 2
    import pandas as pd  # optional: only this script reads parquet
    from packaging.version import Version

    with zipfile.ZipFile(args.wheel) as wheel:
        for (engine, device, table), names in sorted(members(wheel, devices, args.engines.split(",")).items()):
            frames = {name: pd.read_parquet(io.BytesIO(wheel.read(name))) for name in names}
            name, frame = max(frames.items(), key=lambda item: (len(item[1]), Version(item[0].split("/")[-2])))
            target = Path(args.out) / engine / device / f"{table}.csv.gz"
            target.parent.mkdir(parents=True, exist_ok=True)
            with gzip.open(target, "wt", newline="") as fh:
                frame.to_csv(fh, index=False)
            print(f"{engine:7s} {device:9s} {table:34s} {len(frame):7d} rows  version {name.split('/')[-2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
