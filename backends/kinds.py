"""The op kinds every cost rule is filed under (tables, time breakdowns, per-kind efficiency keys).

A table of names only, importable without torch: the device-profile validator reads it.
"""

KINDS = ("gemm", "attention", "moe", "norm", "activation", "elementwise", "embedding", "collective",
         "quant", "memory", "other")
