"""What one simulated run hands to its report: `SimResult` (requests, ITL samples, KV use, step
totals by phase) and `StepRecord` (one step, or one fast-forwarded run of identical decode steps,
of one worker: the Chrome trace's events).

Plain records: `simulator.py` fills them, `report.py` reads them; neither logic nor defaults here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .time_split import PhaseTotals
from .workload import Request


@dataclass
class StepRecord:
    worker: str
    start_s: float
    duration_s: float
    steps: int
    prefill_tokens: int
    decode_seqs: int
    running: int


@dataclass
class SimResult:
    requests: list[Request]
    steps: list[StepRecord]
    itl_durations: np.ndarray
    itl_weights: np.ndarray
    duration_s: float
    preemptions: int
    kv_blocks: int
    kv_peak_use: float
    kv_mean_use: float
    num_steps: int
    phases: dict[str, PhaseTotals]  # per pool: its steps split by phase (time_split.py)
