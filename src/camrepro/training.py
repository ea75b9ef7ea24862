"""A small training engine for the chapter's networks: seeded, resumable, cached by content hash.

``train(model, data, TrainConfig(...))`` runs SGD with momentum (and weight decay) under a step or cosine
learning-rate schedule (optionally after a linear warm-up), evaluating on a test set after every epoch. It is

* **deterministic**: the shuffling and augmentation of epoch e draw from generators seeded by (seed, e), and
  the global RNG is forked and seeded per epoch, so on CPU a run repeats bit for bit, and a resumed run
  repeats the uninterrupted one;
* **device-agnostic**: the model and each batch are moved to ``device``; nothing names CUDA;
* **resumable**: with ``checkpoint=path`` the state after every epoch (weights, optimiser, history, a
  fingerprint of model, data and configuration) is written to a temporary file in the same folder and
  renamed over ``path`` (``os.replace`` is atomic), so ``path`` always holds a complete checkpoint. A later
  call with the same path resumes after the last finished epoch; a checkpoint that cannot be read or whose
  fingerprint differs is discarded and training restarts from scratch (``TrainResult.restarted`` says why);
* **cached**: :func:`train_cached` stores the trained weights (as numpy arrays) and the history through
  :func:`camrepro.cache.cached`, keyed by the parameters and the package's source, so rebuilding the book
  loads the weights instead of retraining; its in-progress checkpoint lives beside the cache entry.

Bad data is rejected before training with an error naming the problem: images that are not float
[N, C, H, W] with the channels the model takes, labels that are not one integer per image or lie outside the
model's classes, an empty dataset.

Progress is a tqdm bar per run, off by default unless stderr is a terminal (so notebooks stay quiet).

**Under torchrun** (every rank calling :func:`train` together, :func:`camrepro.distributed.collective`) the
model is wrapped in DistributedDataParallel (gloo on CPU, NCCL on CUDA). Each epoch's shuffled batches are
the one-process run's, and rank r trains on ``batch[r::world]`` of each — a distributed sampler without
padding, so no image is seen twice in an epoch. Each rank's loss is weighted by its share of the batch, so
the averaged gradient is the whole batch's mean gradient; a rank whose share of the last batch is empty
sits it out (DDP's join). Rank 0 writes the checkpoints (the others wait), every rank resumes from the same
file, and test-set evaluation splits the test images the same way and sums over ranks: each counted once.
What differs from one process: batch normalisation sees each rank's half batch, and crop-flip augmentation
draws per rank, so the weights agree to a tolerance, not bitwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from camrepro import cache, distributed, tensors
from camrepro.models.abn import ABNNet
from camrepro.models.attention_output import logits_of
from camrepro.models.lficam import LFICAMNet
from camrepro.models.resnet_cifar import CifarResNet, ResNetConfig
from camrepro.progress import progress, progress_enabled

SCHEDULES = ("step", "cosine", "constant")
AUGMENTATIONS = ("none", "crop-flip")
CHECKPOINT_VERSION = 1
TensorData = tuple[torch.Tensor, torch.Tensor]
Data = TensorData | Dataset


# -------------------------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (JSON-able through :meth:`to_dict`).

    ``milestones`` are epochs at whose start the step schedule multiplies the rate by ``gamma`` (the LFI-CAM
    code: 150 and 225 of 300). ``warmup_epochs`` ramps the rate linearly from its first step.
    ``augment="crop-flip"``: random crop after ``pad`` pixels of zero padding, and horizontal flip (CIFAR).
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: str = "cosine"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    augment: str = "none"
    pad: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "milestones", tuple(self.milestones))

        def positive_int(name: str, value: object, low: int = 1) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int ≥ {low}, got {value!r}")

        positive_int("epochs", self.epochs)
        positive_int("batch_size", self.batch_size)
        positive_int("pad", self.pad, 0)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
        for name in ("lr", "momentum", "weight_decay", "gamma", "warmup_epochs"):
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {self.augment!r}")
        if not all(isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in self.milestones):
            raise ValueError(f"milestones must be positive epoch numbers, got {self.milestones!r}")
        if list(self.milestones) != sorted(set(self.milestones)):
            raise ValueError(f"milestones must be increasing, got {self.milestones!r}")

    def to_dict(self) -> dict[str, object]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> TrainConfig:
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; "
                             f"known: {sorted(cls.__dataclass_fields__)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def learning_rate(config: TrainConfig, epoch: int, batch: int, batches: int) -> float:
    """The rate of step ``batch`` (0-based) of ``batches`` in epoch ``epoch`` (0-based).

    step: lr · γ^(number of milestones ≤ epoch); cosine: lr · ½(1 + cos(π t / epochs)) with t = epoch +
    batch / batches, the fraction of training done before this step; constant: lr. A warm-up of W epochs
    multiplies by min(1, (epoch + (batch + 1) / batches) / W).
    """
    if batches < 1 or not 0 <= batch < batches or epoch < 0:
        raise ValueError(f"invalid position epoch={epoch}, batch={batch} of {batches}")
    if config.schedule == "step":
        rate = config.lr * config.gamma ** sum(1 for m in config.milestones if m <= epoch)
    elif config.schedule == "cosine":
        rate = config.lr * 0.5 * (1.0 + math.cos(math.pi * (epoch + batch / batches) / config.epochs))
    else:
        rate = config.lr
    if config.warmup_epochs > 0:
        rate *= min(1.0, (epoch + (batch + 1) / batches) / config.warmup_epochs)
    return rate


# ----------------------------------------------------------------------------------------------------- data

def _num_classes(model: nn.Module) -> int | None:
    value = getattr(model, "num_classes", None)
    return int(value) if isinstance(value, int) else None


def _in_channels(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    return config.in_channels if isinstance(config, ResNetConfig) else None


def check_labels(labels: torch.Tensor, count: int, num_classes: int | None,
                 what: str = "labels") -> torch.Tensor:
    """One integer label per image, each in [0, num_classes)."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor of class indices, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"{what} must be an integer tensor, got dtype {labels.dtype}")
    if labels.dim() != 1 or labels.shape[0] != count:
        raise ValueError(f"{what} must be one class index per image ({count}), "
                         f"got shape {tuple(labels.shape)}")
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(f"{what} contain the negative class {int(labels.min())}")
    if num_classes is not None and labels.numel() and int(labels.max()) >= num_classes:
        raise ValueError(f"{what} contain class {int(labels.max())}, out of range for a model with "
                         f"{num_classes} classes")
    return labels.long()


def check_images(images: torch.Tensor, in_channels: int | None, what: str = "images") -> torch.Tensor:
    """Finite float images [N, C, H, W] (:func:`camrepro.tensors.check_images`; the range is not checked, as
    augmentation may leave it) with C the model's input channels (or 1 for an RGB model)."""
    images = tensors.check_images(images, unit_range=False, what=what, batch_letter="N")
    if in_channels is not None and images.shape[1] not in {in_channels, 1}:
        raise ValueError(f"{what} have {images.shape[1]} channels; the model takes {in_channels}")
    return images


def check_data(data: Data, model: nn.Module, what: str = "training data") -> Data:
    """Validate a dataset for ``model``: ``(images, labels)`` tensors, or a non-empty torch Dataset."""
    if isinstance(data, tuple):
        if len(data) != 2:
            raise ValueError(f"{what} must be a pair (images, labels), got a tuple of {len(data)}")
        images, labels = data
        if isinstance(images, torch.Tensor) and images.dim() >= 1 and images.shape[0] == 0:
            raise ValueError(f"{what} is empty")
        images = check_images(images, _in_channels(model), f"{what} images")
        labels = check_labels(labels, images.shape[0], _num_classes(model), f"{what} labels")
        if not bool(torch.isfinite(images).all()):
            raise ValueError(f"{what} images contain NaN or infinite values")
        return images, labels
    if isinstance(data, Dataset):
        try:
            size = len(data)
        except TypeError:
            raise TypeError(f"{what} must be a sized Dataset (with __len__)") from None
        if size == 0:
            raise ValueError(f"{what} is empty")
        return data
    raise TypeError(f"{what} must be a pair (images, labels) of tensors or a torch Dataset, "
                    f"got {type(data).__name__}")


def _data_size(data: Data) -> int:
    return int(data[0].shape[0]) if isinstance(data, tuple) else len(data)


def data_fingerprint(data: Data) -> str:
    """A short hash of a dataset's content (tensors) or its type and size (a Dataset)."""
    digest = hashlib.sha256()
    if isinstance(data, tuple):
        images, labels = data
        digest.update(str(tuple(images.shape)).encode())
        digest.update(images.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        digest.update(labels.detach().to("cpu", torch.int64).contiguous().numpy().tobytes())
    else:
        digest.update(f"{type(data).__qualname__}:{len(data)}".encode())
    return digest.hexdigest()[:16]


def _generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    # Distinct, reproducible streams per (seed, epoch, purpose); the constants only spread the seeds apart.
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch * 7_919 + stream) % (2**63 - 1))


def epoch_batches(size: int, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """The shuffled index batches of one epoch (the last batch may be smaller; none is empty)."""
    order = torch.randperm(size, generator=_generator(seed, epoch, 0))
    return list(order.split(batch_size))


def crop_flip(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Random crop of each image after zero padding by ``pad`` pixels, then a random horizontal flip."""
    n, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    rows = (dy.view(n, 1) + torch.arange(height).view(1, height)).to(images.device)
    cols = (dx.view(n, 1) + torch.arange(width).view(1, width))
    cols = torch.where(flip.view(n, 1), cols.flip(1), cols).to(images.device)
    index = torch.arange(n, device=images.device).view(n, 1, 1, 1)
    channel = torch.arange(images.shape[1], device=images.device).view(1, -1, 1, 1)
    return padded[index, channel, rows.view(n, 1, height, 1), cols.view(n, 1, 1, width)]


def _iterate(data: Data, batches: Sequence[torch.Tensor], workers: int) -> Iterator[TensorData]:
    if isinstance(data, tuple):
        images, labels = data
        for index in batches:
            yield images[index], labels[index]
    else:
        loader = DataLoader(data, batch_sampler=[b.tolist() for b in batches], num_workers=workers)
        yield from loader


def _check_batch(images: object, labels: object, model: nn.Module) -> TensorData:
    if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError("every dataset item must be (image tensor [C, H, W], int label)")
    images = check_images(images, _in_channels(model), "a batch of images")
    return images, check_labels(labels, images.shape[0], _num_classes(model), "a batch of labels")


# ---------------------------------------------------------------------------------------------- checkpoints

def save_checkpoint(payload: Mapping[str, object], path: str | Path) -> Path:
    """``torch.save`` to a temporary file in ``path``'s folder, flushed to disk, then renamed over
    ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as fh:
            torch.save(dict(payload), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path) -> dict[str, object] | None:
    """The checkpoint at ``path``, or None when there is none or it cannot be read (corrupt, truncated)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a truncated or foreign file is not a checkpoint: the caller restarts
        return None
    return payload if isinstance(payload, dict) and payload.get("version") == CHECKPOINT_VERSION else None


def _remove_stale_temporaries(path: Path) -> None:
    for stale in path.parent.glob(f".tmp-{path.name}-*"):
        stale.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------- training

@dataclass
class TrainResult:
    """A finished run: the trained model (eval mode), one history row per epoch, how the run started."""

    model: nn.Module
    history: pd.DataFrame
    resumed_from: int = 0                     # epochs already done when this call started
    restarted: str | None = None              # why an existing checkpoint was discarded, if one was
    seconds: float = 0.0                      # wall time of this call


def evaluate(model: nn.Module, data: Data, *, batch_size: int = 256, device: str | torch.device = "cpu",
             workers: int = 0) -> dict[str, float]:
    """Mean cross-entropy of the logits and accuracy on ``data`` (eval mode; the model's flags restored)."""
    data = check_data(data, model, "evaluation data")
    size = _data_size(data)
    rank, world = _ranks()
    batches = list(torch.arange(size)[rank::world].split(batch_size))   # under DDP: this rank's images
    flags = [(m, m.training) for m in model.modules()]
    total_loss, correct = 0.0, 0
    try:
        model.eval()
        with torch.no_grad():
            for images, labels in _iterate(data, batches, workers):
                images, labels = _check_batch(images, labels, model)
                logits = logits_of(model(images.to(device)))
                labels = labels.to(logits.device)
                total_loss += float(torch.nn.functional.cross_entropy(logits, labels, reduction="sum"))
                correct += int((logits.argmax(1) == labels).sum())
    finally:
        for module, flag in flags:
            module.training = flag
    if world > 1:
        total_loss, correct = _sum_over_ranks(total_loss, correct)
    return {"loss": total_loss / size, "accuracy": correct / size}


def _ranks() -> tuple[int, int]:
    """(rank, world) when every rank trains together under torchrun, else (0, 1)."""
    if not distributed.collective():
        return 0, 1
    import torch.distributed as dist

    return dist.get_rank(), dist.get_world_size()


def _sum_over_ranks(*values: float) -> list[float]:
    import torch.distributed as dist

    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    total = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return total.tolist()


def _same_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (batch-norm statistics) on every rank: each rank updated its own from its half
    batches, and the checkpoint, the evaluation and the stored weights must be one model."""
    import torch.distributed as dist

    for buffer in model.buffers():
        dist.broadcast(buffer.data, 0)


def _distributed(model: nn.Module, device: str | torch.device) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    if torch.device(device).type == "cuda":
        return DistributedDataParallel(model, device_ids=[torch.cuda.current_device()])
    return DistributedDataParallel(model)


def _fingerprint(model: nn.Module, config: TrainConfig, data: Data) -> str:
    shapes = [(name, list(p.shape)) for name, p in model.state_dict().items()]
    payload = json.dumps({"model": type(model).__qualname__, "shapes": shapes, "config": config.to_dict(),
                          "data": data_fingerprint(data)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _progress_enabled(progress: bool | None) -> bool:
    return progress_enabled() if progress is None else bool(progress)


@contextlib.contextmanager
def seeded(seed: int, device: str | torch.device = "cpu") -> Iterator[None]:
    """Seed torch's global RNG for the block and restore its previous state afterwards (CPU, and the
    current device's generator when ``device`` is an accelerator)."""
    device = torch.device(device)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
        torch.manual_seed(seed)
        yield


def train(model: nn.Module, data: Data, config: TrainConfig, *, test_data: Data | None = None,
          device: str | torch.device = "cpu", checkpoint: str | Path | None = None,
          progress: bool | None = None, workers: int = 0,
          on_epoch_end: Callable[[dict[str, float]], None] | None = None) -> TrainResult:
    """Train ``model`` on ``data`` (``(images, labels)`` tensors or a Dataset of ``(image, label)``).

    The loss is ``model.training_loss(output, labels)`` when the model defines it (ABN: two cross-entropies),
    else the cross-entropy of its logits. History columns: epoch, lr (of the epoch's last step), train_loss,
    train_accuracy (running, in train mode), test_loss, test_accuracy (when ``test_data`` is given), seconds,
    images_per_second (training steps only).

    Args:
        checkpoint: file of the per-epoch checkpoint (resumed from when it matches; see the module docstring).
        progress: a tqdm bar per epoch; None shows it only when stderr is a terminal.
        workers: DataLoader worker processes for a Dataset (tensors are indexed directly).
        on_epoch_end: called with each epoch's history row, after its checkpoint is written.

    Example:
        >>> result = train(net, (images, labels), TrainConfig(epochs=3, lr=0.1), test_data=(x_test, y_test))
        >>> result.history.test_accuracy.iloc[-1]
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    data = check_data(data, model)
    if test_data is not None:
        test_data = check_data(test_data, model, "test data")
    started = time.perf_counter()
    model.to(device)
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError("the model has no trainable parameters")
    # foreach: one multi-tensor update instead of a Python loop over the parameters; the same bits (tested),
    # and 0.90-0.95x the time of a step of the LFI-CAM chapter's small networks on the CPU
    optimizer = torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=config.nesterov, foreach=True)
    fingerprint = _fingerprint(model, config, data)
    history: list[dict[str, float]] = []
    start_epoch, restarted = 0, None
    path = Path(checkpoint) if checkpoint is not None else None
    rank, world = _ranks()
    if world > 1 and config.batch_size < world:
        raise ValueError(f"batch_size {config.batch_size} is smaller than the {world} ranks training together: "
                         "every rank needs a share of every batch")
    if path is not None:
        if rank == 0:   # another rank may be reading the checkpoint; only rank 0 writes beside it
            _remove_stale_temporaries(path)
        state = load_checkpoint(path)
        if state is None and path.is_file():
            restarted = "the checkpoint could not be read"
        elif state is not None and state.get("fingerprint") != fingerprint:
            restarted = "the checkpoint belongs to another model, data set or configuration"
        elif state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            history = [dict(row) for row in state["history"]]
            start_epoch = int(state["epoch"])

    loss_of = getattr(model, "training_loss", None)
    size = _data_size(data)
    show = _progress_enabled(progress)
    net = _distributed(model, device) if world > 1 else model   # the replicas share one gradient
    for epoch in range(start_epoch, config.epochs):
        batches = epoch_batches(size, config.batch_size, config.seed, epoch)
        whole = [len(b) for b in batches]
        if world > 1:   # this rank's share of every batch; an empty share (the last batch) is sat out
            batches = [b[rank::world] for b in batches if len(b[rank::world])]
        augment = _generator(config.seed, epoch, 1 + 7 * rank)
        model.train()
        tick = time.perf_counter()
        total_loss, correct, seen, train_time = 0.0, 0, 0, 0.0
        bar = _progress_bar(len(batches), f"epoch {epoch + 1}/{config.epochs}", show)
        try:
            with seeded(config.seed * 1_000 + epoch, device), \
                    (net.join() if world > 1 else contextlib.nullcontext()):
                for step, (images, labels) in enumerate(_iterate(data, batches, workers)):
                    images, labels = _check_batch(images, labels, model)
                    if config.augment == "crop-flip":
                        images = crop_flip(images, config.pad, augment)
                    step_tick = time.perf_counter()
                    rate = learning_rate(config, epoch, step, len(whole))
                    for group in optimizer.param_groups:
                        group["lr"] = rate
                    images, labels = images.to(device), labels.to(device)
                    output = net(images)
                    loss = loss_of(output, labels) if callable(loss_of) else \
                        torch.nn.functional.cross_entropy(logits_of(output), labels)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"the training loss became {float(loss)} at epoch "
                                                 f"{epoch + 1}, step {step + 1}: lower the learning rate")
                    optimizer.zero_grad(set_to_none=True)
                    # DDP averages the ranks' gradients; weighting by the share makes it the batch's mean
                    share = labels.shape[0] * world / whole[step] if world > 1 else 1.0
                    (loss * share if world > 1 else loss).backward()
                    optimizer.step()
                    train_time += time.perf_counter() - step_tick
                    total_loss += float(loss.detach()) * labels.shape[0]
                    correct += int((logits_of(output).detach().argmax(1) == labels).sum())
                    seen += labels.shape[0]
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{total_loss / seen:.3f}", refresh=False)
        finally:
            if bar is not None:
                bar.close()
        rate = learning_rate(config, epoch, len(whole) - 1, len(whole))
        if world > 1:
            _same_buffers(model)
            total_loss, correct, seen, train_time = _sum_over_ranks(total_loss, correct, seen, train_time)
            train_time /= world   # the ranks trained side by side
        row = {"epoch": epoch + 1, "lr": rate, "train_loss": total_loss / seen,
               "train_accuracy": correct / seen}
        if test_data is not None:
            scores = evaluate(model, test_data, device=device, workers=workers)
            row.update(test_loss=scores["loss"], test_accuracy=scores["accuracy"])
        row.update(seconds=time.perf_counter() - tick, images_per_second=seen / max(train_time, 1e-9))
        history.append(row)
        if path is not None:
            if rank == 0:
                save_checkpoint({"version": CHECKPOINT_VERSION, "fingerprint": fingerprint, "epoch": epoch + 1,
                                 "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                 "history": history}, path)
            if world > 1:
                distributed.current().barrier()   # the checkpoint is complete past this point
        if on_epoch_end is not None:
            on_epoch_end(dict(row))
    model.eval()
    return TrainResult(model=model, history=pd.DataFrame(history), resumed_from=start_epoch,
                       restarted=restarted, seconds=time.perf_counter() - started)


def _progress_bar(total: int, description: str, show: bool):
    return progress(total=total, desc=description, unit="batch", show=True) if show else None


# ----------------------------------------------------------------------------------------- networks on disk

NETWORKS: dict[str, type[nn.Module]] = {"plain": CifarResNet, "abn": ABNNet, "lficam": LFICAMNet}


def build_network(spec: Mapping[str, object]) -> nn.Module:
    """A network from its ``spec()``: ``{"kind": "plain" | "abn" | "lficam", "config": {...}, options}``."""
    if not isinstance(spec, Mapping) or "kind" not in spec or "config" not in spec:
        raise ValueError(f"a network spec needs 'kind' and 'config', got {spec!r}")
    kind = spec["kind"]
    if kind not in NETWORKS:
        raise ValueError(f"unknown network kind {kind!r}; expected one of {sorted(NETWORKS)}")
    options = {k: v for k, v in spec.items() if k not in ("kind", "config")}
    config = ResNetConfig.from_dict(spec["config"])
    return NETWORKS[kind](config, **options)


def state_arrays(model: nn.Module) -> dict[str, np.ndarray]:
    """The state dict as numpy arrays (what :func:`camrepro.cache.cached` stores)."""
    return {name: tensor.detach().cpu().numpy().copy() for name, tensor in model.state_dict().items()}


def load_state_arrays(model: nn.Module, arrays: Mapping[str, np.ndarray]) -> nn.Module:
    """Load :func:`state_arrays` output into ``model`` (strict: every key must match)."""
    model.load_state_dict({name: torch.from_numpy(np.asarray(value)) for name, value in arrays.items()})
    return model


def save_network(model: nn.Module, path: str | Path) -> Path:
    """Write ``{spec, state}`` of a chapter network atomically (temporary file + rename)."""
    spec = getattr(model, "spec", None)
    if not callable(spec):
        raise TypeError(f"{type(model).__name__} has no spec(); only the chapter's networks can be saved "
                        "this way")
    return save_checkpoint({"version": CHECKPOINT_VERSION, "spec": json.dumps(spec()),
                            "state": model.state_dict()}, path)


def load_network(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The network written by :func:`save_network`, in eval mode on ``device``."""
    payload = load_checkpoint(path)
    if payload is None or "spec" not in payload:
        raise ValueError(f"{path} is not a network file written by save_network (missing, corrupt or "
                         "foreign)")
    model = build_network(json.loads(payload["spec"]))
    model.load_state_dict(payload["state"])
    return model.to(device).eval()


# ---------------------------------------------------------------------------------------------- cached runs

@dataclass
class CachedTraining:
    """A network trained (or loaded) through the cache: the model, its history and the cache entry."""

    model: nn.Module
    history: pd.DataFrame
    result: cache.Result


def _training_params(spec: Mapping[str, object], config: TrainConfig,
                     data_params: Mapping[str, object] | None) -> dict[str, object]:
    return {"network": dict(spec), "train": config.to_dict(), "data": dict(data_params or {})}


def is_trained(chapter: str, name: str, spec: Mapping[str, object], config: TrainConfig, *,
               data_params: Mapping[str, object] | None = None, root: Path | None = None) -> bool:
    """Whether :func:`train_cached` with these arguments would load a stored result rather than train."""
    _, final = cache.entry(chapter, name, _training_params(spec, config, data_params), root)
    return (final / cache.MANIFEST).is_file()


def train_cached(chapter: str, name: str, spec: Mapping[str, object], config: TrainConfig,
                 data: Callable[[], Data], *, test_data: Callable[[], Data] | None = None,
                 data_params: Mapping[str, object] | None = None, device: str | torch.device = "cpu",
                 progress: bool | None = None, workers: int = 0, root: Path | None = None) -> CachedTraining:
    """Train the network ``spec`` (seeded with ``config.seed``) unless the cache already holds it.

    ``data`` and ``test_data`` are called only when training is needed; ``data_params`` must describe them
    (it is part of the cache key with ``spec`` and ``config``). An interrupted run resumes from the
    checkpoint ``<results>/<chapter>/.checkpoints/<name>-<key>.pt``, removed once the result is stored.
    Under torchrun, when every rank calls it together, they train with DDP and rank 0 stores the result.
    """
    params = _training_params(spec, config, data_params)
    key = cache.cache_key(f"{chapter}/{name}", params)
    checkpoint = (root or cache.results_root()) / chapter / ".checkpoints" / f"{name}-{key}.pt"

    def build() -> nn.Module:
        with seeded(config.seed):
            return build_network(spec)

    def compute() -> dict[str, object]:
        run = train(build(), data(), config, test_data=test_data() if test_data is not None else None,
                    device=device, checkpoint=checkpoint, progress=progress, workers=workers)
        history = run.history.assign(resumed_from=run.resumed_from)
        return {"history": history, "state": state_arrays(run.model)}

    if distributed.collective():   # every rank trains (DDP); rank 0 stores the one result
        _, final = cache.entry(chapter, name, params, root)
        if not (final / cache.MANIFEST).is_file():
            outputs = compute()
            if distributed.current().is_main:
                cache.cached(chapter, name, params, lambda: outputs, device=str(device), root=root)
                checkpoint.unlink(missing_ok=True)
            distributed.current().barrier()
        result = cache.load(final)
    else:
        result = cache.cached(chapter, name, params, compute, device=str(device), root=root)
        checkpoint.unlink(missing_ok=True)
    model = load_state_arrays(build_network(spec), result.arrays["state"]).to(device).eval()
    return CachedTraining(model=model, history=result.tables["history"], result=result)
