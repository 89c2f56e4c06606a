"""The `tensor-cast` command line: the table of subcommands, parsing, and how errors are shown.

Each subcommand is one module of `tensor_cast/commands/` (`HELP`, `add_arguments(parser)`,
`run(args) -> int`) and one row of `SUBCOMMANDS`: adding a subcommand is adding a module and a
row. A module that sets `PAUSE_GC = True` (one bounded piece of work: `analyze`) runs with the
cyclic garbage collector paused (`gc_pause.py`), its imports of torch and transformers included;
the collector's state is restored when it returns. In a process of its own (`own_process=True`:
the `tensor-cast` script, `python -m tensor_cast`) such a command also keeps transformers from
importing scipy, which it needs for nothing tensor_cast runs (`compat.skip_scipy_in_transformers`).

Building the parser imports no torch or transformers, so `--help`, `--version`, argument errors,
`models` and `devices` answer at once; a subcommand imports the heavy modules inside `run`,
after checking its arguments.

User errors (`TensorCastError`, bad arguments) print one line on stderr and exit with status 2;
`--debug` keeps the traceback of a `TensorCastError`.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from importlib import import_module
from typing import Any, NoReturn

from .errors import TensorCastError
from .gc_pause import paused_gc

# subcommand name -> the module (under tensor_cast.commands) that defines it, in --help order
SUBCOMMANDS: dict[str, str] = {
    "analyze": "analyze",
    "models": "models",
    "devices": "devices",
    "serve": "serve",  # the serving simulator (tensor_cast/serving/)
    "search": "search",  # deployment search (tensor_cast/search/)
    "recommend": "recommend",
    "cache": "cache",  # the trace cache (tensor_cast/cache/)
}


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (the usage is in --help), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _VersionAction(argparse.Action):
    """`--version`: the three versions, and a warning on stderr for each outside the tested window."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        from .versions import TESTED_WINDOW, outside_window, versions

        print(" ".join(f"{name} {version}" for name, version in versions().items()))
        print("tested window: " + ", ".join(f"{name} {low} to {high}" for name, (low, high) in TESTED_WINDOW.items()))
        for warning in outside_window():
            print(f"tensor-cast: warning: {warning}", file=sys.stderr)
        parser.exit()


def command_module(name: str) -> Any:
    return import_module(f"tensor_cast.commands.{SUBCOMMANDS[name]}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tensor-cast", description="Predict what an LLM costs to run (time, memory, bytes, FLOPs) "
                     "per op, on an accelerator and deployment, from its HF config.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    parser.add_argument("--version", action=_VersionAction,
                        help="print tensor_cast, torch and transformers versions (warns outside the tested window)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(SUBCOMMANDS) + "}")
    for name in SUBCOMMANDS:
        module = command_module(name)
        module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.HELP))
    return parser


def main(argv: Sequence[str] | None = None, *, own_process: bool = False) -> int:
    """Run one command; `own_process`: this process exits after it (process-wide shortcuts allowed)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) and argument errors (2)
        return exc.code if isinstance(exc.code, int) else 2
    module = command_module(args.command)
    bounded = getattr(module, "PAUSE_GC", False)
    if bounded and own_process:
        from .compat import skip_scipy_in_transformers

        skip_scipy_in_transformers()
    try:
        with paused_gc() if bounded else contextlib.nullcontext():
            return int(module.run(args))
    except TensorCastError as exc:
        if args.debug:
            raise
        print(f"tensor-cast: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
