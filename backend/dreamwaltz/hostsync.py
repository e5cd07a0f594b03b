"""Counting the host syncs a piece of training code makes, on any device.

On a GPU every read of a device value by Python (``.item()``, ``bool(t)``, ``.tolist()``, ``.cpu()``,
a boolean-mask index or ``nonzero``, whose output size the host must learn) waits for the GPU to
finish its queue: the GPU then idles while Python launches the next kernels. ``HostSyncCounter``
counts those calls through PyTorch's function hooks (``TorchFunctionMode``), so the same count is
taken on a CPU, where nothing waits, as on a GPU; ``cuda_sync_warnings`` is CUDA's own count
(``torch.cuda.set_sync_debug_mode``), for the GPU check.
"""

from __future__ import annotations

import warnings
from collections import Counter
from contextlib import contextmanager

import torch
from torch.overrides import TorchFunctionMode

# Calls whose result the host must see: the value itself or a size that depends on it.
_READS = {
    torch.Tensor.item: "item",
    torch.Tensor.__bool__: "bool",
    torch.Tensor.tolist: "tolist",
    torch.Tensor.cpu: "cpu",
    torch.Tensor.numpy: "numpy",
    torch.Tensor.nonzero: "nonzero",
    torch.nonzero: "nonzero",
    torch.Tensor.masked_select: "masked_select",
    torch.masked_select: "masked_select",
    torch.Tensor.__int__: "int",
    torch.Tensor.__float__: "float",
    torch.Tensor.__index__: "index",  # a tensor used as a Python index (a list's, a range's)
    torch.unique: "unique",
    torch.Tensor.unique: "unique",
}


def _bool_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


class HostSyncCounter(TorchFunctionMode):
    """``with HostSyncCounter() as syncs: ...``; ``syncs.total`` and ``syncs.kinds`` (by call)."""

    def __init__(self):
        super().__init__()
        self.kinds: Counter = Counter()

    @property
    def total(self) -> int:
        return sum(self.kinds.values())

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        kind = _READS.get(func)
        if kind is None and func is torch.Tensor.__getitem__ and len(args) > 1 and _bool_index(args[1]):
            kind = "bool_index"
        if kind == "cpu" and isinstance(args[0], torch.Tensor) and args[0].device.type == "cpu":
            kind = None  # a no-op on a CPU tensor; counted where the tensor lives on a GPU
        if kind is not None:
            self.kinds[kind] += 1
        return func(*args, **kwargs)


@contextmanager
def cuda_sync_warnings():
    """CUDA's own count of synchronising calls inside the block (a list that fills as they happen)."""
    caught: list = []
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield caught
        finally:
            torch.cuda.set_sync_debug_mode(previous)
            caught.extend(str(r.message) for r in records if "synchroniz" in str(r.message).lower())
