"""Resumable collection state: finished batches saved beside the bundle being built.

While ``lens collect --out X.safetensors`` runs, finished samples are saved
in ``X.safetensors.partial/`` as chunk files (each written atomically, so a
crash leaves whole chunks or none). A re-run of the same command reads the
chunks, skips the samples they hold and collects only the rest; the final
bundle is assembled from the chunks in sample order and written atomically,
then the folder is removed. Nothing under the final name ever looks finished
before it is.

``run.json`` holds the run's fingerprint (model, data content, everything that
changes the numbers); a re-run with a different fingerprint is refused rather
than mixing two runs. The batch size is not part of it, so a run that ran out
of memory can be resumed with a smaller ``--batch-size``.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from core.errors import LensError
from core.formats.bundle import BundleError, write_bundle_streaming
from core.io.atomic import atomic_write_bytes, atomic_write_text
from core.io.jsonfile import read_json, short_repr
from core.io.safetensors import read_safetensors

RUN_FILE = "run.json"
CHUNK_GLOB = "chunk-*.safetensors"
ASSEMBLY_BLOCK = 256  # samples per block when the final bundle is written


def partial_dir(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


class PartialRun:
    """The chunks of one unfinished collection run."""

    def __init__(self, out: Path, fingerprint: dict, writer: str = "r0") -> None:
        self.out = Path(out)
        self.folder = partial_dir(self.out)
        self.fingerprint = fingerprint
        self.writer = writer  # prefix of this process's chunk names

    def open(self) -> None:
        """Create the folder, or check that an existing one belongs to this same run."""
        run_file = self.folder / RUN_FILE
        if run_file.exists():
            try:
                saved = read_json(run_file, max_bytes=1024 * 1024)
            except LensError:  # unreadable, not UTF-8, malformed, too deep, too big
                saved = None
            if _canonical(saved) != _canonical(self.fingerprint):
                differs = _differences(saved, self.fingerprint)
                raise LensError(
                    f"{self.folder}: holds an unfinished run with different settings ({differs}); "
                    "re-run with the original settings to resume it, or delete the folder"
                )
            self._remove_leftover_temporaries()
            return
        if self.folder.exists() or self.folder.is_symlink():
            # Not ours (no run.json): adopting it would delete the user's files at the end.
            raise LensError(
                f"{self.folder}: exists but holds no {RUN_FILE} of a lens collect run; "
                "move it away or choose another --out"
            )
        self.folder.mkdir(parents=True)
        atomic_write_text(run_file, json.dumps(self.fingerprint, indent=1, sort_keys=True))

    def _remove_leftover_temporaries(self) -> None:
        """Delete the hidden ``.OUT.*.tmp`` a run killed during its final write left behind.

        Only while this run's ``run.json`` exists: it proves an earlier run of
        this same collection was writing ``out`` (the atomic writer's name
        pattern), so the temporary file is ours, not the user's.
        """
        for leftover in self.out.parent.glob(f".{glob.escape(self.out.name)}.*.tmp"):
            if leftover.is_file() and not leftover.is_symlink():
                leftover.unlink(missing_ok=True)

    def chunk_paths(self) -> list[Path]:
        return sorted(self.folder.glob(CHUNK_GLOB))

    def chunks(self) -> list[dict[str, np.ndarray]]:
        """Every saved chunk, memory-mapped; an unreadable one is deleted (it will be recollected)."""
        found = []
        for path in self.chunk_paths():
            try:
                _, tensors = read_safetensors(path)
            except BundleError:  # a torn write cannot happen, but a disk can fill or a user edit
                path.unlink(missing_ok=True)
                continue
            found.append(tensors)
        if any(set(c) != set(found[0]) for c in found):
            raise LensError(f"{self.folder}: chunks hold different statistics; delete the folder")
        return found

    def done_samples(self) -> set[int]:
        """Indices (into the run's sample list) of every sample already saved."""
        return {int(i) for chunk in self.chunks() for i in np.asarray(chunk["sample_index"])}

    def write_chunk(self, arrays: dict[str, np.ndarray]) -> Path:
        """Save finished samples atomically; ``arrays`` must hold ``sample_index``."""
        from safetensors.numpy import save

        # Each writer (a torchrun rank) has its own name space, so ranks never collide.
        number = 0
        while (self.folder / f"chunk-{self.writer}-{number:06d}.safetensors").exists():
            number += 1
        path = self.folder / f"chunk-{self.writer}-{number:06d}.safetensors"
        contiguous = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        atomic_write_bytes(path, save(contiguous))
        return path

    def assemble(self, out: Path, names: list[str], metadata: dict[str, str]) -> int:
        """Write the bundle from the chunks, in sample order, streaming; returns the sample count.

        ``names`` are the bundle tensors to write, in file order; each chunk holds
        them with one row per sample.
        """
        chunks = self.chunks()
        where: dict[int, tuple[int, int]] = {}
        for c, chunk in enumerate(chunks):
            for row, sample in enumerate(np.asarray(chunk["sample_index"]).tolist()):
                if sample in where:
                    raise LensError(
                        f"{self.folder}: sample {sample} was saved twice; delete the folder"
                    )
                where[sample] = (c, row)
        order = sorted(where)
        layout = {}
        for name in names:
            template = chunks[0][name]
            layout[name] = (template.dtype, (len(order), *template.shape[1:]))

        def blocks():
            for name in names:
                for start in range(0, len(order), ASSEMBLY_BLOCK):
                    picks = [where[s] for s in order[start : start + ASSEMBLY_BLOCK]]
                    yield name, np.stack([chunks[c][name][row] for c, row in picks])
                    _test_pause_in_final_write()

        write_bundle_streaming(out, layout, blocks(), metadata)
        return len(order)

    def remove(self) -> None:
        """Delete the folder, which :meth:`open` proved is this run's (it holds our run.json)."""
        if (self.folder / RUN_FILE).is_file() and not self.folder.is_symlink():
            shutil.rmtree(self.folder, ignore_errors=True)


def _test_pause_in_final_write() -> None:
    """Kill tests set ``LENS_TEST_PAUSE_IN_FINAL_WRITE`` to hold a run inside its final write."""
    seconds = os.environ.get("LENS_TEST_PAUSE_IN_FINAL_WRITE")
    if seconds:
        print("lens-test: final write started", file=sys.stderr, flush=True)
        time.sleep(float(seconds))


def _canonical(doc: object) -> str:
    """A run's fingerprint as text, so ``true`` never equals ``1`` (as ``True == 1`` in Python)."""
    return json.dumps(doc, sort_keys=True)


def _differences(saved: object, current: dict) -> str:
    if not isinstance(saved, dict):
        return "its run.json is unreadable"
    keys = sorted(
        k
        for k in set(saved) | set(current)
        if _canonical(saved.get(k)) != _canonical(current.get(k))
    )
    return (
        ", ".join(
            f"{short_repr(k)}: {short_repr(saved.get(k))} → {short_repr(current.get(k))}"
            for k in keys[:3]
        )
        or "?"
    )
