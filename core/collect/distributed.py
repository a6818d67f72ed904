"""Collection under ``torchrun`` / ``accelerate launch``: which share of the work is ours.

Ranks share no tensors: each runs the model on its own batches and saves its
finished samples as chunks in the run's ``OUT.partial/`` folder (so ``--out``
must be on a filesystem every rank sees). The only coordination needed is a
few barriers, done over torch.distributed's gloo backend (CPU), which works
the same whether the model runs on CPUs or on GPUs — no NCCL communicator is
created. Every rank plans the same batches from the same data; batch ``b``
belongs to rank ``b % world``. Rank 0 assembles the bundle once all ranks are
done, exactly as a single process would.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from core.errors import LensError

#: Ranks wait at the final barrier for the slowest rank; collection can take hours.
BARRIER_TIMEOUT = timedelta(hours=48)


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def mine(self, batches: list) -> list:
        """This rank's share of a plan: every ``world``-th batch from ``rank``."""
        return batches[self.rank :: self.world]


def ranks_from_env() -> Ranks:
    """The launcher's RANK / WORLD_SIZE / LOCAL_RANK (torchrun, accelerate, SLURM+torchrun)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise LensError("RANK / WORLD_SIZE / LOCAL_RANK must be integers") from None
    if world < 1 or not 0 <= rank < world:
        raise LensError(f"RANK={rank} is outside 0..WORLD_SIZE-1 (WORLD_SIZE={world})")
    return Ranks(rank, world, local_rank)


class Coordinator:
    """Barriers between ranks; a no-op for a single process."""

    def __init__(self, ranks: Ranks) -> None:
        self.ranks = ranks
        self._owned = False
        if not ranks.distributed:
            return
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="gloo", timeout=BARRIER_TIMEOUT)
            self._owned = True
        self._group = dist.new_group(backend="gloo", timeout=BARRIER_TIMEOUT)

    def barrier(self) -> None:
        if self.ranks.distributed:
            import torch.distributed as dist

            dist.barrier(group=self._group)

    def close(self) -> None:
        if self._owned:
            import torch.distributed as dist

            dist.destroy_process_group()
            self._owned = False
