"""`python -m tensor_cast` and the `tensor-cast` console script: run the CLI, then exit fast.

The process ends right after the command: `gc.freeze()` moves every live object out of the
garbage collector's reach first, so the interpreter's shutdown does not walk the millions of
objects torch, transformers and sympy leave behind (about 1.2 s of a 6 s `analyze` on 2 cores;
`benchmarks/analyze_speed.py --cli` measures it). Output is complete by then: `main` has written
and closed every file.
"""

import gc
import sys

from .cli import main


def run() -> int:
    code = main()
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(run())
