"""Reports: the result data model and its renderings (tables, JSON, Chrome traces, graph dumps)."""

from .report import FreeOp, Memory, OpRow, Report, ReportContext

__all__ = ["FreeOp", "Memory", "OpRow", "Report", "ReportContext"]
