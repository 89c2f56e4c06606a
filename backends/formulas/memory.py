"""Data-movement cost rules: embedding gathers, concatenation, copies, indexing, creation,
and the small sort/select kernels (top-k, argmax, cumsum).

A copy reads and writes its bytes; a gather reads the rows it selects (plus the indices) and
writes them; creating a filled tensor writes it; `empty` allocates without touching memory.
Views are free and live in `free.py`; here are the ops that are views only sometimes
(`reshape`, `contiguous`, `getitem`), decided from the argument's layout.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F

from ..counts import ZERO, Counts
from .registry import OpCall, TensorInfo, register

aten = torch.ops.aten


def copy_counts(call: OpCall) -> Counts:
    return Counts(bytes_read=call.in_bytes, bytes_written=call.out_bytes)


@register(F.embedding, torch.embedding, aten.embedding.default, kind="embedding")
def embedding(call: OpCall) -> Counts:
    """Gather: reads the selected rows (output-sized) and the indices, writes the output.

    `F.embedding(indices, weight)` and `aten.embedding(weight, indices)` order their arguments
    differently: the indices are the integer tensor.
    """
    indices = next(t for t in call.inputs if not t.dtype.is_floating_point)
    return Counts(bytes_read=call.out_bytes + indices.nbytes, bytes_written=call.out_bytes)


@register(torch.cat, torch.stack, torch.concat, torch.concatenate, aten.cat.default, aten.stack.default,
          F.pad, torch.flip, "Tensor.flip", "Tensor.repeat", torch.repeat_interleave, "Tensor.repeat_interleave",
          torch.roll, torch.tril, torch.triu, "Tensor.tril", "Tensor.triu", aten.copy.default, torch.clone,
          "Tensor.clone", "Tensor.copy_", aten.clone.default, kind="memory")
def copy(call: OpCall) -> Counts:
    return copy_counts(call)


@register("Tensor.contiguous", kind="memory")
def contiguous(call: OpCall) -> Counts:
    """A copy only when the input is not already contiguous."""
    return ZERO if call.arg(0).contiguous else copy_counts(call)


@register("Tensor.reshape", torch.reshape, aten.reshape.default, kind="memory")
def reshape(call: OpCall) -> Counts:
    """A view of a contiguous tensor; a copy otherwise."""
    return ZERO if call.arg(0).contiguous else Counts(bytes_read=call.out_bytes, bytes_written=call.out_bytes)


def _has_tensor_index(index: object) -> bool:
    if isinstance(index, TensorInfo):
        return True
    if isinstance(index, (list, tuple)):
        return any(_has_tensor_index(i) for i in index)
    return False


@register(operator.getitem, kind="memory")
def getitem(call: OpCall) -> Counts:
    """Slicing is a view; indexing with a tensor is a gather; picking from a tuple is free."""
    source, index = call.arg(0), call.arg(1)
    if not isinstance(source, TensorInfo) or not _has_tensor_index(index):
        return ZERO
    index_bytes = sum((t.nbytes for t in call.inputs[1:]), 0)
    return Counts(bytes_read=call.out_bytes + index_bytes, bytes_written=call.out_bytes)


@register(torch.gather, "Tensor.gather", torch.index_select, "Tensor.index_select", torch.take_along_dim,
          aten.index.Tensor, aten.gather.default, kind="memory")
def gather(call: OpCall) -> Counts:
    index_bytes = sum((t.nbytes for t in call.inputs[1:]), 0)
    return Counts(bytes_read=call.out_bytes + index_bytes, bytes_written=call.out_bytes)


@register(torch.scatter, "Tensor.scatter", "Tensor.scatter_", "Tensor.scatter_add", "Tensor.scatter_add_",
          torch.scatter_add, "Tensor.index_add_", "Tensor.index_add", torch.index_add, "Tensor.index_copy_",
          "Tensor.masked_scatter", kind="memory")
def scatter(call: OpCall) -> Counts:
    """Reads the updates and indices, writes the output."""
    return Counts(bytes_read=call.in_bytes, bytes_written=call.out_bytes)


@register(torch.zeros, torch.ones, torch.full, torch.zeros_like, torch.ones_like, torch.full_like,
          torch.arange, torch.tensor, torch.linspace, "Tensor.new_zeros", "Tensor.new_ones", "Tensor.new_full",
          "Tensor.zero_", "Tensor.fill_", "Tensor.new_tensor", torch.eye, aten.zeros.default, aten.full.default,
          kind="memory")
def fill(call: OpCall) -> Counts:
    """Creating a filled tensor writes it once."""
    return Counts(bytes_written=call.out_bytes)


@register(torch.empty, torch.empty_like, "Tensor.new_empty", aten.empty.memory_format, kind="memory")
def empty(call: OpCall) -> Counts:
    """Allocation only: no kernel, no traffic."""
    return ZERO


@register(torch.topk, "Tensor.topk", torch.sort, "Tensor.sort", torch.argsort, "Tensor.argsort",
          torch.argmax, "Tensor.argmax", torch.argmin, "Tensor.argmin", torch.cumsum, "Tensor.cumsum",
          torch.histc, "Tensor.histc", torch.bincount, torch.multinomial, F.one_hot, torch.diff,
          aten.topk.default, aten.sort.default, aten.argmax.default, aten.cumsum.default, kind="other")
def select_sort(call: OpCall) -> Counts:
    """Selection/sort/scan kernels: read the input once, write the output; ~log work ignored."""
    return Counts(flops={"vector": call.arg(0).numel}, bytes_read=call.in_bytes, bytes_written=call.out_bytes)
