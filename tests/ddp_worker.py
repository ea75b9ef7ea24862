"""Run by tests/test_ddp_training.py under ``torchrun --nproc-per-node 2`` (gloo, CPU): one small training
with a checkpoint, optionally interrupted after an epoch, then the test-set evaluation under DDP and in one
process. Rank 0 writes what it saw to ``<out>/rank0.pt``.

Usage: ``torchrun ... tests/ddp_worker.py OUT CHECKPOINT EPOCHS [STOP_AFTER]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from camrepro import distributed
from camrepro.models.resnet_cifar import ResNetConfig
from camrepro.training import TrainConfig, build_network, evaluate, seeded, state_arrays, train

SPEC = {"kind": "lficam", "fin_blocks": 4,
        "config": ResNetConfig(num_classes=10, in_channels=1, widths=(4, 8, 8), blocks=(1, 1, 1)).to_dict()}


def data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 16, 16, generator=generator)
    labels = torch.randint(0, 10, (n,), generator=generator)
    images[torch.arange(n), 0, labels, labels] = 1.0   # a learnable hint
    return images, labels


class Interrupted(RuntimeError):
    pass


def main(out: str, checkpoint: str, epochs: int, stop_after: int | None) -> None:
    launch = distributed.start("cpu")
    config = TrainConfig(epochs=epochs, batch_size=16, lr=0.05, seed=3)
    with seeded(config.seed):
        model = build_network(SPEC)

    def stop(row):
        if stop_after is not None and row["epoch"] == stop_after:
            raise Interrupted(f"stopped after epoch {stop_after}")

    try:
        run = train(model, data(70, 0), config, test_data=data(33, 1), checkpoint=checkpoint, on_epoch_end=stop)
    except Interrupted:
        distributed.stop()
        return
    shared = evaluate(run.model, data(33, 1))          # every rank together: each test image once
    with distributed.solo():
        alone = evaluate(run.model, data(33, 1))       # this rank alone, all 33
    if launch.is_main:
        Path(out).mkdir(parents=True, exist_ok=True)
        torch.save({"history": run.history.to_dict("list"), "resumed_from": run.resumed_from,
                    "state": {k: torch.from_numpy(v) for k, v in state_arrays(run.model).items()},
                    "shared": shared, "alone": alone, "world": launch.world}, Path(out) / "rank0.pt")
    distributed.stop()


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], args[1], int(args[2]), int(args[3]) if len(args) > 3 else None)
