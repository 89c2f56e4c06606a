"""Every tensor_cast custom op: fake kernel consistent with the reference one (opcheck), meta-ready."""

from __future__ import annotations

import pytest
import torch

import tensor_cast.ops  # noqa: F401

tc = torch.ops.tensor_cast

CASES = {
    "attention": (tc.attention.default, lambda: (torch.randn(2, 8, 5, 16), torch.randn(2, 2, 5, 16),
                                                 torch.randn(2, 2, 5, 16), 7, 0.25, True, 3, None)),
    "attention_sinks": (tc.attention.default, lambda: (torch.randn(1, 4, 3, 8), torch.randn(1, 4, 3, 8),
                                                       torch.randn(1, 4, 3, 8), 0, 0.3, True, 0, torch.randn(4))),
    "rms_norm": (tc.rms_norm.default, lambda: (torch.randn(3, 8), torch.randn(8), 1e-6)),
    "add_rms_norm": (tc.add_rms_norm.default, lambda: (torch.randn(3, 8), torch.randn(3, 8), torch.randn(8), 1e-6)),
    "act_mul": (tc.act_mul.default, lambda: (torch.randn(3, 8), torch.randn(3, 8), "silu")),
    "rope": (tc.rope.default, lambda: ([torch.randn(2, 4, 5, 8), torch.randn(2, 2, 5, 8)], torch.randn(1, 5, 8),
                                       torch.randn(1, 5, 8))),
    "fused_linear": (tc.fused_linear.default, lambda: (torch.randn(3, 4, 8), [torch.randn(6, 8), torch.randn(2, 8)],
                                                       [None, torch.randn(2)])),
    "rotary_table": (tc.rotary_table.default, lambda: (torch.arange(5).unsqueeze(0), torch.randn(4), 1.0,
                                                       torch.bfloat16)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_opcheck(name):
    op, make_args = CASES[name]
    torch.library.opcheck(op, make_args())


def test_attention_reference_matches_sdpa_without_cache():
    q, k, v = torch.randn(1, 4, 6, 8), torch.randn(1, 2, 6, 8), torch.randn(1, 2, 6, 8)
    out = tc.attention.default(q, k, v, 0, 8 ** -0.5, True, 0, None)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1),
                                                           is_causal=True)
    torch.testing.assert_close(out, ref.transpose(1, 2))


def test_ops_run_on_meta():
    with torch.device("meta"):
        out = tc.attention.default(torch.empty(2, 8, 5, 16), torch.empty(2, 2, 5, 16), torch.empty(2, 2, 5, 16),
                                   4096, 0.1, True, 0, None)
    assert out.shape == (2, 5, 8, 16) and out.device.type == "meta"


def test_inference_dropout_is_free_and_training_dropout_an_error():
    """Dropout in eval (training=False) returns its input: no cost. In training mode it is not an
    inference op: an error naming it, never a silent zero."""
    from tensor_cast.backends.formulas import lookup
    from tensor_cast.backends.formulas.registry import OpCall, TensorInfo
    from tensor_cast.errors import UnknownOpError

    x = TensorInfo(shape=(4, 8), dtype=torch.bfloat16)
    rule = lookup(torch.nn.functional.dropout).rule
    counts = rule(OpCall(torch.nn.functional.dropout, (x,), {"p": 0.1, "training": False}, outputs=(x,)))
    assert counts.flops == {} and counts.bytes_read == 0 and counts.bytes_written == 0
    with pytest.raises(UnknownOpError, match="dropout with training=True and p=0.1"):
        rule(OpCall(torch.nn.functional.dropout, (x,), {"p": 0.1, "training": True}, outputs=(x,)))
