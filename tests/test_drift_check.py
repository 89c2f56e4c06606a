"""The CI drift check's look-up of the newest transformers 5.x on the package index (.ci/drift_check.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SPEC = importlib.util.spec_from_file_location("drift_check", Path(__file__).parents[1] / ".ci" / "drift_check.py")
assert SPEC is not None and SPEC.loader is not None
drift_check = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(drift_check)

LISTING = """transformers (6.0.1)
Available versions: 6.0.1, 6.0.0, 5.25.0, 5.24.0, 5.9.0, 5.10.4, 4.57.6
  INSTALLED: 5.24.0
"""


def test_newest_5x_is_read_from_pips_listing_by_release_not_by_text():
    assert drift_check.newest_on_index(LISTING) == "5.25.0"
    assert drift_check.newest_on_index(LISTING.replace("5.25.0, ", "")) == "5.24.0"  # 5.24 > 5.10 > 5.9
    assert drift_check.newest_on_index(LISTING, major=4) == "4.57.6"


def test_a_listing_without_5x_releases_or_without_versions_gives_none():
    assert drift_check.newest_on_index("transformers (4.57.6)\nAvailable versions: 4.57.6, 4.57.5\n") is None
    assert drift_check.newest_on_index("ERROR: No matching distribution found for transformers\n") is None


def test_importing_the_check_leaves_the_environment_alone():
    # the check turns tensor_cast's disk cache off for its own run (main), not for whoever imports it
    import os

    before = dict(os.environ)
    SPEC.loader.exec_module(importlib.util.module_from_spec(SPEC))
    assert dict(os.environ) == before


IDENTICAL = ("drift check: 7 models identical under tensor_cast 0.1.0, torch 2.13.0+cpu, transformers 5.25.0 and "
             "tensor_cast 0.1.0, torch 2.13.0+cpu, transformers 5.24.0\n")
MOVED = ("drift check FAILED: Qwen3-8B under tensor_cast 0.1.0, torch 2.13.0+cpu, transformers 5.25.0 differs from the "
         "pinned run (tensor_cast 0.1.0, torch 2.13.0+cpu, transformers 5.24.0) in 3 counts, e.g. prefill 1x2048: "
         "flops: 1.0 vs 2.0\n")


def test_a_release_installed_without_its_dependencies_is_judged_by_its_own_comparison():
    status, line = drift_check.without_deps_verdict("5.25.0", 0, IDENTICAL)
    assert status == 0 and "7 models identical" in line and "5.25.0 installed alone" in line
    status, line = drift_check.without_deps_verdict("5.25.0", 1, MOVED)
    assert status == 1 and line == MOVED.strip()  # a moved count fails CI, naming the model and the count


def test_a_release_that_does_not_run_without_its_dependencies_is_reported_as_not_checked():
    crash = "Traceback (most recent call last):\n  ...\nModuleNotFoundError: No module named 'kernels'\n"
    status, line = drift_check.without_deps_verdict("5.25.0", 1, crash)
    assert status == 0 and line.count("\n") == 0
    assert "No module named 'kernels'" in line and line.endswith("5.25.0 was not checked")
    status, line = drift_check.without_deps_verdict("5.25.0", 0, "")  # ran, printed nothing: not a verdict
    assert status == 0 and "exit status 0" in line and "not checked" in line


def test_a_missing_dependency_is_found_anywhere_in_the_cause_chain():
    try:
        try:
            raise ModuleNotFoundError("No module named 'kernels'", name="kernels")
        except ModuleNotFoundError as inner:
            raise RuntimeError("could not capture the model") from inner
    except RuntimeError as outer:
        assert drift_check.missing_module(outer) == "kernels"
    assert drift_check.missing_module(AttributeError("'Norm' object has no attribute 'eps'")) is None
