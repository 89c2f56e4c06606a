"""HTML reports are self-contained (nothing fetched when viewed), small, and show the per-op data."""

from __future__ import annotations

import re

import tensor_cast
from tensor_cast.cli import main
from tensor_cast.report.html import analysis_html

FETCHING = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|<script|@import|url\(""", re.I)


def test_analysis_html_is_self_contained_and_shows_every_op_kind(tmp_path, capsys):
    path = tmp_path / "r.html"
    assert main(["analyze", "Qwen/Qwen3-0.6B", "--device", "h100-sxm", "--batch-size", "8", "--context-len", "1024",
                 "--html", str(path)]) == 0
    text = path.read_text()
    assert not FETCHING.search(text) and len(text.encode()) <= 2_000_000
    report = tensor_cast.analyze("Qwen/Qwen3-0.6B", device="h100-sxm", batch_size=8, query_len=1, context_len=1024)
    assert text == analysis_html(report)
    for kind in {row.kind for row in report.ops}:
        assert f">{kind}</text>" in text  # a bar per op kind
    # the timeline: one row of rectangles per real layer, plus prologue and epilogue
    assert text.count("font-size=9>") >= 3 and "<svg" in text and "Per-op breakdown" in text
    total_ms = sum(float(r.time_s) for r in report.ops) * 1e3
    shares = [float(m) for m in re.findall(r"\((\d+\.\d)%\)</text>", text)]
    assert abs(sum(shares) - 100) < 0.5 and total_ms > 0
