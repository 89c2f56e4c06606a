"""`python -m tensor_cast` and the `tensor-cast` console script: run the CLI, then exit fast.

The command runs as `main(own_process=True)` (process-wide shortcuts allowed: `cli.py`). The
process ends right after the command. Output is complete by then: `main` has written and
closed every file. Then:
- `gc.freeze()` moves every live object out of the garbage collector's reach;
- stdout and stderr are flushed and the `atexit` handlers run (logging's flush among them), as a
  normal exit does;
- the process ends with `os._exit`, skipping the interpreter's finalization, which tears down
  the millions of objects and thousands of modules torch, transformers and sympy leave behind
  (about 1.2 s of a 6 s `analyze` on 2 cores without the freeze, 0.13 s of CPU with it;
  `benchmarks/analyze_speed.py --cli` measures whole processes).
Only when another thread is still running does the process exit the normal way (which waits for
non-daemon threads).
"""

import atexit
import contextlib
import gc
import os
import sys
import threading

from .cli import main


def run() -> int:
    code = main(own_process=True)
    gc.freeze()
    if threading.active_count() > 1:  # let the interpreter wait for them, as it normally does
        return code
    for stream in (sys.stdout, sys.stderr):
        # a closed pipe or stream: what it would lose is lost either way
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    atexit._run_exitfuncs()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(run())
