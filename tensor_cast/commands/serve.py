"""`tensor-cast serve`: its row of the CLI table; the command lives in tensor_cast/serving/cli.py."""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_deployment_arguments, deployment_options

HELP = "simulate serving under a request stream"


class _Given:
    """A stand-in for argparse's subparsers that hands `add_serve` the parser already made."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser

    def add_parser(self, *args: Any, **kwargs: Any) -> argparse.ArgumentParser:
        return self.parser


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..serving.cli import add_serve

    add_serve(_Given(p), add_deployment_arguments)


def run(args: argparse.Namespace) -> int:
    from ..serving.cli import run_serve

    return run_serve(args, deployment_options(args))
