"""Capture: a meta model's forward -> an FX graph with symbolic sizes (B, S, C)."""

from .capture import CapturedGraph, capture

__all__ = ["CapturedGraph", "capture"]
