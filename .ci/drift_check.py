"""Dependency-drift check: full-depth counts must not depend on the transformers release.

`python .ci/drift_check.py --write counts.json` records, for each case below, the full-depth
FLOPs, bytes, KV cache, weights and collectives (count and bytes) of a prefill and a decode step;
`python .ci/drift_check.py --compare counts.json` recomputes them under whatever transformers is
installed and prints one line per model whose numbers moved, naming the versions, exit 1.
.ci/run records them with the pinned install and compares with the newest transformers 5.x the
package index offers, in a second environment; when pip cannot install that newest release there
(its own dependencies missing from the index), the comparison says which release it did check and
which it could not, and with `--newest-without-deps` (.ci/run passes it; it installs into the running
environment) installs that release alone (`pip install --no-deps`) and compares again: the counts need
torch and transformers' model code, not every dependency of a release (transformers 5.25.0 requires
`kernels` 0.19, which the index lacks). A release that does not run without its dependencies is
reported as not checked; one that runs and moves a count fails the check.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

from tensor_cast.versions import release  # (no torch, no transformers: package metadata only)

CASES: dict[str, tuple[str, dict[str, object]]] = {
    "Llama-3.1-8B": ("meta-llama/Llama-3.1-8B", {}),
    "Qwen3-8B": ("Qwen/Qwen3-8B", {}),
    "Qwen3-30B-A3B": ("Qwen/Qwen3-30B-A3B", {}),
    "DeepSeek-V3": ("deepseek-ai/DeepSeek-V3", {"tp": 8}),
    "Qwen3-Next": ("Qwen/Qwen3-Next-80B-A3B-Instruct", {}),
    "gpt-oss-120b": ("openai/gpt-oss-120b", {}),
    "Llama-3.1-70B TP4": ("meta-llama/Llama-3.1-70B", {"tp": 4}),
    "DeepSeek-V4-Flash": ("deepseek-ai/DeepSeek-V4-Flash", {}),  # module swaps that read transformers' attributes
}
POINTS = {"prefill 1x2048": (1, 2048, 0), "decode 64 at 4096": (64, 1, 4096)}
COLLECTIVE_KINDS = ("collective",)


def missing_module(exc: BaseException) -> str | None:
    """The module whose absence raised `exc` (anywhere in its cause chain): a dependency not installed."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ModuleNotFoundError):
            return seen.name or str(seen)
        seen = seen.__cause__ or seen.__context__
    return None


def first_line(exc: BaseException) -> str:
    """`Type: the message's first line` (at most 200 characters of it) for a one-line report."""
    message = str(exc).splitlines()
    return f"{type(exc).__name__}: {message[0][:200] if message else ''}"


def counts() -> tuple[dict[str, dict[str, float]], dict[str, BaseException]]:
    """(the counts of every case this install analyzes, the error of every case it could not)."""
    import tensor_cast

    out: dict[str, dict[str, float]] = {}
    errors: dict[str, BaseException] = {}
    for label, (model, deployment) in CASES.items():
        try:
            symbolic = tensor_cast.analyze(model, device="h100-sxm", symbolic=True, **deployment)  # type: ignore[arg-type]
        except Exception as exc:  # reported by the caller: a defect under this install, or a missing dependency
            errors[label] = exc
            continue
        row: dict[str, float] = {}
        for name, point in POINTS.items():
            report = symbolic.evaluate(*point)
            collectives = [r for r in report.ops if r.kind in COLLECTIVE_KINDS]
            row |= {f"{name}: flops": float(report.total_flops), f"{name}: bytes": float(report.total_bytes),
                    f"{name}: kv cache bytes": float(report.memory.kv_cache_bytes),
                    f"{name}: weights bytes": float(report.memory.weights_bytes),
                    f"{name}: ops": float(len(report.ops)),
                    f"{name}: collectives": float(len(collectives)),
                    f"{name}: collective bytes": float(report.total_comm_bytes)}
        out[label] = row
    return out, errors


def newest_on_index(listing: str, major: int = 5) -> str | None:
    """The newest release of that major version in `pip index versions transformers`'s output, or None."""
    found = re.search(r"^Available versions: (.+)$", listing, re.MULTILINE)
    if not found:
        return None
    releases = [v.strip() for v in found.group(1).split(",") if re.fullmatch(rf"{major}\.\d+(\.\d+)*", v.strip())]
    return max(releases, key=release, default=None)


def unchecked_release(installed: str) -> tuple[str | None, str | None]:
    """(newer release, one line) when the package index offers a newer transformers 5.x than pip could
    install here (its own dependencies do not resolve from the index): that release was not checked;
    (None, a line) when the index lists no 5.x; (None, None) when `installed` is the newest."""
    listing = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "transformers"],
                             capture_output=True, text=True, check=False).stdout
    newest = newest_on_index(listing)
    if newest is None:
        return None, "drift check: the package index did not list transformers 5.x releases; the newest was not looked up"
    if release(newest) > release(installed):
        return newest, (f"drift check: transformers {newest} is on the package index but pip installed {installed} "
                        f"here (the newer release's dependencies do not resolve from the index): {newest} was not "
                        "checked with them")
    return None, None


def without_deps_verdict(newest: str, returncode: int, output: str) -> tuple[int, str]:
    """(exit status, line) of the comparison run under `newest` installed without its dependencies:
    its own result where it ran (identical: 0; a moved count: 1, its FAILED lines), else not checked (0)."""
    lines = [line for line in output.splitlines() if line.startswith("drift check")]
    if returncode == 0 and any("identical" in line for line in lines):
        return 0, f"{lines[-1]} (transformers {newest} installed alone, without its dependencies)"
    if returncode == 1 and any("FAILED" in line for line in lines):
        return 1, "\n".join(line for line in lines if "FAILED" in line)
    last = output.strip().splitlines()[-1][:160] if output.strip() else f"exit status {returncode}"
    return 0, (f"drift check: transformers {newest} installed without its dependencies did not run ({last}): "
               f"{newest} was not checked")


def check_without_deps(newest: str, pinned: str) -> int:
    """Install `newest` alone into the running environment and compare again (`--newest-without-deps`)."""
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", f"transformers=={newest}"],
                             capture_output=True, text=True, check=False)
    if install.returncode != 0:
        print(f"drift check: pip could not install transformers {newest} even without its dependencies: not checked")
        return 0
    run = subprocess.run([sys.executable, __file__, "--compare", pinned], capture_output=True, text=True, check=False)
    status, line = without_deps_verdict(newest, run.returncode, run.stdout + run.stderr)
    print(line)
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", help="record the counts of this install into a JSON file")
    mode.add_argument("--compare", help="compare this install's counts with a recorded JSON file")
    parser.add_argument("--newest-without-deps", action="store_true",
                        help="with --compare: where pip could not install the index's newest transformers 5.x, "
                             "install it alone (--no-deps) into this environment and compare again (CI)")
    args = parser.parse_args()
    # (set here, not at import: the tests import this module for its version look-up)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ["TENSOR_CAST_CACHE"] = "0"  # every count from a fresh trace under this install, never a cached one
    from tensor_cast.versions import versions_line

    found, errors = counts()
    if args.write:
        for label, exc in errors.items():
            print(f"drift check FAILED: {label} could not be analyzed under the pinned install {versions_line()}: "
                  f"{first_line(exc)}")
        if errors:
            return 1
        with open(args.write, "w") as f:
            json.dump({"versions": versions_line(), "counts": found}, f, indent=1, sort_keys=True)
        print(f"drift check: recorded {len(found)} models under {versions_line()}")
        return 0
    with open(args.compare) as f:
        pinned = json.load(f)
    failures = 0
    unchecked = []
    for label, exc in errors.items():
        module = missing_module(exc)
        if module is not None:  # a dependency this install lacks (a release installed alone): not a verdict
            unchecked.append(label)
            print(f"drift check: {label} needs module {module!r}, not installed here: not checked under {versions_line()}")
            continue
        failures += 1
        print(f"drift check FAILED: {label} could not be analyzed under {versions_line()} (the pinned run "
              f"{pinned['versions']} could): {first_line(exc)}")
    for label, row in pinned["counts"].items():
        if label in errors:
            continue
        moved = [key for key, value in row.items() if found.get(label, {}).get(key) != value]
        if moved:
            failures += 1
            first = moved[0]
            print(f"drift check FAILED: {label} under {versions_line()} differs from the pinned run "
                  f"({pinned['versions']}) in {len(moved)} counts, e.g. {first}: "
                  f"{found.get(label, {}).get(first)} vs {row[first]}")
    if failures:
        return 1
    checked = len(pinned["counts"]) - len(unchecked)
    print(f"drift check: {checked} models identical under {versions_line()} and {pinned['versions']}"
          + (f" ({len(unchecked)} not checked: a dependency missing)" if unchecked else ""))
    import transformers

    newest, note = unchecked_release(transformers.__version__)
    if note:
        print(note)
    if newest and args.newest_without_deps:
        return check_without_deps(newest, args.compare)
    return 0


if __name__ == "__main__":
    sys.exit(main())
