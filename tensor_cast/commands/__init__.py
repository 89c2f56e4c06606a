"""The `tensor-cast` subcommands, one module each (the table is `tensor_cast.cli.SUBCOMMANDS`).

A subcommand module defines `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`.
Module level and `add_arguments` must not import torch or transformers (directly or through a
tensor_cast module that does): `--help`, argument errors, `models` and `devices` answer in a
fraction of a second, and `run` checks what it can (paths, device, choices) before importing the
heavy modules. `tests/test_cli_startup.py` keeps this true.
"""
