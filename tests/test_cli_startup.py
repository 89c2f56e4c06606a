"""The command line answers `--help`, `--version`, `models`, `devices` and argument errors without
importing torch or transformers, and its subcommand table is what the parser offers."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tensor_cast import cli
from tensor_cast.commands import analyze as analyze_command

PROBE = """
import sys
from tensor_cast.cli import main
status = main({argv!r})
heavy = sorted(m for m in ("torch", "transformers") if m in sys.modules)
print("HEAVY=" + ",".join(heavy), "STATUS=" + str(status), file=sys.stderr)
"""


@pytest.mark.parametrize("argv, status", [
    (["--help"], 0),
    (["--version"], 0),
    (["models"], 0),
    (["devices"], 0),
    (["analyze", "meta-llama/Llama-3.2-1B", "--device", "h100", "--batch-size", "x"], 2),
    (["analyze", "meta-llama/Llama-3.2-1B", "--device", "h100sxm"], 2),
    (["analyze", "meta-llama/Lama-3.1-8B", "--device", "h100"], 2),
    (["analyze", "meta-llama/Llama-3.2-1B", "--device", "h100", "--json", "/no/such/dir/r.json"], 2),
    (["analyze", "meta-llama/Llama-3.2-1B", "--device", "h100", "--by", "colour"], 2),
    (["frobnicate"], 2),
    (["serve", "meta-llama/Llama-3.2-1B", "--device", "h100", "--concurrency", "0", "--isl", "8", "--osl", "8"], 2),
    (["serve", "meta-llama/Llama-3.2-1B", "--device", "h100", "--engine", "tgi", "--concurrency", "2"], 2),
    (["serve", "meta-llama/Llama-3.2-1B", "--device", "h100", "--concurrency", "2", "--json", "/no/such/dir/r.json"], 2),
])
def test_answers_without_importing_torch(argv, status):
    done = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}, timeout=60)
    last = done.stderr.strip().splitlines()[-1]
    assert last == f"HEAVY= STATUS={status}", done.stderr
    if status == 2:  # one line naming the problem, then the probe's own line
        assert len(done.stderr.strip().splitlines()) == 2 and "error: " in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_every_subcommand_is_in_the_parser(capsys):
    parser = cli.build_parser()
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.SUBCOMMANDS:
        module = cli.command_module(name)
        assert module.HELP in out
        assert callable(module.run) and callable(module.add_arguments)
    assert parser.parse_args(["devices"]).command == "devices"


def test_choices_known_before_torch_equal_their_owners():
    from tensor_cast.api import CUDA_GRAPH_MODES
    from tensor_cast.ops.mla import MLA_FORMS
    from tensor_cast.report.table import GROUPINGS

    assert tuple(GROUPINGS) == analyze_command.GROUPINGS
    assert analyze_command.CUDA_GRAPH_MODES == CUDA_GRAPH_MODES
    assert analyze_command.MLA_FORMS == MLA_FORMS


def test_argument_errors_are_one_line(capsys):
    assert cli.main(["analyze", "m", "--device", "h100", "--top", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["tensor-cast analyze: error: argument --top: -1 is below 1 (accepted: integers >= 1) "
                   "(see tensor-cast analyze --help)"]


def test_analyze_runs_with_the_gc_paused_and_restores_it(monkeypatch):
    """`analyze` (PAUSE_GC) runs with the cyclic GC off, errors included; the caller's GC state is
    back afterwards. A subcommand without PAUSE_GC runs with the GC as the caller left it."""
    import gc

    from tensor_cast.commands import models as models_command

    seen = []
    monkeypatch.setattr(analyze_command, "run", lambda args: seen.append(gc.isenabled()) or 0)
    monkeypatch.setattr(models_command, "run", lambda args: seen.append(gc.isenabled()) or 0)
    assert gc.isenabled()
    assert cli.main(["analyze", "meta-llama/Llama-3.2-1B", "--device", "h100"]) == 0
    assert cli.main(["models"]) == 0
    assert seen == [False, True] and gc.isenabled()

    def fails(args):
        raise analyze_command.InvalidArgumentError("bad")

    monkeypatch.setattr(analyze_command, "run", fails)
    assert cli.main(["analyze", "meta-llama/Llama-3.2-1B", "--device", "h100"]) == 2 and gc.isenabled()


EXIT_PROBE = """
import atexit, sys
atexit.register(lambda: print("atexit ran", file=sys.stderr))
sys.argv = ["tensor-cast", *{argv!r}]
from tensor_cast.__main__ import run
sys.exit(run())
"""


@pytest.mark.parametrize("argv, status", [(["models"], 0), (["devices", "--bogus"], 2)])
def test_fast_exit_keeps_output_status_and_atexit_handlers(argv, status, tmp_path):
    """The CLI process ends with os._exit after flushing its streams and running the atexit
    handlers: a fully buffered stdout (a file) is complete, the status is the command's."""
    out = tmp_path / "out.txt"
    with out.open("w") as stdout:
        done = subprocess.run([sys.executable, "-c", EXIT_PROBE.format(argv=argv)], stdout=stdout,
                              stderr=subprocess.PIPE, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
                              timeout=60)
    assert done.returncode == status
    assert done.stderr.strip().endswith("atexit ran")
    if status == 0:
        lines = out.read_text().splitlines()
        assert "meta-llama/Llama-3.1-8B" in out.read_text() and len(lines) > 30  # every registry row, flushed


SCIPY_PROBE = """
import sys
from tensor_cast.cli import main
status = main(["analyze", "meta-llama/Llama-3.2-1B", "--device", "h100", "--num-hidden-layers", "1"], own_process={own})
print("STATUS", status, "LOSSES", "transformers.loss" in sys.modules, "SCIPY", "scipy" in sys.modules, file=sys.stderr)
"""


@pytest.mark.skipif(importlib.util.find_spec("scipy") is None, reason="scipy is not installed: nothing to skip")
def test_own_process_analysis_never_imports_scipy():
    """transformers imports scipy.optimize for object-detection losses only; the CLI's own process
    skips it (compat.skip_scipy_in_transformers), and the analysis is complete without it."""
    done = subprocess.run([sys.executable, "-c", SCIPY_PROBE.format(own=True)], capture_output=True, text=True,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "TENSOR_CAST_CACHE": "0"}, timeout=300)
    assert done.stderr.strip().splitlines()[-1] == "STATUS 0 LOSSES True SCIPY False"
    assert "Llama-3.2-1B" in done.stdout and "total" in done.stdout
