"""The process group of a ``torchrun`` launch: which rank this process is, how many there are, and barriers.

``torchrun --nproc-per-node N [--nnodes M ...] -m camrepro.cli compute ...`` starts N × M processes and sets
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in each; :func:`current` reads them. A plain ``python`` process is
the one-process launch (rank 0 of 1) and never touches ``torch.distributed``.

The group is used for barriers (and by DDP training for its gradient all-reduce); results travel through
files, never through collectives: gloo on CPU, NCCL on CUDA. Its timeout is long
(``CAMREPRO_DIST_TIMEOUT_HOURS``, 48 by default) because a rank that has finished its shard waits at a
barrier for the slowest rank, which at paper scale can be hours behind.

This module imports nothing else of the package: any layer may use it.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch

__all__ = ["Launch", "collective", "current", "launched_by_torchrun", "solo", "start", "stop"]

_SOLO = [0]   # depth of solo() blocks in this process


def launched_by_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


@dataclass(frozen=True)
class Launch:
    """This process's place in the launch: ``rank`` of ``world`` (``local_rank`` on its node)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        """Wait until every rank gets here (a no-op in a one-process launch)."""
        if not self.sharded:
            return
        import torch.distributed as dist

        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer (torchrun sets it)") from None


def current() -> Launch:
    """The launch this process belongs to, from torchrun's environment (rank 0 of 1 without it)."""
    if not launched_by_torchrun():
        return Launch()
    launch = Launch(rank=_int_env("RANK", 0), world=_int_env("WORLD_SIZE", 1),
                    local_rank=_int_env("LOCAL_RANK", 0))
    if launch.world < 1 or not 0 <= launch.rank < launch.world:
        raise ValueError(f"RANK={launch.rank} is not a rank of WORLD_SIZE={launch.world}")
    return launch


def start(device: str) -> Launch:
    """Join the process group of a torchrun launch (gloo for a CPU ``device``, NCCL for CUDA) and return the
    launch; a one-process launch is returned as is. On CUDA each rank takes the GPU of its ``LOCAL_RANK``, so
    a device named ``cuda`` means that GPU in every rank (and the cache keys, which name ``cuda``, agree)."""
    launch = current()
    if not launch.sharded:
        return launch
    import torch.distributed as dist

    cuda = torch.device(device).type == "cuda"
    if cuda:
        if torch.device(device).index is not None:
            raise ValueError(f"under torchrun name the device 'cuda', not {device!r}: each rank takes the GPU "
                             "of its LOCAL_RANK")
        if launch.local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {launch.local_rank} but this node has {torch.cuda.device_count()} "
                             "GPU(s): start at most that many processes per node (--nproc-per-node)")
        torch.cuda.set_device(launch.local_rank)
    if not dist.is_initialized():
        hours = float(os.environ.get("CAMREPRO_DIST_TIMEOUT_HOURS", "48"))
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(hours=hours))
    return launch


def stop() -> None:
    """Leave the process group, if this process joined one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def solo() -> Iterator[None]:
    """Mark a block that one rank runs alone while the others wait (a rank-0 unit, a rank's own shard):
    inside it :func:`collective` is False, so training inside it does not wait for ranks that never come."""
    _SOLO[0] += 1
    try:
        yield
    finally:
        _SOLO[0] -= 1


def collective() -> bool:
    """Whether every rank of a started process group runs this code together (so DDP may be used)."""
    import torch.distributed as dist

    return (_SOLO[0] == 0 and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1)
