"""`tensor-cast search`: its row of the CLI table; the command lives in tensor_cast/search/cli.py."""

from __future__ import annotations

import argparse

from ..search.cli import SEARCH_HELP as HELP
from ..search.cli import add_search_arguments as add_arguments
from ..search.cli import run_search

__all__ = ["HELP", "add_arguments", "run"]


def run(args: argparse.Namespace) -> int:
    return run_search(args)
