"""The chapter contract: parameters ← compute units ← tables ← claims, the same for every chapter.

A chapter is a small package ``camrepro.experiments.<name>`` (``params.py``, ``compute.py``, ``tables.py``,
``claims.py``) whose ``__init__`` builds one :class:`Chapter`:

- ``schema``: the typed parameters (:class:`~camrepro.experiments.schema.Schema`); the profile's section of
  ``notebooks/params/<profile>.yaml`` and any overrides are merged over its defaults once, and validated once;
- ``units(params) -> list[Unit]``: the named compute units, each with the parameters its result depends on;
  :meth:`Chapter.run` computes each through the content-hash cache (:func:`camrepro.cache.cached`), so a
  rerun with nothing changed reads every unit from disk;
- ``claims(results, params) -> list[Claim]``: the chapter's claims, decided from the units' per-unit tables
  (:mod:`camrepro.evidence`).

Tables and figures are plain functions of the results in the chapter's ``tables`` module; notebooks call
them and show what they return.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from camrepro import cache, distributed
from camrepro.distributed import Launch
from camrepro.evidence import Claim
from camrepro.experiments import sharding as shards
from camrepro.experiments.schema import Schema

# How a unit runs under torchrun (``Unit.under_torchrun``): sharded units split their images over the ranks
# (camrepro.experiments.sharding); the others are computed by rank 0 while the other ranks wait at a barrier,
# or by every rank together (DDP training, whose ranks share one result that rank 0 writes).
SHARDS, RANK0, ALL_RANKS = "shards", "rank 0", "all ranks"


@dataclass(frozen=True)
class Unit:
    """One cached computation of a chapter.

    ``params``: everything its result depends on (hashed, with the package source, into its cache key);
    ``compute(device)`` returns a mapping of output name → DataFrame or dict of numpy arrays. ``per_image``
    marks units whose rows are one per image. ``sharding`` (:class:`~camrepro.experiments.sharding.Sharding`)
    lets a torchrun launch split such a unit's images over its ranks; ``compute`` is then ``sharding.whole``.
    ``under_torchrun``: how the unit runs under torchrun — :data:`SHARDS` (given by ``sharding``),
    :data:`RANK0` (the default: rank 0 computes, the others wait) or :data:`ALL_RANKS` (every rank runs
    ``compute`` together, e.g. DDP training; rank 0's result is stored).
    """

    name: str
    params: Mapping[str, object]
    compute: Callable[[str], Mapping[str, object]]
    per_image: bool = False
    sharding: shards.Sharding | None = None
    under_torchrun: str = RANK0

    def __post_init__(self) -> None:
        if self.sharding is not None:
            object.__setattr__(self, "under_torchrun", SHARDS)
        if self.under_torchrun not in (SHARDS, RANK0, ALL_RANKS) or (
                self.under_torchrun == SHARDS and self.sharding is None):
            raise ValueError(f"unit {self.name!r}: under_torchrun must be {RANK0!r} or {ALL_RANKS!r} "
                             f"({SHARDS!r} comes with a sharding), not {self.under_torchrun!r}")


def cached_unit(chapter: str, name: str, params: Mapping[str, object],
                compute: Callable[[str], Mapping[str, object]], device: str) -> cache.Result:
    """One unit's result through the cache: what :meth:`Chapter.run` does for each unit, and what a unit that
    needs another unit's result calls to read it (with the same key, so it is never computed twice).

    The device is part of every key: float results differ between devices in their last bits, and a timing
    measured on a CPU says nothing about a GPU.
    """
    return cache.cached(chapter, name, {**params, "device": str(device)}, lambda: compute(device), device=device)


def run_unit(chapter: str, unit: Unit, device: str, launch: Launch | None = None) -> cache.Result:
    """One unit's result in this launch: through :func:`cached_unit` in one process; under torchrun as
    ``unit.under_torchrun`` says, every rank returning the one stored result (same key as one process)."""
    if launch is None or not launch.sharded:
        return cached_unit(chapter, unit.name, unit.params, unit.compute, device)
    params = {**unit.params, "device": str(device)}
    _, final = cache.entry(chapter, unit.name, params)
    if (final / cache.MANIFEST).is_file():
        return cache.load(final)
    if unit.under_torchrun == SHARDS:
        with distributed.solo():
            shards.compute_shard(chapter, unit.name, params, unit.sharding, device, launch.rank, launch.world)
        launch.barrier()   # every shard is on disk past this point
        if launch.is_main:
            merged, record = shards.merge_shards(chapter, unit.name, params, unit.sharding, launch.world)
            cache.cached(chapter, unit.name, params, lambda: merged, device=device,
                         manifest_extra={"distributed": record})
    elif unit.under_torchrun == ALL_RANKS:
        outputs = unit.compute(device)
        if launch.is_main:
            cache.cached(chapter, unit.name, params, lambda: outputs, device=device,
                         manifest_extra={"distributed": {"world": launch.world, "all_ranks": True}})
    elif launch.is_main:
        with distributed.solo():
            cached_unit(chapter, unit.name, unit.params, unit.compute, device)
    launch.barrier()   # the stored result exists past this point
    result = cache.load(final)
    result.from_cache = False   # this launch computed it
    return result


class Results(Mapping[str, cache.Result]):
    """The cached results of a chapter's units, by unit name, in the order they were declared."""

    def __init__(self, results: Mapping[str, cache.Result]):
        self._results = dict(results)

    def __getitem__(self, name: str) -> cache.Result:
        try:
            return self._results[name]
        except KeyError:
            raise KeyError(f"no unit {name!r}; this chapter's units are {list(self._results)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._results)

    def __len__(self) -> int:
        return len(self._results)

    def table(self, name: str, prefix: str = "") -> pd.DataFrame:
        """The table ``name`` of every unit (whose name starts with ``prefix``) that has one, concatenated."""
        frames = [r.tables[name] for unit, r in self._results.items()
                  if unit.startswith(prefix) and name in r.tables]
        if not frames:
            raise KeyError(f"no unit{' ' + repr(prefix) if prefix else ''} has a table {name!r}")
        return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class Chapter:
    """A chapter of the book: its name, the paper it reproduces (None for a cross-paper chapter), its typed
    parameters, its compute units and its claims."""

    name: str
    title: str
    schema: Schema
    units: Callable[[dict[str, object]], Sequence[Unit]]
    claims_from: Callable[[Results, dict[str, object]], Sequence[Claim]]
    paper: str | None = None
    # profile → seconds the chapter may take (measured cold, with headroom; the book's sum to ≤ 43 minutes)
    budgets: Mapping[str, float] = field(default_factory=dict)

    def params(self, profile: str | None = None, overrides: Mapping[str, object] | None = None
               ) -> dict[str, object]:
        """The chapter's parameters: defaults ← the profile's section (if ``profile``) ← ``overrides``.

        ``profile`` is one of ``notebooks/params/<profile>.yaml``, or a reader's own: a path to a YAML file
        of the same layout, or any other name when ``overrides`` holds the chapter's section (what a notebook
        receives from ``papermill -f own.yaml``, whose ``profile`` names no file of ours).
        """
        section: Mapping[str, object] = {}
        if profile is not None:
            from camrepro.experiments.profiles import profile_section

            section = profile_section(profile, self.name, has_overrides=bool(overrides))
        return self.schema.resolve(section, overrides)

    def run(self, params: Mapping[str, object], device: str = "cpu", *,
            only: Sequence[str] | None = None, launch: Launch | None = None) -> Results:
        """Every unit's result (computed, or read from the cache). ``only``: unit names to restrict to;
        ``launch``: this process's rank in a torchrun launch (:func:`camrepro.distributed.start`)."""
        checked = self.schema.resolve(params)
        units = list(self.units(checked))
        names = [u.name for u in units]
        if len(set(names)) != len(names):
            raise ValueError(f"chapter {self.name!r} declares a unit twice: {names}")
        if only is not None:
            unknown = sorted(set(only) - set(names))
            if unknown:
                raise ValueError(f"chapter {self.name!r} has no unit(s) {unknown}; its units are {names}")
            units = [u for u in units if u.name in only]
        return Results({u.name: run_unit(self.name, u, device, launch) for u in units})

    def claims(self, params: Mapping[str, object], device: str = "cpu") -> list[Claim]:
        """The chapter's claims, decided on its (cached) results."""
        checked = self.schema.resolve(params)
        claims = list(self.claims_from(self.run(checked, device), checked))
        for claim in claims:
            if not isinstance(claim, Claim):
                raise TypeError(f"chapter {self.name!r} returned a {type(claim).__name__} among its claims")
            if claim.chapter != self.name:
                raise ValueError(f"chapter {self.name!r} returned claim {claim.key!r} labelled with chapter "
                                 f"{claim.chapter!r}")
        keys = [c.key for c in claims]
        if len(set(keys)) != len(keys):
            raise ValueError(f"chapter {self.name!r} returned two claims with the same key: {keys}")
        return claims
