"""Backends: turn device-independent op counts into time on a device (installed as
`tensor_cast.backends`).

Owns:
- `counts.py`: `Counts`, what one op does (FLOPs per precision, bytes, collective bytes, state,
  launches) plus the kernel shape an efficiency model reads — no device in sight;
- `formulas/`: the op -> cost-rule registry (`register`, `lookup`, free ops) and one file per op
  family; rules read `OpCall`s (arguments by schema name, `CostKnobs` for cost-only choices) and
  return `Counts`; they never import device code;
- `device.py` and `profiles/*.toml`: device profiles as validated data (peaks, memory,
  interconnect, efficiency and overhead parameters, each with its source);
- `efficiency.py`: how close a kernel of a kind and shape gets to the peaks (its key table, the GEMM
  and quantization models; attention's in `attention_efficiency.py`, MoE's in `moe_tiles.py`);
- `roofline.py`: `op_time(counts, kind, profile, mode)`, the only place counts become seconds;
- `communication.py`: collective time over the interconnect model.
Must not: know about graphs, passes, models or reports.
"""
