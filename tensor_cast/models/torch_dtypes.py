"""The spec's dtype names (`ModelSpec.dtype`, `MambaSpec.state_dtype`) as torch dtypes (spec.py holds no torch)."""

from __future__ import annotations

import torch

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
