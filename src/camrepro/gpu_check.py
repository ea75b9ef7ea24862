"""The GPU check: ``python -m camrepro.gpu_check`` (``make gpu-check``) on a bare GPU machine.

Meant for a machine with a preinstalled CUDA build of torch (another version than our pin) and no
internet: ``make gpu-check`` installs this package over the machine's own torch with ``pip install --no-deps
-e .`` (it never builds the venv), then runs this module, which

1. runs the CUDA tests (``pytest -m cuda``: the tests marked ``cuda``, skipped without a GPU);
2. runs ``bench --device cuda`` (every method next to pytorch-grad-cam where it is installed, and the forward
   pass, interleaved: see :mod:`camrepro.bench`);
3. computes one chapter on CUDA (the opticam chapter at the book profile with every packaged photo,
   Opti-CAM at 100 iterations and Score-CAM on every photo: a few minutes on one modern GPU), recording each
   unit's wall time;
4. measures Opti-CAM's throughput on a ResNet-50 with random weights (timing needs no trained weights) at
   batch 64, interleaved with a forward pass, and projects it to the paper's 50,000 images × 100 iterations;
5. times the cheaper passes that can only be decided on a GPU (:func:`cuda_passes`): Opti-CAM's iteration as it
   runs today against channels-last inputs and weights, bf16 autocast, and ``torch.compile`` (default and
   ``"reduce-overhead"``, i.e. CUDA graphs), each with its ratio to float32 contiguous and its agreement with it.

It writes one row per figure to ``data/results/gpu-check/gpu-check.csv`` (columns
:data:`camrepro.experiments.benchmark.tables.GPU_CHECK_COLUMNS`), each labelled with the GPU, the date and
the commit; :func:`camrepro.experiments.benchmark.tables.gpu_check` reads it for the book. A section that
fails is recorded with its error and the check goes on; the exit status is 1 if any failed.

``--dry-run`` runs every section on the CPU at a tiny scale (seconds): it proves the script, not the GPU,
and its rows say ``dry_run = True``.

Cost: ~10-20 minutes on one H200-class GPU (the chapter and the bench dominate). Unverified on CUDA until it
has met a GPU: see the closing note of the issue that added it.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import torch

from camrepro import provenance

PAPER_IMAGES, PAPER_ITERATIONS = 50_000, 100
FULL = {"batch": 64, "iterations": 10, "rounds": 5, "size": 224}
DRY = {"batch": 2, "iterations": 2, "rounds": 1, "size": 64}
# the opticam chapter at the book profile, scaled to every packaged photo with the paper's iteration count
CHAPTER_OVERRIDES = {"images": {"n": 100}, "optimisation": {"images": 100, "iterations": 100},
                     "method_images": {}, "timing": {"rounds": 3}}
DRY_CHAPTER_OVERRIDES = {"images": {"n": 2, "size": 64}, "optimisation": {"images": 2, "iterations": 2},
                         "baselines": ["grad-cam", "fake-cam"], "snapshots": [0, 2],
                         "insertion_deletion": {"images": 1, "steps": 2},
                         "ablation": {"images": 1, "iterations": 1, "objectives": ["mask"],
                                      "normalizations": ["max"]},
                         "protocol": {"images": 1}, "timing": {"rounds": 0}, "examples": 1}


class Figures:
    """The rows of the check's CSV, labelled with the GPU, the date, the commit and torch's version."""

    def __init__(self, device: torch.device, dry_run: bool):
        self.rows: list[dict[str, object]] = []
        self.failed: list[str] = []
        self.label = {
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else
            f"none (CPU: {provenance.hardware('cpu')['processor']})",
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "commit": provenance.git_state().get("commit") or "unknown",
            "torch": torch.__version__,
            "dry_run": dry_run,
        }

    def add(self, section: str, figure: str, value: float, unit: str, n: int | None = None,
            detail: str = "") -> None:
        self.rows.append({"section": section, "figure": figure, "value": value, "unit": unit, "n": n,
                          "detail": detail, **self.label})
        print(f"  {section}: {figure} = {value:.4g} {unit}" + (f" (n = {n})" if n is not None else "")
              + (f"; {detail}" if detail else ""))

    def run(self, section: str, body: Callable[[], None]) -> None:
        print(f"== {section}")
        start = time.perf_counter()
        try:
            body()
        except Exception as exc:  # recorded, and the other sections still run
            self.failed.append(section)
            self.add(section, "section failed", 1.0, "flag", detail=f"{type(exc).__name__}: {exc}"[:500])
            traceback.print_exc()
        self.add(section, "wall", time.perf_counter() - start, "s")

    def table(self) -> pd.DataFrame:
        from camrepro.experiments.benchmark.tables import GPU_CHECK_COLUMNS

        return pd.DataFrame(self.rows, columns=GPU_CHECK_COLUMNS)


def _write(table: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    table.to_csv(tmp, index=False)
    os.replace(tmp, path)   # a check killed midway leaves the previous CSV whole


# ------------------------------------------------------------------------------------------------ sections

def cuda_tests(figures: Figures, dry_run: bool, out: Path) -> None:
    """``pytest -m cuda``: the suite's CUDA tests (skipped, not failed, where there is no GPU); the counts
    come from pytest's JUnit XML report, whatever its console options."""
    import xml.etree.ElementTree as ElementTree

    root = provenance.repository_root()
    target = [str(root / "tests" / "test_methods_api.py")] if dry_run else [str(root / "tests")]
    out.mkdir(parents=True, exist_ok=True)
    report = out / "cuda-tests.xml"
    report.unlink(missing_ok=True)
    run = subprocess.run([sys.executable, "-m", "pytest", "-m", "cuda", "-p", "no:cacheprovider",
                          f"--junitxml={report}", "--ignore", str(root / "tests" / "book"), *target], cwd=root,
                         capture_output=True, text=True, timeout=3600)
    if not report.is_file():
        raise RuntimeError(f"pytest wrote no report (exit {run.returncode}): {(run.stdout + run.stderr)[-300:]}")
    suite = ElementTree.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    for outcome in ("passed", "failures", "errors", "skipped"):
        figures.add("cuda tests", f"tests {outcome}", counts[outcome], "tests", detail=summary)
    if counts["failures"] or counts["errors"] or run.returncode not in (0, 5):
        raise RuntimeError(f"the CUDA tests did not pass: {summary} (pytest exit {run.returncode})")


def bench(figures: Figures, device: torch.device, dry_run: bool, out: Path) -> None:
    """``bench --device <device>``; one figure per method and batch: ours, theirs and the forward pass."""
    from camrepro import bench as bench_module

    argv = ["--device", device.type, "--out", str(out)]
    if dry_run:
        argv += ["--methods", "grad-cam", "--batch-sizes", "1", "--repeats", "1", "--size", "64"]
    bench_module.main(argv)
    table = pd.read_csv(out / f"bench-{device.type}.csv")
    for row in table.itertuples(index=False):
        name = f"{row.method} b{row.batch}"
        figures.add("bench", f"{name} ours", row.ours_s_per_image, "s/image", n=int(row.ours_repeats))
        if pd.notna(row.theirs_s_per_image):
            figures.add("bench", f"{name} pytorch-grad-cam", row.theirs_s_per_image, "s/image",
                        n=int(row.theirs_repeats), detail=f"ratio theirs/ours {row.ratio:.2f}")
        figures.add("bench", f"{name} forward", row.forward_s_per_image, "s/image")


def chapter_compute(figures: Figures, device: torch.device, dry_run: bool) -> None:
    """The opticam chapter computed on ``device`` (every unit through the cache), timed per unit."""
    from camrepro.experiments import registry

    chapter = registry.get("opticam")
    profile = "smoke" if dry_run else "book"
    overrides = DRY_CHAPTER_OVERRIDES if dry_run else CHAPTER_OVERRIDES
    params = chapter.params(profile, overrides)
    start = time.perf_counter()
    results = chapter.run(params, device.type)
    for name, result in results.items():
        state = "read from the cache" if result.from_cache else "computed"
        figures.add("opticam chapter", f"{name} wall", float(result.manifest.get("wall_seconds", 0.0)), "s",
                    detail=f"{state}; {params['images']['n']} photos, {params['optimisation']['iterations']} "
                           f"Opti-CAM iterations, profile {profile} with overrides")
    figures.add("opticam chapter", "total wall", time.perf_counter() - start, "s")


def _random_resnet50(device: torch.device, spec: dict[str, int]
                     ) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """A ResNet-50 with random weights (timing needs no trained weights), a batch of random images and
    targets, at ``spec``'s batch and size; the global random state is left as it was."""
    from camrepro import models

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net, _ = models.load("resnet50", weights=False, device=device, size=spec["size"])
        images = torch.rand(spec["batch"], 3, spec["size"], spec["size"]).to(device)
    return net, images, torch.arange(spec["batch"], device=device) % 1000


def opticam_throughput(figures: Figures, device: torch.device, dry_run: bool) -> None:
    """Opti-CAM on a random-weight ResNet-50 at batch 64 (``layer4``), interleaved with a forward pass;
    projected to 50,000 images × 100 iterations from the seconds per image-iteration."""
    from camrepro import models
    from camrepro.experiments.kit.timing import interleaved
    from camrepro.methods.opti_cam import OptiCAM

    spec = DRY if dry_run else FULL
    net, images, targets = _random_resnet50(device, spec)
    cam = OptiCAM(net, models.default_layer("resnet50"), iterations=spec["iterations"])

    def forward() -> None:
        with torch.no_grad():
            net(images)

    times = interleaved({"opti-cam": lambda: cam(images, targets), "forward": forward}, rounds=spec["rounds"],
                        per_call=spec["batch"], device=device)
    opti = times[times.call == "opti-cam"].seconds.tolist()
    per_iteration = statistics.median(opti) / spec["iterations"]
    spread = f"rounds min {min(opti):.4g} / max {max(opti):.4g} s per image"
    n = len(opti)
    figures.add("opti-cam resnet50", f"batch {spec['batch']} s per image-iteration", per_iteration, "s", n=n,
                detail=f"{spec['iterations']} iterations per call, {spec['size']}px, random weights; {spread}")
    figures.add("opti-cam resnet50", "images per second at 100 iterations", 1.0 / (per_iteration * 100),
                "images/s", n=n)
    figures.add("opti-cam resnet50", f"forward batch {spec['batch']}",
                statistics.median(times[times.call == "forward"].seconds), "s/image", n=n)
    hours = per_iteration * PAPER_IMAGES * PAPER_ITERATIONS / 3600
    figures.add("opti-cam resnet50", f"projected {PAPER_IMAGES} images x {PAPER_ITERATIONS} iterations", hours,
                "hours", n=n, detail="one GPU; N GPUs under torchrun divide it by about N")


# The variants of Opti-CAM's iteration that :func:`cuda_passes` times: (name, channels-last, autocast, compile
# mode or None). "today" is mask_gradient itself, the pass Opti-CAM runs now.
PASS_VARIANTS: tuple[tuple[str, bool, bool, str | None], ...] = (
    ("float32 contiguous", False, False, None),
    ("float32 channels-last", True, False, None),
    ("bf16 autocast", False, True, None),
    ("bf16 autocast channels-last", True, True, None),
    ("float32 torch.compile", False, False, "default"),
    ("float32 torch.compile reduce-overhead (CUDA graphs)", False, False, "reduce-overhead"),
)
BASELINE_VARIANT = "float32 contiguous"


def cuda_passes(figures: Figures, device: torch.device, dry_run: bool) -> None:
    """Which cheaper passes win on this device, for Opti-CAM's fixed-shape loop: one iteration (a forward and a
    backward of the masked batch to the mask; ResNet-50, random weights, batch 64 at 224²) run bare in each
    :data:`PASS_VARIANTS` variant and as Opti-CAM runs it today (:func:`camrepro.methods.opti_cam.mask_gradient`),
    interleaved round by round. Per variant: the median seconds per image, the median of its per-round ratio to
    float32 contiguous with the 25-75 % spread, and the agreement of its gradient with float32 contiguous (the
    correlation; bf16 must stay >= 0.999 to be adopted). A variant that fails (no compiler on the machine) is
    recorded as failed and the others run. A dry run leaves the compiled variants out (the CPU compiler takes
    minutes); its figures prove the script only.
    """
    import copy

    from camrepro.experiments.kit.timing import interleaved, paired_ratios
    from camrepro.methods.opti_cam import mask_gradient

    spec = DRY if dry_run else FULL
    net, images, targets = _random_resnet50(device, spec)
    masks = torch.full((spec["batch"], spec["size"], spec["size"]), 0.5, device=device)
    for p in net.parameters():
        p.requires_grad_(False)
    channels_last_net = copy.deepcopy(net).to(memory_format=torch.channels_last)
    channels_last_images = images.contiguous(memory_format=torch.channels_last)

    def iteration(model: torch.nn.Module, x: torch.Tensor, autocast: bool) -> torch.Tensor:
        m = masks.detach().clone().requires_grad_(True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(x * m.unsqueeze(1))
        score = logits.float().gather(1, targets.view(-1, 1)).sum()
        return torch.autograd.grad(score, m)[0]

    calls: dict[str, Callable[[], torch.Tensor]] = {"today (mask_gradient)": lambda: mask_gradient(
        net, images, masks, targets)}
    for name, channels_last, autocast, mode in PASS_VARIANTS:
        if mode is not None and dry_run:
            continue
        model = channels_last_net if channels_last else net
        x = channels_last_images if channels_last else images
        try:
            if mode is not None:
                start = time.perf_counter()
                model = torch.compile(model, mode=mode)
                for _ in range(3):  # compiles, then records the CUDA graphs
                    iteration(model, x, autocast)
                figures.add("cuda passes", f"{name}: compile and warm-up", time.perf_counter() - start, "s")
            iteration(model, x, autocast)
        except Exception as exc:  # a compiler missing on the machine, an unsupported layout
            figures.add("cuda passes", f"{name}: variant failed", 1.0, "flag",
                        detail=f"{type(exc).__name__}: {exc}"[:500])
            continue
        calls[name] = lambda model=model, x=x, autocast=autocast: iteration(model, x, autocast)
    reference = calls[BASELINE_VARIANT]().float()
    times = interleaved(calls, rounds=max(spec["rounds"], 3), per_call=spec["batch"], device=device)
    for name, call in calls.items():
        seconds = times[times.call == name].seconds
        ratios = paired_ratios(times, name, BASELINE_VARIANT)
        q25, q50, q75 = (float(v) for v in ratios.quantile([0.25, 0.5, 0.75]))
        gradient = call().float()
        agreement = float(torch.corrcoef(torch.stack([gradient.flatten(), reference.flatten()]))[0, 1])
        figures.add("cuda passes", f"{name}: s per image-iteration", statistics.median(seconds), "s",
                    n=len(seconds), detail=f"batch {spec['batch']}, {spec['size']}px, ResNet-50 random weights")
        figures.add("cuda passes", f"{name}: time / float32 contiguous", q50, "ratio", n=len(ratios),
                    detail=f"median of per-round ratios [{q25:.3f}-{q75:.3f}]")
        figures.add("cuda passes", f"{name}: gradient correlation with float32 contiguous", agreement, "r",
                    detail=f"max |difference| {float((gradient - reference).abs().max()):.3g}")


# ------------------------------------------------------------------------------------------------- command

def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m camrepro.gpu_check",
                                     description="CUDA tests, bench, one chapter and Opti-CAM throughput on "
                                                 "a GPU; figures to data/results/gpu-check/gpu-check.csv.")
    parser.add_argument("--dry-run", action="store_true", help="every section on the CPU at a tiny scale")
    parser.add_argument("--skip", nargs="+", default=[],
                        choices=["tests", "bench", "chapter", "throughput", "passes"],
                        help="sections to leave out")
    parser.add_argument("--out", help="the CSV (default: data/results/gpu-check/gpu-check.csv)")
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    from camrepro.experiments.benchmark.tables import gpu_check_path

    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.dry_run:
        device = torch.device("cpu")
    elif not torch.cuda.is_available():
        print("camrepro gpu_check: error: CUDA is not available to this torch "
              f"({torch.__version__}); run it on a GPU machine, or use --dry-run to try it on the CPU",
              file=sys.stderr)
        return 2
    else:
        device = torch.device("cuda")
    path = Path(args.out) if args.out else gpu_check_path()
    figures = Figures(device, args.dry_run)
    print(f"GPU check on {figures.label['gpu']}, torch {figures.label['torch']}, commit {figures.label['commit']}"
          + (" (dry run: CPU, tiny scale)" if args.dry_run else ""))
    sections = {"tests": lambda: cuda_tests(figures, args.dry_run, path.parent),
                "bench": lambda: bench(figures, device, args.dry_run, path.parent / "bench"),
                "chapter": lambda: chapter_compute(figures, device, args.dry_run),
                "throughput": lambda: opticam_throughput(figures, device, args.dry_run),
                "passes": lambda: cuda_passes(figures, device, args.dry_run)}
    names = {"tests": "cuda tests", "bench": "bench", "chapter": "opticam chapter",
             "throughput": "opti-cam resnet50", "passes": "cuda passes"}
    for key, body in sections.items():
        if key not in args.skip:
            figures.run(names[key], body)
            _write(figures.table(), path)   # after every section: an interrupted check keeps what it measured
    print(f"written to {path}" + (f"; failed: {', '.join(figures.failed)}" if figures.failed else ""))
    return 1 if figures.failed else 0


if __name__ == "__main__":
    sys.exit(main())
