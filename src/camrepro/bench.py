"""``make bench``: time every registered method per image, next to pytorch-grad-cam's implementation of it.

``python -m camrepro.cli bench [options]`` (the Makefile's ``bench`` target) times, on MobileNetV2 at
``features.18`` with 224×224 photos, every method of :data:`camrepro.methods.REGISTRY` at batch 1 and 16, on
the CPU and on CUDA when it is available; pytorch-grad-cam (``grad-cam==1.5.7``) is timed in the same run for
the methods it implements, and so is a plain forward pass (on channels-last inputs on the CPU, as our methods'
passes run: :func:`camrepro.tensors.forward_channels_last`), the unit of cost. It writes
``bench/results/bench-<device>.csv`` and prints the table, and the time ratios that the papers' speed
claims are about (LIFT-CAM against a forward pass, Grad-CAM and Score-CAM; A-FMI and Opti-CAM against their
alternatives: :data:`RATIO_PAIRS`) to ``bench/results/ratios-<device>.csv``.

Protocol. Both implementations get the same images (packaged photos) and the same explicit target classes
(the predicted ones), and separate copies of the network: pytorch-grad-cam keeps hooks on its model for the
lifetime of its objects, and needs trainable parameters (it calls ``backward()``), as a user's model has. Each
method is first called once on one image: the warm-up, and a probe of its cost, counted in forward passes of
one image (timed before the methods); so is pytorch-grad-cam's. A method whose probe (or theirs) exceeds
``--expensive-forwards`` passes (Score-CAM, and their Ablation-CAM:
~K forward passes per image; a probe below five times the threshold is repeated once, since a first call also
pays one-time costs) is timed on ``--expensive-images`` images (at most the batch size) for
``--expensive-repeats`` rounds; every other one gets ``--warmup`` warm-up calls and ``--repeats`` rounds at the
full batch. Counting passes rather than seconds keeps the choice the same on a slow, a busy or a fast machine.
Opti-CAM runs 20 iterations here (:data:`BENCH_OPTIONS`; the paper's 100 would make each batch-16 round last
minutes on a CPU): its floor counts the same 20, so ``ours_over_floor`` measures the same overheads. In every
round, a plain forward pass, ours, theirs and the method's floor are called one after the other
(:func:`camrepro.experiments.kit.timing.interleaved`), each repeated within the round until it lasts
``--min-call-seconds`` (at batch 1 one call is a single ~20 ms pass, at the mercy of every scheduler tick), so a
machine whose speed drifts (other processes, frequency scaling) slows both sides of each ratio alike; the
machine's load average is read after every call.

Columns: device, method, batch; ours_s_per_image, theirs_s_per_image, forward_s_per_image, floor_s_per_image
(medians over rounds); ratio (theirs / ours: > 1 means ours is faster), ours_in_forwards (ours / forward),
ours_over_floor (ours / floor: how close to its pass count a method gets), each the median of the per-round
ratio with its 25-75 % spread (``_q25``, ``_q75``); passes_formula (the method's cost in passes); the floor is
the least the method's passes can cost, those passes run bare in the same rounds (no input checks, no map, no
upsampling; :data:`PASS_FLOORS`): one forward pass for CAM; one forward pass and the backward of the target
logits to the layer, through the tail only, for the Grad-CAM family and LIFT-CAM on a linear tail; one forward
pass and a forward and backward of the tail for LRP-CAM; for Opti-CAM, ``iterations`` × one forward + backward
of the masked batch (:func:`camrepro.methods.opti_cam.mask_gradient`); empty where no floor is timed, and the
note says what the method does instead (:data:`EXTRA_WORK`); floor_passes (what the floor runs); ours_images,
ours_repeats, theirs_images, theirs_repeats, rounds, calls_per_round; load_mean and load_max (the 1-minute load
average during the row); unstable (the ratios whose spread is wider than their value: on a busy machine such a ratio is
reported as undecided, not as a speed); note (not applicable, no floor, above 1.1× the floor and why, one
round only).

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
from camrepro.tensors import forward_channels_last
from camrepro.experiments.kit import timing

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
    "ratio_q25",
    "ratio_q75",
    "passes_formula",
    "forward_s_per_image",
    "ours_in_forwards",
    "floor_s_per_image",
    "floor_passes",
    "ours_over_floor",
    "ours_over_floor_q25",
    "ours_over_floor_q75",
    "ours_images",
    "ours_repeats",
    "theirs_images",
    "theirs_repeats",
    "rounds",
    "calls_per_round",
    "load_mean",
    "load_max",
    "unstable",
    "note",
]

Clock = Callable[[], float]


@dataclass(frozen=True)
class Budget:
    """How long to time: full batches for cheap methods, a few images for expensive ones."""

    repeats: int = 3
    warmup: int = 1
    expensive_forwards: float = 300.0
    expensive_images: int = 2
    expensive_repeats: int = 1
    # a cheap call is repeated within each round until it lasts this long (0: once per round)
    min_call_seconds: float = 0.0


DEFAULT_BUDGET = Budget(min_call_seconds=0.1)
# The most times one call is repeated within a round (a tiny network's call takes well under a millisecond).
MAX_CALLS_PER_ROUND = 100
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


# Options the bench gives a method unless the caller's ``options`` say otherwise (see the module docstring).
BENCH_OPTIONS: dict[str, dict[str, object]] = {"opti-cam": {"iterations": 20}}


def _ours(name: str, model: nn.Module, layer: str,
          options: dict[str, object] | None = None) -> Callable[[torch.Tensor, torch.Tensor], object]:
    cls = methods.get(name)
    options = options or {}
    method = cls(model, layer=layer, **options) if cls.needs_layer else cls(model, **options)
    return lambda x, t: method(x, t)


# The passes a method of the CAM family cannot avoid at its layer, timed bare as its floor (no input checks, no
# map, no upsampling): "forward", one forward pass (CAM); "tail backward", one forward pass whose layer output is
# a leaf, and the backward of the target logits to it through the tail only (the Grad-CAM family; LIFT-CAM on a
# linear tail, whose DeepLIFT multipliers are that gradient); "tail pass", one forward pass, then a forward and
# a backward of the tail on the captured activations (LRP-CAM; LIFT-CAM on a non-linear tail, on [A; A0]).
# Methods that run the tail once per channel (Ablation-CAM, LIME-CAM) or the network more than once have none.
PASS_FLOORS: dict[str, str] = {
    "cam": "forward", "grad-cam": "tail backward", "grad-cam++": "tail backward", "xgrad-cam": "tail backward",
    "layer-cam": "tail backward", "lift-cam": "tail backward", "lrp-cam": "tail pass",
}

# What a method without a timed floor does beyond one forward pass: the bench row's note says it.
EXTRA_WORK: dict[str, str] = {
    "score-cam": "no floor timed: one masked forward pass per non-constant channel (K' passes per image)",
    "ablation-cam": "no floor timed: the tail is run once per channel (K tail passes per image)",
    "lime-cam": "no floor timed: KernelSHAP samples of the tail and a K x K solve per image",
    "a-fmi": "no floor timed: 1 forward of the images + 1 of a shared reference + steps tail passes",
    "integrated-gradients": "no floor timed: steps forward + backward passes through the whole network",
    "deeplift": "no floor timed: a forward of [x; reference] and a backward through the whole network",
    "fake-cam": "no floor: it runs no network pass (an all-ones map)",
    "attention": "no floor timed: one forward of an attention network",
}
# A method this many times its floor or more has its row's note say so (DESIGN.md's target: within 1.1).
FLOOR_TARGET = 1.1


def _default(cls: type, parameter: str) -> object:
    return inspect.signature(cls.__init__).parameters[parameter].default


@dataclass(frozen=True)
class Floor:
    """A method's floor: ``call`` times it (None: the plain forward pass of the same round), counted ``count``
    times; ``passes`` says what it is, for the table."""

    call: Callable[[], object] | None
    count: float
    passes: str


def layer_output(model: nn.Module, layer: str, x: torch.Tensor, *, leaf: bool
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The bare pass of a floor: (logits, the output of ``layer``) of one forward pass on channels-last inputs.

    With ``leaf=True`` the layer's output is a leaf that requires grad and only the network after it is recorded
    for autograd (the pass up to the layer runs under ``no_grad``, whatever the parameters' flags).
    """
    store: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor | None:
        if not leaf:
            store.append(output)
            return None
        torch.set_grad_enabled(True)  # for the rest of this pass; the no_grad block below restores the mode
        acts = output.detach().requires_grad_(True)
        store.append(acts)
        return acts.clone()  # an in-place operation after the layer must not write into the leaf

    handle = model.get_submodule(layer).register_forward_hook(hook)
    try:
        with torch.no_grad():
            logits = forward_channels_last(model, x)
    finally:
        handle.remove()
    return logits, store[0]


def _tail_backward(model: nn.Module, layer: str, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    logits, acts = layer_output(model, layer, x, leaf=True)
    return torch.autograd.grad(logits.gather(1, t.view(-1, 1)).sum(), acts)[0]


def _tail_pass(model: nn.Module, layer: str, tail: nn.Module, x: torch.Tensor, t: torch.Tensor,
               with_reference: bool) -> torch.Tensor:
    _, acts = layer_output(model, layer, x, leaf=False)
    rows = torch.cat([acts, torch.zeros_like(acts)]) if with_reference else acts
    with torch.enable_grad():
        leaf = rows.detach().requires_grad_(True)
        picked = tail(leaf).gather(1, t.repeat(rows.shape[0] // t.shape[0]).view(-1, 1))
        return torch.autograd.grad(picked[: t.shape[0]].sum(), leaf)[0][: t.shape[0]]


def floor_call(name: str, model: nn.Module, layer: str, x: torch.Tensor, t: torch.Tensor,
               options: dict[str, object] | None = None) -> Floor | None:
    """The floor of ``name`` on ``x``: the passes it cannot avoid (see :data:`PASS_FLOORS`), or None (no floor:
    :data:`EXTRA_WORK` says what the method does instead).

    Opti-CAM's floor is ``iterations`` (from ``options``, else its default) × one forward + backward of the
    masked batch (:func:`camrepro.methods.opti_cam.mask_gradient`), timed once per round and counted
    ``iterations`` times.
    """
    if name == "opti-cam":
        from camrepro.methods.opti_cam import mask_gradient

        iterations = int((options or {}).get("iterations", _default(methods.get(name), "iterations")))
        masks = torch.full((x.shape[0], *x.shape[-2:]), 0.5, device=x.device)
        return Floor(lambda: mask_gradient(model, x, masks, t), float(iterations),
                     f"{iterations} x (masked forward + backward)")
    kind = PASS_FLOORS.get(name)
    if kind is None:
        return None
    if kind == "forward":
        return Floor(None, 1.0, "1 forward")
    from camrepro.methods.deeplift_rules import plan_for_layer

    plan = plan_for_layer(model, layer) if name in ("lift-cam", "lrp-cam") else None
    if kind == "tail backward" and (plan is None or plan.is_linear()):
        return Floor(lambda: _tail_backward(model, layer, x, t), 1.0, "1 forward + 1 backward (tail)")
    with_reference = name == "lift-cam"
    return Floor(lambda: _tail_pass(model, layer, plan.tail, x, t, with_reference), 1.0,
                 "1 forward + 1 tail forward" + (" on [A; 0]" if with_reference else "") + " + 1 tail backward")


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


def calls_per_round(calls: dict[str, Callable[[], object]], min_seconds: float, device: torch.device,
                    clock: Clock = time.perf_counter) -> int:
    """How many times each of ``calls`` is made in a round so that the quickest lasts ``min_seconds``.

    At batch 1 one call is a single ~20 ms pass, and a ratio of two such calls moves with every scheduler tick
    of a shared machine; repeating each call within the round (and dividing) averages that out, as ``timeit``
    does. Each call is timed once here (an extra warm-up call); a clock that does not move gives 1. At most
    :data:`MAX_CALLS_PER_ROUND`.
    """
    if min_seconds <= 0:
        return 1
    quickest = min(seconds_per_call(fn, 1, device, clock) for fn in calls.values())
    if quickest <= 0:
        return 1
    return max(1, min(MAX_CALLS_PER_ROUND, math.ceil(min_seconds / quickest)))


def _repeated(fn: Callable[[], object], times: int) -> Callable[[], object]:
    def run() -> object:
        for _ in range(times):
            result = fn()
        return result
    return run


def probe_is_expensive(run: Callable[[torch.Tensor, torch.Tensor], object], images: torch.Tensor,
                       targets: torch.Tensor, budget: Budget, forward_seconds: float,
                       clock: Clock = time.perf_counter) -> bool:
    """Whether ``run`` on one image costs more than ``budget.expensive_forwards`` forward passes of one image
    (``forward_seconds`` each): its first call, confirmed by a second one when it is below five times the
    threshold, since a first call also pays one-time costs."""
    if not forward_seconds > 0:
        raise ValueError(f"forward_seconds must be positive, got {forward_seconds!r}")
    device = images.device
    threshold = budget.expensive_forwards * forward_seconds
    probe = seconds_per_call(lambda: run(images[:1], targets[:1]), 1, device, clock)
    if threshold < probe <= CONFIRM_FACTOR * threshold:
        probe = seconds_per_call(lambda: run(images[:1], targets[:1]), 1, device, clock)
    return probe > threshold


def _quartiles(values: pd.Series) -> tuple[float, float, float]:
    values = values.dropna()
    if values.empty:
        return math.nan, math.nan, math.nan
    q25, q50, q75 = values.quantile([0.25, 0.5, 0.75])
    return float(q25), float(q50), float(q75)


def summarise_rounds(times: pd.DataFrame, multiplier: float = 1.0, floor: str | None = "forward"
                     ) -> dict[str, object]:
    """One bench row's numbers from an :func:`~camrepro.experiments.kit.timing.interleaved` table whose calls
    are ``forward``, ``ours`` and optionally ``theirs`` and ``floor`` (counted ``multiplier`` times).
    ``floor``: the call that is the method's floor (``"floor"``, ``"forward"``, or None: no floor).

    Seconds are medians over rounds; the ratios are medians of the per-round ratio (ours and its reference
    timed next to each other), each with its 25-75 % spread; ``unstable`` names the ratios whose spread is
    wider than their value (:func:`camrepro.experiments.kit.timing.spread_is_wider_than_value`).
    """
    wide = times.pivot(index="round", columns="call", values="seconds")
    if "floor" in wide:
        wide["floor"] = wide["floor"] * multiplier
    out: dict[str, object] = {f"{c}_s": float(wide[c].median()) if c in wide else math.nan
                              for c in ("ours", "theirs", "forward", "floor")}
    pairs = {"ratio": ("theirs", "ours"), "ours_in_forwards": ("ours", "forward"),
             "ours_over_floor": ("ours", floor)}
    unstable = []
    for column, (num, den) in pairs.items():
        if num in wide and den in wide:
            q25, q50, q75 = _quartiles(wide[num] / wide[den])
        else:
            q25 = q50 = q75 = math.nan
        out[column], out[f"{column}_q25"], out[f"{column}_q75"] = q50, q25, q75
        if not math.isnan(q50) and timing.spread_is_wider_than_value(q25, q50, q75):
            unstable.append(column)
    out["unstable"] = ",".join(unstable)
    out["rounds"] = int(len(wide))
    load = times["load"].dropna()
    out["load_mean"] = float(load.mean()) if len(load) else math.nan
    out["load_max"] = float(load.max()) if len(load) else math.nan
    return out


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
    load: Callable[[], float] = timing.load_average,
    options: dict[str, dict[str, object]] | None = None,
) -> pd.DataFrame:
    """The benchmark table of the methods ``names`` for ``model`` on ``images`` (on the images' device).

    Per method and batch size, ours, theirs (pytorch-grad-cam, where it has the method), a plain forward pass
    and the method's floor (Opti-CAM) are timed interleaved call by call, round after round
    (:func:`camrepro.experiments.kit.timing.interleaved`), so a drift of the machine's speed hits both sides
    of every ratio alike. ``options``: per method, keyword arguments of its constructor.
    """
    device = images.device
    model = model.to(device).eval()
    theirs_model = copy.deepcopy(model)
    for p in theirs_model.parameters():
        p.requires_grad_(True)
    with torch.no_grad():
        targets = model(images).argmax(dim=1)
    for batch in batch_sizes:
        if batch > images.shape[0]:
            raise ValueError(f"batch {batch} is larger than the {images.shape[0]} images available")

    def forward(x: torch.Tensor) -> object:
        with torch.no_grad():
            return forward_channels_last(model, x)

    for batch in batch_sizes:  # the first calls at a batch size pay for memory allocation: not part of any row
        for _ in range(2):
            forward(images[:batch])
    forward_seconds = seconds_per_call(lambda: forward(images[:1]), 3, device, clock)  # the probes' unit
    rows = []
    for name in names:
        cls = methods.get(name)
        note = ""
        method_options = {**BENCH_OPTIONS.get(name, {}), **(options or {}).get(name, {})}
        try:
            ours = _ours(name, model, layer, method_options)
            expensive = probe_is_expensive(ours, images, targets, budget, forward_seconds, clock)
        except (TypeError, ValueError) as exc:  # a method defined for another kind of network
            log(f"{name}: not applicable to this network ({exc})")
            ours, expensive, note = None, False, f"not applicable: {exc}"
        with contextlib.ExitStack() as stack:
            theirs = (stack.enter_context(_theirs(name, theirs_model, layer))
                      if compare and name in THEIRS and ours is not None else None)
            # the pair is timed together, so it is expensive when either side is (pytorch-grad-cam's
            # Ablation-CAM runs the whole network once per channel: ~16 s per image where ours takes 0.15 s)
            if theirs is not None and not expensive:
                expensive = probe_is_expensive(theirs, images, targets, budget, forward_seconds, clock)
            for batch in batch_sizes:
                row: dict[str, object] = {"device": device.type, "method": name, "batch": batch,
                                          "passes_formula": cls.forward_passes, "note": note}
                if ours is None:
                    rows.append(row)
                    continue
                n = min(batch, budget.expensive_images) if expensive else batch
                rounds = budget.expensive_repeats if expensive else budget.repeats
                x, t = images[:n], targets[:n]
                calls: dict[str, Callable[[], object]] = {"forward": lambda x=x: forward(x),
                                                          "ours": lambda x=x, t=t: ours(x, t)}
                if theirs is not None:
                    calls["theirs"] = lambda x=x, t=t: theirs(x, t)
                floor = floor_call(name, model, layer, x, t, method_options)
                if floor is not None and floor.call is not None:
                    calls["floor"] = floor.call
                # the probe warmed an expensive method up; a cheap one gets budget.warmup calls of each
                for _ in range(0 if expensive else budget.warmup):
                    for fn in calls.values():
                        fn()
                repeat = 1 if expensive else calls_per_round(calls, budget.min_call_seconds, device, clock)
                times = timing.interleaved({k: _repeated(fn, repeat) for k, fn in calls.items()}, rounds=rounds,
                                           per_call=n * repeat, device=device, warmup=False, clock=clock,
                                           load=load)
                has_floor = floor is not None
                summary = summarise_rounds(times, floor.count if has_floor else 1.0,
                                           None if not has_floor else "forward" if floor.call is None else "floor")
                reasons = [note] if note else []
                if not has_floor:
                    reasons.append(EXTRA_WORK.get(name, "no floor timed"))
                elif summary["ours_over_floor"] > FLOOR_TARGET:
                    reasons.append(f"above {FLOOR_TARGET}x its floor: " + OVER_FLOOR.get(name, "see the profile"))
                if summary["rounds"] < 2:
                    reasons.append("one round: no spread")
                row |= {
                    "ours_s_per_image": summary["ours_s"],
                    "theirs_s_per_image": summary["theirs_s"],
                    "ratio": summary["ratio"], "ratio_q25": summary["ratio_q25"], "ratio_q75": summary["ratio_q75"],
                    "forward_s_per_image": summary["forward_s"],
                    "ours_in_forwards": summary["ours_in_forwards"],
                    "floor_s_per_image": (math.nan if not has_floor else summary["forward_s"] if floor.call is None
                                          else summary["floor_s"]),
                    "floor_passes": floor.passes if has_floor else "",
                    "ours_over_floor": summary["ours_over_floor"],
                    "ours_over_floor_q25": summary["ours_over_floor_q25"],
                    "ours_over_floor_q75": summary["ours_over_floor_q75"],
                    "ours_images": n, "ours_repeats": summary["rounds"],
                    "theirs_images": n if theirs is not None else 0,
                    "theirs_repeats": summary["rounds"] if theirs is not None else 0,
                    "rounds": summary["rounds"], "calls_per_round": repeat,
                    "load_mean": summary["load_mean"], "load_max": summary["load_max"],
                    "unstable": summary["unstable"],
                    "note": "; ".join(reasons),
                }
                rows.append(row)
                log(f"{name} b{batch}: {summary['ours_s']:.4f}s"
                    + (f" vs {summary['theirs_s']:.4f}s (x{summary['ratio']:.2f})" if theirs is not None else "")
                    + (f", {row['ours_over_floor']:.2f}x floor" if has_floor else "")
                    + f", load {summary['load_mean']:.1f}")
    return pd.DataFrame(rows, columns=COLUMNS)


# Why a method with a floor can stay above it (what it does beyond its passes), for the note of such a row.
OVER_FLOOR: dict[str, str] = {
    "cam": "the input checks, the check that the tail reproduces the logits, the map and the upsampling",
    "grad-cam": "the input checks, the map and the upsampling",
    "grad-cam++": "the input checks, the second and third-order terms, the map and the upsampling",
    "xgrad-cam": "the input checks, the map and the upsampling",
    "layer-cam": "the input checks, the element-wise map and the upsampling",
    "lift-cam": "the input checks, the contributions (A - A0) x multipliers, the map and the upsampling",
    "lrp-cam": "the input checks, the LRP rules' stabilisers in the tail's backward, the map and the upsampling",
    "opti-cam": "the capture and the final objective's forward passes, Adam and the map arithmetic",
}


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
    """The table as printed: seconds with 4 decimals, ratios with 2 and their 25-75 % spread in brackets,
    a ``!`` after a ratio whose spread is wider than its value; the note below the table."""
    shown = pd.DataFrame({"method": table.method, "batch": table.batch})
    seconds = lambda v: "" if pd.isna(v) else f"{v:.4f}"  # noqa: E731
    for column in ("ours_s_per_image", "theirs_s_per_image", "forward_s_per_image", "floor_s_per_image"):
        shown[column.replace("_s_per_image", "_s")] = table[column].map(seconds)
    for column in ("ratio", "ours_in_forwards", "ours_over_floor"):
        def cell(row, column=column):
            value = row[column]
            if pd.isna(value):
                return ""
            low, high = row.get(f"{column}_q25", math.nan), row.get(f"{column}_q75", math.nan)
            spread = "" if pd.isna(low) or pd.isna(high) else f" [{low:.2f}-{high:.2f}]"
            flag = "!" if column in str(row.get("unstable", "")).split(",") else ""
            return f"{value:.2f}{spread}{flag}"
        shown[column] = table.apply(cell, axis=1)
    shown["images"] = table.ours_images
    shown["rounds"] = table["rounds"] if "rounds" in table else table.ours_repeats
    if "load_mean" in table:
        shown["load"] = table.load_mean.map(lambda v: "" if pd.isna(v) else f"{v:.1f}")
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
    parser.add_argument("--repeats", type=int, default=8,
                        help="timed rounds per cheap method (medians; the call order rotates each round); default 8")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--expensive-forwards",
        type=float,
        default=DEFAULT_BUDGET.expensive_forwards,
        help="a method whose first call on one image costs more than this many forward passes is expensive",
    )
    parser.add_argument(
        "--expensive-images",
        type=int,
        default=2,
        help="images timed per batch for an expensive method (at most the batch size)",
    )
    parser.add_argument("--expensive-repeats", type=int, default=1)
    parser.add_argument(
        "--min-call-seconds",
        type=float,
        default=DEFAULT_BUDGET.min_call_seconds,
        help="repeat each cheap call within a round until it lasts this long (0: once); default 0.1",
    )
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
    if not args.expensive_forwards > 0:
        parser.error("--expensive-forwards must be positive")
    if not args.min_call_seconds >= 0:
        parser.error("--min-call-seconds must be >= 0")
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
        args.repeats, args.warmup, args.expensive_forwards, args.expensive_images, args.expensive_repeats,
        args.min_call_seconds,
    )
    photos = load_photos("ai-benchmark", n=max(args.batch_sizes), size=args.size).images
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for device in _devices(args.device):
        net, _ = models.load(args.model, device=device, size=args.size)
        info = hardware(device)
        load = timing.load_average()
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
        for row in table.itertuples():
            if row.note:
                print(f"  {row.method} b{row.batch}: {row.note}")
        flagged = table[table.unstable.fillna("").astype(str) != ""]
        if len(flagged):
            print(f"! {len(flagged)} rows have a ratio whose 25-75 % spread is wider than its value "
                  f"(load up to {table.load_max.max():.1f}): rerun on an idle machine before quoting them")
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
