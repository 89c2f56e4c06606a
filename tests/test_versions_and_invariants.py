"""The dependency window, `--version`, and the checks that refuse a report with lost layers."""

from __future__ import annotations

import dataclasses
import operator
import tomllib
from pathlib import Path

import pytest
import torch

import tensor_cast
from tensor_cast import versions
from tensor_cast.capture.provenance import attach_provenance
from tensor_cast.cli import main
from tensor_cast.errors import CaptureError
from tensor_cast.invariants import check_layer_coverage
from tensor_cast.passes.node_facts import facts

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_declares_the_tested_window():
    """pyproject's bounds admit exactly the tested releases: >=low and below the patch after high."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for package, (low, high) in versions.TESTED_WINDOW.items():
        spec = next(d for d in deps if d.startswith(package))
        bounds = spec.removeprefix(package)
        major, minor, patch = high.split(".")
        expected = f"=={low}" if low == high else f">={low},<{major}.{minor}.{int(patch) + 1}"
        assert bounds == expected, spec


def test_version_flag_prints_the_three_versions_and_warns_outside_the_window(capsys, monkeypatch):
    assert main(["--version"]) == 0  # main returns the status (no SystemExit), like every command
    out = capsys.readouterr()
    assert out.out.startswith("tensor_cast ") and " torch " in out.out and " transformers " in out.out
    monkeypatch.setattr(versions, "versions",
                        lambda: {"tensor_cast": "0.1.0", "torch": "2.13.0+cpu", "transformers": "9.0.0"})
    assert main(["--version"]) == 0
    err = capsys.readouterr().err
    assert "transformers 9.0.0 is outside the tested window" in err and "torch" not in err.split("warning:")[1][:12]


@pytest.mark.parametrize(("version", "release"), [("2.13.0+cpu", (2, 13, 0)), ("5.24.0", (5, 24, 0)),
                                                  ("5.25.0.dev0", (5, 25, 0)), ("6.0.0rc1", (6, 0, 0))])
def test_release_parsing(version, release):
    assert versions.release(version) == release


class _Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(4, 4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x) + self.proj(x)  # called twice: dynamo keys the second call "<id>@1"


def test_provenance_names_modules_and_parameters_by_identity(capture_module):
    block = _Block()
    gm, _ = capture_module(block, torch.randn(2, 4))  # capture_module attaches provenance
    linears = [n for n in gm.graph.nodes if n.op == "call_function" and n.target is torch._C._nn.linear]
    assert len(linears) == 2
    assert all(list(n.meta["nn_module_stack"].values())[-1][0] == "proj" for n in linears)
    assert [facts(n).param for n in gm.graph.nodes if n.op == "placeholder"].count("proj.weight") == 1


def test_provenance_refuses_a_module_the_model_does_not_have(capture_module):
    gm, inputs = capture_module(_Block(), torch.randn(2, 4))
    node = next(n for n in gm.graph.nodes if n.meta.get("nn_module_stack"))
    node.meta["nn_module_stack"] = {"123": ("L['args'][0].ghost", torch.nn.Linear)}
    with pytest.raises(CaptureError, match=r"not modules of the model.*ghost.*transformers "):
        attach_provenance(gm, _Block(), inputs)


class _KernelFunc(torch.nn.Module):
    """What `kernels`' `@use_kernel_forward_from_hub` makes of a function (transformers 5.25 with `kernels`
    installed: `apply_rotary_pos_emb`): a parameterless module instance, a global of the modeling file."""

    kernel_layer_name = "rotary_pos_emb"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


double = _KernelFunc()  # the module-level global the model's forward calls


class _CallsAKernelFunc(_Block):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return double(self.proj(x))


def test_provenance_sees_through_a_hub_kernel_function_wrapper(capture_module):
    from tensor_cast.capture.provenance import kernel_function_wrappers

    model = _CallsAKernelFunc()
    assert id(double) in kernel_function_wrappers(model)
    gm, _ = capture_module(model, torch.randn(2, 4))  # attaches provenance: no CaptureError
    mul = next(n for n in gm.graph.nodes if n.op == "call_function" and n.target in (torch.mul, operator.mul))
    assert list(mul.meta.get("nn_module_stack", {}).values()) == []  # the wrapper's op belongs to its caller (the root)
    weighted = _KernelFunc()
    weighted.scale = torch.nn.Parameter(torch.ones(1))  # a module with weights is no function wrapper: not transparent
    assert id(weighted) not in kernel_function_wrappers(model)


@pytest.fixture(scope="module")
def qwen_rep():
    from tensor_cast.analysis import trace

    spec = tensor_cast.load_model("Qwen/Qwen3-0.6B")
    return spec, trace(spec)


def _costed(traced):
    from tensor_cast.backends.roofline import ExecutionMode
    from tensor_cast.costing import cost_graph

    return cost_graph(traced.graph, traced.captured.to_expr,
                      profile=tensor_cast.load_device("h100-sxm"), mode=ExecutionMode())


def test_every_layer_is_covered_on_a_real_model(qwen_rep):
    spec, traced = qwen_rep
    check_layer_coverage(_costed(traced), traced.rep)  # passes: 28 layers, one representative
    assert sorted(j for ix in traced.rep.layer_indices for j in ix) == list(range(spec.num_layers))


def test_a_layer_without_costed_ops_is_a_capture_error(qwen_rep):
    spec, traced = qwen_rep
    costed = _costed(traced)
    # what a tracer change that loses module paths does: every op looks model-level
    costed.nodes = [dataclasses.replace(n, rep_layer=None, phase="prologue") for n in costed.nodes]
    with pytest.raises(CaptureError, match=rf"Qwen/Qwen3-0.6B: layers 0-{spec.num_layers - 1} of "
                                           rf"{spec.num_layers} own no costed op.*torch .*transformers "):
        check_layer_coverage(costed, traced.rep)


def test_a_report_must_cover_exactly_the_spec_layers(qwen_rep):
    spec, traced = qwen_rep
    costed = _costed(traced)
    short = dataclasses.replace(traced.rep, layer_indices=(tuple(range(spec.num_layers - 2)),))
    with pytest.raises(CaptureError, match=rf"layers {spec.num_layers - 2}-{spec.num_layers - 1} of"):
        check_layer_coverage(costed, short)
    doubled = dataclasses.replace(traced.rep, layer_indices=((*range(spec.num_layers), 0),))
    with pytest.raises(CaptureError, match="layers 0 are counted more than once"):
        check_layer_coverage(costed, doubled)


def test_router_and_bias_dtypes_follow_the_checkpoint_not_the_release():
    from tensor_cast.models.build import build_representative

    rep = build_representative(tensor_cast.load_model("deepseek-ai/DeepSeek-V3"))
    moe = rep.model.get_submodule(f"{rep.layers_path}.{len(rep.kinds) - 1}.mlp.gate")
    assert moe.weight.dtype == torch.bfloat16  # the checkpoint's router weight (transformers 5.24 makes it fp32)
    assert moe.e_score_correction_bias.dtype == torch.float32  # DeepSeek's reference code: float32
