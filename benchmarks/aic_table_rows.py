"""The AIConfigurator kernel tables' shared row conventions: reading a table, sampling, held-out families.

What every table's case builder (`aic_tables.py`, `aic_mla_tables.py`) reads its rows with: the engine whose
kernels a folder's tables timed (`engine_for`), a table's rows (`read_table`, one dict of strings per measured
kernel call, latency in ms), a stable number per shape family that held-out checks choose by (`family_hash`),
a seeded sample, and the calibration `Row` of a table row (`_row`, microseconds). Also the two markers the
builders share: `HOST_TIMED` (rows timed with their launches, not as CUDA-graph replays) and `NOT_FITTED`.
"""

from __future__ import annotations

import csv
import gzip
import random
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aic_engine_kernels as aek
import torch
from aic_engine_kernels import EngineKernels
from calibration_cases import Row

from tensor_cast.backends.roofline import ExecutionMode

tc, aten = torch.ops.tensor_cast, torch.ops.aten
FP8 = torch.float8_e4m3fn
# DeepGEMM rows never take less than ~80 us (H100) / ~170 us (B200) per call, at any shape up to
# where the GPU time passes it (then latency follows the FLOPs: max(floor, GPU), not a sum): the
# launcher's host-side work per call is in them. They are costed as eager launches, which pay
# `gemm_fp8_block_call_floor_us`; a CUDA-graph replay does not.
HOST_TIMED = ExecutionMode(cuda_graphs="never")
NOT_FITTED = "not fitted: another kernel"  # classes evaluated only (the fit never sees them)


def engine_for(folder: str | Path, engine: EngineKernels | None) -> EngineKernels:
    """`engine`, else the entry of the engine whose kernels the folder's tables timed."""
    return engine if engine is not None else aek.kernels(aek.engine_of(folder))


def read_table(folder: str | Path, name: str) -> list[dict[str, str]]:
    path = Path(folder) / f"{name}.csv.gz"
    if not path.is_file():
        return []
    with gzip.open(path, "rt", newline="") as handle:
        return list(csv.DictReader(handle))


def family_hash(key: Any, salt: str = "") -> float:
    """A stable number in [0, 1) for a shape family: held-out families are chosen by it."""
    return zlib.crc32(f"{salt}{key}".encode()) / 2**32


def sample(items: Sequence[Any], count: int, seed: int = 0) -> list[Any]:
    if len(items) <= count:
        return list(items)
    return random.Random(seed).sample(list(items), count)


def _row(section: str, name: str, params: dict[str, Any], dtype: str, latency_ms: str) -> Row:
    return Row(section=section, name=name, params=params, dtype=dtype, median_us=float(latency_ms) * 1e3)

