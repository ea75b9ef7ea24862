"""Paired timing: a method and its reference (a forward pass, another implementation) timed call by call.

A 2-core machine's speed drifts during a run (other processes, frequency scaling). Timing ``ours`` for a
minute and ``theirs`` the next minute compares two machines; timing them interleaved — ours, theirs,
forward, ours, theirs, forward… — compares the methods. The order rotates from round to round (ours first, then
theirs first, …), so no call always runs right after another one and inherits its warm caches, or its cold
ones (a different network's weights). Each round gives one paired ratio; the claims use
the rounds as units (geometric-mean ratio with a bootstrap interval), and the tables show medians with the
spread of the per-round ratio.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

import pandas as pd
import torch


def _sync(device: torch.device | None) -> None:
    # Timing boundaries only: CUDA kernels run asynchronously, so a clock read needs the queue drained.
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def load_average() -> float:
    """The machine's 1-minute load average (NaN where the platform has none), recorded beside timings."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return float("nan")


def interleaved(calls: Mapping[str, Callable[[], object]], *, rounds: int, per_call: int = 1,
                device: torch.device | None = None, warmup: bool = True,
                clock: Callable[[], float] = time.perf_counter,
                load: Callable[[], float] = load_average) -> pd.DataFrame:
    """Seconds per item of each call in ``calls``, ``rounds`` times, the calls interleaved in each round, in an
    order that rotates by one call from round to round.

    ``per_call``: items each call processes (images in the batch), so the times are per image. Returns one
    row per (round, call): ``round, call, seconds, load`` (the machine's load average when the call ended).
    ``clock`` and ``load`` are for tests (a fake clock).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be ≥ 1, got {rounds}")
    if warmup:
        for fn in calls.values():
            fn()
    rows = []
    names = list(calls)
    for r in range(rounds):
        shift = r % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            fn = calls[name]
            _sync(device)
            start = clock()
            fn()
            _sync(device)
            rows.append({"round": r, "call": name, "seconds": (clock() - start) / per_call, "load": load()})
    return pd.DataFrame(rows, columns=["round", "call", "seconds", "load"])


def paired_ratios(times: pd.DataFrame, numerator: str, denominator: str) -> pd.Series:
    """Per-round ratio ``numerator / denominator`` of an :func:`interleaved` table, indexed by round."""
    wide = times.pivot(index="round", columns="call", values="seconds")
    return wide[numerator] / wide[denominator]


def spread_is_wider_than_value(q25: float, median: float, q75: float) -> bool:
    """The flag of a ratio that a busy machine has blurred: its 25-75 % spread is wider than the ratio itself
    (then even "faster or slower" is not decided by these rounds)."""
    return bool((q75 - q25) > median)


def ratio_summary(times: pd.DataFrame, numerator: str, denominator: str) -> dict[str, float]:
    """Median of the per-round ratio, its 25-75 % spread, the rounds, and ``unstable``: the spread is wider
    than the ratio (:func:`spread_is_wider_than_value`)."""
    ratios = paired_ratios(times, numerator, denominator).dropna()
    if ratios.empty:
        raise ValueError(f"no round has both {numerator!r} and {denominator!r}")
    q25, q50, q75 = ratios.quantile([0.25, 0.5, 0.75])
    return {"median": float(q50), "q25": float(q25), "q75": float(q75), "rounds": int(ratios.size),
            "unstable": spread_is_wider_than_value(float(q25), float(q50), float(q75))}
