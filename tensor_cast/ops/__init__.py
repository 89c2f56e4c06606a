"""The project's custom ops (`torch.ops.tensor_cast.*`), one file per op family.

Importing this package registers them. Each op has a reference implementation (so
`torch.library.opcheck` and numeric pass tests can run on CPU) and a fake kernel (so it traces
on meta / fake tensors with symbolic sizes), and a cost rule in `tensor_cast.backends.formulas`.
"""

from . import (  # noqa: F401  (registration side effects)
    attention,
    collectives,
    compressed_attention,
    expert_parallel,
    fused,
    hyper_connection,
    linear_attention,
    mamba,
    mla,
    moe,
    quant,
)
