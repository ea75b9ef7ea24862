"""``make bench``: time every registered method per image, next to pytorch-grad-cam's implementation of it.

``python -m camrepro.cli bench [options]`` (the Makefile's ``bench`` target) times, on MobileNetV2 at
``features.18`` with 224×224 photos, every method of :data:`camrepro.methods.REGISTRY` at batch 1 and 16, on
the CPU and on CUDA when it is available; pytorch-grad-cam (``grad-cam==1.5.7``) is timed in the same run for
the methods it implements, and so is a plain forward pass, the unit of cost. It writes
``bench/results/bench-<device>.csv`` and prints the table, and the time ratios that the papers' speed
claims are about (LIFT-CAM against a forward pass, Grad-CAM and Score-CAM; A-FMI and Opti-CAM against their
alternatives: :data:`RATIO_PAIRS`) to ``bench/results/ratios-<device>.csv``.

Protocol. Both implementations get the same images (packaged photos) and the same explicit target classes
(the predicted ones), and separate copies of the network: pytorch-grad-cam keeps hooks on its model for the
lifetime of its objects, and needs trainable parameters (it calls ``backward()``), as a user's model has. Each
(method, implementation) is first called once on one image: the warm-up, and a probe of its cost. A method
whose probe exceeds ``--expensive-seconds`` per image (Score-CAM: ~K forward passes per image; a probe below
five times the threshold is repeated once, since a first call also pays one-time costs) is timed on
``--expensive-images`` images (at most the batch size) with ``--expensive-repeats`` repeats, and its batch-1
row is the probe itself; every other one gets ``--warmup`` warm-up calls and the median of ``--repeats``
timed calls at the full batch. The CSV says how many images and repeats each number rests on.

Columns: device, method, batch, ours_s_per_image, theirs_s_per_image, ratio (theirs / ours: > 1 means ours
is faster), passes_formula (the method's cost in passes), forward_s_per_image (a plain forward pass at the
same batch, timed just before the method), ours_in_forwards (ours / forward), floor_s_per_image (the least the method's passes can cost,
measured in the same run: one forward pass for a method whose cost is one forward pass plus work on the
tail after the layer; for Opti-CAM, ``iterations`` × one forward + backward of the masked batch, timed with
:func:`camrepro.methods.opti_cam.mask_gradient` on the same images; empty where no floor is timed),
ours_over_floor (ours / floor: how close to its pass count a method gets), ours_images, ours_repeats,
theirs_images, theirs_repeats, note.

Training throughput. With ``--training`` (on in ``make bench``) it also times one SGD step of the LFI-CAM
chapter's three networks (plain ResNet, ABN, LFI-CAM) at the ``book`` profile's scale with
:func:`camrepro.experiments.lficam.training_throughput` and writes ``bench/results/training-<device>.csv``:
LFI-CAM's feature importance network costs training time that the paper does not report.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import inspect
import io
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from camrepro import methods

# our name → pytorch-grad-cam's class
THEIRS: dict[str, str] = {
    "grad-cam": "GradCAM",
    "grad-cam++": "GradCAMPlusPlus",
    "xgrad-cam": "XGradCAM",
    "layer-cam": "LayerCAM",
    "score-cam": "ScoreCAM",
    "ablation-cam": "AblationCAM",
}

COLUMNS = [
    "device",
    "method",
    "batch",
    "ours_s_per_image",
    "theirs_s_per_image",
    "ratio",
    "passes_formula",
    "forward_s_per_image",
    "ours_in_forwards",
    "floor_s_per_image",
    "ours_over_floor",
    "ours_images",
    "ours_repeats",
    "theirs_images",
    "theirs_repeats",
    "note",
]

Clock = Callable[[], float]


@dataclass(frozen=True)
class Timing:
    """Median seconds per image of a call, and how many images per call and calls it rests on."""

    s_per_image: float
    images: int
    repeats: int


@dataclass(frozen=True)
class Budget:
    """How long to time: full batches for cheap methods, a few images for expensive ones."""

    repeats: int = 3
    warmup: int = 1
    expensive_seconds: float = 2.0
    expensive_images: int = 2
    expensive_repeats: int = 1


DEFAULT_BUDGET = Budget()
# A first call up to this many times the expensive threshold is repeated before a method is called expensive.
CONFIRM_FACTOR = 5.0


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(
    call: Callable[[], object], repeats: int, device: torch.device, clock: Clock = time.perf_counter
) -> float:
    """The median wall time of ``repeats`` calls (the device synchronised around each)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    times = []
    for _ in range(repeats):
        _synchronize(device)
        start = clock()
        call()
        _synchronize(device)
        times.append(clock() - start)
    return statistics.median(times)


def time_method(
    run: Callable[[torch.Tensor, torch.Tensor], object],
    images: torch.Tensor,
    targets: torch.Tensor,
    batch_sizes: Sequence[int],
    budget: Budget,
    clock: Clock = time.perf_counter,
) -> dict[int, Timing]:
    """Seconds per image of ``run(images[:n], targets[:n])`` for each batch size, as :class:`Budget` says."""
    device = images.device
    probe = seconds_per_call(lambda: run(images[:1], targets[:1]), 1, device, clock)
    if budget.expensive_seconds < probe <= CONFIRM_FACTOR * budget.expensive_seconds:
        # a first call also pays one-time costs (lazy initialisation, caches): confirm with a second one
        probe = seconds_per_call(lambda: run(images[:1], targets[:1]), 1, device, clock)
    expensive = probe > budget.expensive_seconds
    out: dict[int, Timing] = {}
    for batch in batch_sizes:
        if batch > images.shape[0]:
            raise ValueError(f"batch {batch} is larger than the {images.shape[0]} images available")
        n = min(batch, budget.expensive_images) if expensive else batch
        if expensive and n == 1:
            out[batch] = Timing(probe, 1, 1)
            continue
        repeats = budget.expensive_repeats if expensive else budget.repeats
        x, t = images[:n], targets[:n]
        for _ in range(0 if expensive else budget.warmup):
            run(x, t)
        out[batch] = Timing(
            seconds_per_call(lambda x=x, t=t: run(x, t), repeats, device, clock) / n, n, repeats
        )
    return out


def _ours(name: str, model: nn.Module, layer: str) -> Callable[[torch.Tensor, torch.Tensor], object]:
    cls = methods.get(name)
    method = cls(model, layer=layer) if cls.needs_layer else cls(model)
    return lambda x, t: method(x, t)


# Methods whose cost is one forward pass plus work on the tail after the layer (a backward, or a forward and a
# backward of it): at the last layer the tail is a pooling and a linear layer, so one forward pass is their floor.
# Methods that run the tail once per channel (Ablation-CAM, LIME-CAM) or the network more than once have none here.
FORWARD_FLOOR = frozenset({"cam", "grad-cam", "grad-cam++", "xgrad-cam", "layer-cam", "lift-cam", "lrp-cam"})


def _default(cls: type, parameter: str) -> object:
    return inspect.signature(cls.__init__).parameters[parameter].default


def floor_per_image(
    name: str,
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    ours: dict[int, Timing],
    unit: dict[int, Timing],
    budget: Budget,
    clock: Clock = time.perf_counter,
) -> dict[int, float]:
    """Seconds per image of the passes ``name`` cannot avoid, for each batch size of ``ours``.

    A method of :data:`FORWARD_FLOOR` (one forward plus work on the tail after its layer) has the plain forward
    pass at the same batch as its floor (the tail of a last-layer explanation is a pooling and a linear layer). Opti-CAM's
    floor is ``iterations`` × (forward + backward of the masked batch), timed on the same number of images that
    Opti-CAM itself was timed on. Any other method gets no floor (an empty dict).
    """
    cls = methods.get(name)
    if name == "opti-cam":
        from camrepro.methods.opti_cam import mask_gradient

        iterations = int(_default(cls, "iterations"))
        out = {}
        for batch, timing in ours.items():
            x, t = images[: timing.images], targets[: timing.images]
            masks = torch.full((x.shape[0], *x.shape[-2:]), 0.5, device=x.device)
            step = seconds_per_call(
                lambda x=x, t=t, m=masks: mask_gradient(model, x, m, t), budget.repeats, x.device, clock
            )
            out[batch] = iterations * step / x.shape[0]
        return out
    if name in FORWARD_FLOOR:
        return {batch: unit[batch].s_per_image for batch in ours}
    return {}


@contextlib.contextmanager
def _theirs(
    name: str, model: nn.Module, layer: str
) -> Iterator[Callable[[torch.Tensor, torch.Tensor], object]]:
    """pytorch-grad-cam's ``name`` as ``run(images, targets)``; its hooks are removed afterwards."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam = getattr(pytorch_grad_cam, THEIRS[name])(model=model, target_layers=[model.get_submodule(layer)])

    def run(x: torch.Tensor, t: torch.Tensor) -> object:
        with contextlib.redirect_stderr(io.StringIO()):  # its progress bars
            return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in t])

    try:
        yield run
    finally:
        cam.activations_and_grads.release()


def run_benchmark(
    model: nn.Module,
    layer: str,
    images: torch.Tensor,
    names: Sequence[str],
    batch_sizes: Sequence[int] = (1, 16),
    budget: Budget = DEFAULT_BUDGET,
    compare: bool = True,
    log: Callable[[str], None] = print,
    clock: Clock = time.perf_counter,
) -> pd.DataFrame:
    """The benchmark table of the methods ``names`` for ``model`` on ``images`` (on the images' device)."""
    device = images.device
    model = model.to(device).eval()
    theirs_model = copy.deepcopy(model)
    for p in theirs_model.parameters():
        p.requires_grad_(True)
    with torch.no_grad():
        targets = model(images).argmax(dim=1)

    def forward(x: torch.Tensor, _t: torch.Tensor) -> object:
        with torch.no_grad():
            return model(x)

    unit_budget = Budget(budget.repeats, budget.warmup, math.inf)
    for batch in batch_sizes:  # the first calls at a batch size pay for memory allocation: not part of any row
        for _ in range(2):
            forward(images[:batch], targets[:batch])
    rows = []
    for name in names:
        cls = methods.get(name)
        note = ""
        # the unit is timed next to each method, so that a drift of the machine's speed during a long run
        # (frequency, other load) does not bias the ratios of the methods timed far from it
        unit = time_method(forward, images, targets, batch_sizes, unit_budget, clock)
        try:
            ours = time_method(_ours(name, model, layer), images, targets, batch_sizes, budget, clock)
        except (TypeError, ValueError) as exc:  # a method defined for another kind of network
            log(f"{name}: not applicable to this network ({exc})")
            ours, note = {}, f"not applicable: {exc}"
        floor = floor_per_image(name, model, images, targets, ours, unit, budget, clock) if ours else {}
        theirs: dict[int, Timing] = {}
        if compare and name in THEIRS and ours:
            with _theirs(name, theirs_model, layer) as run_theirs:
                theirs = time_method(run_theirs, images, targets, batch_sizes, budget, clock)
        for batch in batch_sizes:
            o, t = ours.get(batch), theirs.get(batch)
            rows.append(
                {
                    "device": device.type,
                    "method": name,
                    "batch": batch,
                    "ours_s_per_image": o.s_per_image if o else math.nan,
                    "theirs_s_per_image": t.s_per_image if t else math.nan,
                    "ratio": t.s_per_image / o.s_per_image if o and t else math.nan,
                    "passes_formula": cls.forward_passes,
                    "forward_s_per_image": unit[batch].s_per_image,
                    "ours_in_forwards": o.s_per_image / unit[batch].s_per_image if o else math.nan,
                    "floor_s_per_image": floor.get(batch, math.nan),
                    "ours_over_floor": o.s_per_image / floor[batch] if o and batch in floor else math.nan,
                    "ours_images": o.images if o else 0,
                    "ours_repeats": o.repeats if o else 0,
                    "theirs_images": t.images if t else 0,
                    "theirs_repeats": t.repeats if t else 0,
                    "note": note,
                }
            )
        if ours:
            summary = ", ".join(
                f"b{b}: {ours[b].s_per_image:.4f}s"
                + (f" vs {theirs[b].s_per_image:.4f}s" if b in theirs else "")
                for b in batch_sizes
            )
            log(f"{name}: {summary}")
    return pd.DataFrame(rows, columns=COLUMNS)


# (method, other) pairs whose time ratio the papers' speed claims are about; "forward" is the plain forward pass
RATIO_PAIRS: tuple[tuple[str, str], ...] = (
    ("lift-cam", "forward"),
    ("lift-cam", "grad-cam"),
    ("score-cam", "lift-cam"),
    ("lrp-cam", "lift-cam"),
    ("lime-cam", "lift-cam"),
    ("a-fmi", "grad-cam"),
    ("a-fmi", "integrated-gradients"),
    ("opti-cam", "score-cam"),
    ("opti-cam", "grad-cam"),
)


def ratio_table(table: pd.DataFrame, pairs: Sequence[tuple[str, str]] = RATIO_PAIRS) -> pd.DataFrame:
    """``method`` time / ``other`` time per image at each batch, for the pairs present in ``table``.

    Columns: device, batch, method, other, ratio (> 1: ``method`` is slower). Both times come from the same
    run; a pair with either time missing is left out.
    """
    rows = []
    for (device, batch), group in table.groupby(["device", "batch"], sort=False):
        seconds = dict(zip(group.method, group.ours_s_per_image))
        forward = dict(zip(group.method, group.forward_s_per_image))  # timed next to each method
        for method, other in pairs:
            a = seconds.get(method, math.nan)
            b = forward.get(method, math.nan) if other == "forward" else seconds.get(other, math.nan)
            if not (math.isnan(a) or math.isnan(b)):
                rows.append({"device": device, "batch": batch, "method": method, "other": other, "ratio": a / b})
    return pd.DataFrame(rows, columns=["device", "batch", "method", "other", "ratio"])


def format_table(table: pd.DataFrame) -> str:
    """The table as printed: seconds with 4 decimals, ratios with 2."""
    shown = table.drop(columns=["note"]).copy()
    for column in ("ours_s_per_image", "theirs_s_per_image", "forward_s_per_image", "floor_s_per_image"):
        shown[column] = shown[column].map(lambda v: "" if math.isnan(v) else f"{v:.4f}")
    for column in ("ratio", "ours_in_forwards", "ours_over_floor"):
        shown[column] = shown[column].map(lambda v: "" if math.isnan(v) else f"{v:.2f}")
    return shown.to_string(index=False)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m camrepro.cli bench",
        description="Time every method per image next to pytorch-grad-cam.",
    )
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, or auto (the CPU, and CUDA when available); default auto"
    )
    parser.add_argument("--methods", nargs="+", metavar="NAME", help="only these methods (default: all)")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 16], metavar="N")
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--layer", help="default: the model's last convolutional layer (features.18)")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per cheap method (median); default 5")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--expensive-seconds",
        type=float,
        default=2.0,
        help="a method whose first call takes longer per image than this is expensive",
    )
    parser.add_argument(
        "--expensive-images",
        type=int,
        default=2,
        help="images timed per batch for an expensive method (at most the batch size)",
    )
    parser.add_argument("--expensive-repeats", type=int, default=1)
    parser.add_argument("--no-compare", action="store_true", help="skip pytorch-grad-cam")
    parser.add_argument(
        "--training",
        action="store_true",
        help="also time a training step of the LFI-CAM chapter's networks (book profile scale)",
    )
    parser.add_argument("--out", default="bench/results", help="folder for bench-<device>.csv")
    args = parser.parse_args(list(argv))
    for flag in ("repeats", "expensive_images", "expensive_repeats", "size"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    if args.warmup < 0 or any(b < 1 for b in args.batch_sizes):
        parser.error("--warmup must be >= 0 and every batch size >= 1")
    if args.methods:
        unknown = [n for n in args.methods if n not in methods.REGISTRY]
        if unknown:
            parser.error(f"unknown method(s) {unknown}; known: {', '.join(methods.REGISTRY)}")
    return args


def _devices(choice: str) -> list[torch.device]:
    if choice == "auto":
        return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    device = torch.device(choice)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but CUDA is not available")
    return [device]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; write ``<out>/bench-<device>.csv`` per device and print the tables."""
    from camrepro import models
    from camrepro.data.photos import load_photos
    from camrepro.provenance import hardware

    args = parse_args([] if argv is None else argv)
    names = args.methods or list(methods.REGISTRY)
    layer = args.layer or models.MODELS[args.model].default_layer
    budget = Budget(
        args.repeats, args.warmup, args.expensive_seconds, args.expensive_images, args.expensive_repeats
    )
    photos = load_photos("ai-benchmark", n=max(args.batch_sizes), size=args.size).images
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for device in _devices(args.device):
        net, _ = models.load(args.model, device=device, size=args.size)
        info = hardware(device)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
        print(
            f"# {args.model} {layer}, {args.size}x{args.size}, device {device} "
            f"({info.get('gpu', info['processor'])}), torch threads {info['torch_threads']}, "
            f"load average {load:.1f}"
        )
        table = run_benchmark(
            net, layer, photos.to(device), names, args.batch_sizes, budget, compare=not args.no_compare
        )
        path = out / f"bench-{device.type}.csv"
        table.to_csv(path, index=False)
        print(format_table(table))
        print(f"written to {path}")
        ratios = ratio_table(table)
        if len(ratios):
            path = out / f"ratios-{device.type}.csv"
            ratios.to_csv(path, index=False)
            print(ratios.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
            print(f"written to {path}")
        if args.training:
            training = training_table(device)
            path = out / f"training-{device.type}.csv"
            training.to_csv(path, index=False)
            print(training.to_string(index=False))
            print(f"written to {path}")
    return 0


def training_table(device: torch.device, profile: str = "book") -> pd.DataFrame:
    """Training and inference images per second of the LFI-CAM chapter's networks at ``profile``'s scale."""
    from camrepro.experiments.lficam import training_throughput
    from camrepro.notebooks import load_profile

    columns = ["network", "batch_size", "steps", "seconds_per_step", "images_per_second", "overhead",
               "inference_images_per_second", "parameters", "input", "device", "threads"]
    return training_throughput(load_profile(profile)["lficam"], str(device)).loc[:, columns]
