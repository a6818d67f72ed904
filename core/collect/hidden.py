"""Hidden states between streamed layers, on disk in the model's dtype.

Layer-by-layer collection runs every batch through layer i before layer i+1
is loaded, so the hidden states of every batch must wait somewhere: here, in
two flat files of the run's partial folder (one read, one written, swapped
after each layer). Batch ``b`` of shape ``[B_b, S_b, H]`` sits at a fixed
offset computed from the batch plan, so a resumed run finds it again, and a
torchrun rank has its own pair of files. Bytes are written with ``pwrite``
and read back through ``np.memmap``; numpy has no bfloat16, so values travel
as raw bytes and torch reinterprets them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import LensError

SLOTS = ("a", "b")


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    return f"{count:.1f} TiB"


class HiddenStore:
    """Two slots of per-batch hidden states ``[B, S, H]`` for one writer (rank)."""

    def __init__(
        self, folder: Path, writer: str, shapes: list[tuple[int, int]], hidden: int, dtype: Any
    ) -> None:
        import torch  # lazy: optional dependency (the collect extra)

        self.folder = Path(folder)
        self.writer = writer
        self.dtype = dtype
        self.hidden = hidden
        self.shapes = shapes
        itemsize = torch.empty((), dtype=dtype).element_size()
        self.offsets: list[int] = []
        self.sizes: list[int] = []
        offset = 0
        for batch, seq in shapes:
            self.offsets.append(offset)
            size = batch * seq * hidden * itemsize
            self.sizes.append(size)
            offset += size
        self.slot_bytes = offset
        self._fds: dict[str, int] = {}

    def path(self, slot: str) -> Path:
        return self.folder / f"hidden-{self.writer}-{slot}.bin"

    def check_disk(self) -> None:
        """Refuse, in one line, a run whose two slots the disk cannot hold."""
        have = sum(self.path(s).stat().st_size for s in SLOTS if self.path(s).exists())
        need = 2 * self.slot_bytes
        free = shutil.disk_usage(self.folder).free
        if free + have < need:
            raise LensError(
                f"{self.folder}: --stream-layers needs {human_bytes(need)} of disk for hidden "
                f"states between layers, and only {human_bytes(free + have)} is free there; "
                "free space, lower --num-samples or --max-length, or use --shard"
            )

    def open(self, slot: str) -> None:
        """Open a slot for writing (created at its full size; old contents are overwritten)."""
        fd = os.open(self.path(slot), os.O_RDWR | os.O_CREAT, 0o644)
        os.ftruncate(fd, self.slot_bytes)
        self._fds[slot] = fd

    def write(self, slot: str, batch: int, tensor: Any) -> None:
        import torch  # lazy: optional dependency (the collect extra)

        data = tensor.detach().to("cpu", self.dtype).contiguous().view(-1).view(torch.uint8)
        array = data.numpy()
        if array.nbytes != self.sizes[batch]:
            raise LensError(f"hidden states of batch {batch} have an unexpected shape")
        view = memoryview(array)
        written = 0
        while written < len(view):
            written += os.pwrite(self._fds[slot], view[written:], self.offsets[batch] + written)

    def close(self, slot: str, sync: bool = True) -> None:
        fd = self._fds.pop(slot, None)
        if fd is not None:
            if sync:
                os.fsync(fd)
            os.close(fd)

    def read(self, slot: str, batch: int, device: Any) -> Any:
        import torch  # lazy: optional dependency (the collect extra)

        rows, seq = self.shapes[batch]
        mapped = np.memmap(
            self.path(slot),
            dtype=np.uint8,
            mode="r",
            offset=self.offsets[batch],
            shape=(self.sizes[batch],),
        )
        raw = torch.from_numpy(np.array(mapped))
        del mapped
        return raw.view(self.dtype).view(rows, seq, self.hidden).to(device)

    def close_all(self) -> None:
        for slot in list(self._fds):
            self.close(slot, sync=False)
