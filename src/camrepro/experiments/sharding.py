"""Per-image units split over the ranks of a torchrun launch, each image computed exactly once.

Under ``torchrun --nproc-per-node N -m camrepro.cli compute ...`` rank r of W computes the images
``ids[r::W]`` of every sharded unit (unpadded: a padded sampler would repeat images and skew every mean) and
writes them atomically to a shard directory::

    data/results/<chapter>/.shards/<unit>-<key>/world<W>/rank<r>/   tables.pkl, arrays.npz, manifest.json

keyed by the unit's cache key, the world size and the rank. Once every shard exists, rank 0 merges them —
checking that the shards' images partition the unit's images, each exactly once — and writes the unit's
cache entry under the same key a one-process run uses, so the notebook renders from it. A rerun after a
killed rank finds the finished shards (a shard's manifest is written last) and computes only the missing ones.
A rerun with another world size starts its own shards.

How a table is merged: rows carrying an ``image`` column are per image. Within each group (the columns
:attr:`Sharding.groups` names for that table, e.g. method and space) rows follow the images' order; groups
follow their order in the shards. Arrays of the bundles in :attr:`Sharding.per_image_arrays` hold one row per
image, for the unit's first images (rank r's rows are its first positions). Every other output must be equal
in every shard. :attr:`Sharding.finish` then derives what needs every image (e.g. a mean curve), and the
one-process compute is ``finish(compute(device, all images))``, so both launches share one code path.
"""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from camrepro import cache, provenance

MANIFEST = "manifest.json"
IMAGE = "image"


class ShardError(RuntimeError):
    """The shards of a unit cannot be computed or merged as they are; the message says why and what to do."""


@dataclass(frozen=True)
class Sharding:
    """How a per-image unit splits over ranks.

    ``images()``: the names of every image the unit explains, in order (cheap: reads names, loads no network);
    ``compute(device, positions)``: the unit's outputs for the images at ``positions`` (sorted; None = all);
    ``groups``: table name → the columns that, with ``image``, identify a row; ``per_image_arrays``: bundles
    whose arrays have one row per image; ``finish(outputs)``: what needs every image, after the merge.
    """

    images: Callable[[], Sequence[str]]
    compute: Callable[[str, Sequence[int] | None], Mapping[str, object]]
    groups: Mapping[str, Sequence[str]] = field(default_factory=dict)
    per_image_arrays: Sequence[str] = ()
    finish: Callable[[Mapping[str, object]], Mapping[str, object]] | None = None

    def whole(self, device: str) -> Mapping[str, object]:
        """The one-process compute: every image in one call, then :attr:`finish`."""
        outputs = self.compute(device, None)
        return self.finish(outputs) if self.finish else outputs


def positions(count: int, rank: int, world: int, unit: str = "unit") -> list[int]:
    """The positions rank ``rank`` of ``world`` computes: ``range(rank, count, world)``."""
    if world > count:
        raise ShardError(f"{unit} has {count} image(s) but the launch has {world} ranks: every rank needs at "
                         f"least one image; start at most {count} processes or give the unit more images")
    return list(range(rank, count, world))


def shard_dir(chapter: str, name: str, key: str, world: int, rank: int, root: Path | None = None) -> Path:
    return (root or cache.results_root()) / chapter / ".shards" / f"{name}-{key}" / f"world{world}" / f"rank{rank}"


# ----------------------------------------------------------------------------------------------- one shard


def _write(path: Path, outputs: Mapping[str, object], manifest: Mapping[str, object]) -> None:
    with cache.atomic_directory(path) as tmp:   # also removes what a killed rank left
        tables = {k: v for k, v in outputs.items() if isinstance(v, pd.DataFrame)}
        arrays = {k: v for k, v in outputs.items() if not isinstance(v, pd.DataFrame)}
        for k, bundle in arrays.items():
            if not (isinstance(bundle, Mapping) and all(isinstance(a, np.ndarray) for a in bundle.values())):
                raise TypeError(f"output {k!r} must be a DataFrame or a dict of numpy arrays")
        # pickle keeps every float bit and dtype (a CSV round trip need not); the files are this package's own
        with open(tmp / "tables.pkl", "wb") as handle:
            pickle.dump(tables, handle)
        np.savez(tmp / "arrays.npz", **{f"{k}/{a}": v for k, b in arrays.items() for a, v in b.items()})
        (tmp / "bundles.json").write_text(json.dumps(sorted(arrays)))
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))   # last: marks the shard complete


def _read(path: Path) -> tuple[dict[str, object], dict[str, object]]:
    manifest = json.loads((path / MANIFEST).read_text())
    with open(path / "tables.pkl", "rb") as handle:
        outputs: dict[str, object] = dict(pickle.load(handle))
    bundles = {b: {} for b in json.loads((path / "bundles.json").read_text())}
    with np.load(path / "arrays.npz", allow_pickle=False) as stored:
        for flat in stored.files:
            bundle, _, name = flat.partition("/")
            bundles[bundle][name] = stored[flat]
    outputs.update(bundles)
    return manifest, outputs


def _check(path: Path, manifest: Mapping[str, object], key: str, world: int, rank: int,
           names: Sequence[str]) -> None:
    """A shard directory must come from this unit's parameters and images, launch size and rank."""
    expected = positions(len(names), rank, world)
    problems = []
    if manifest.get("key") != key:
        problems.append(f"cache key {manifest.get('key')!r}, not {key!r}")
    if manifest.get("world") != world or manifest.get("rank") != rank:
        problems.append(f"rank {manifest.get('rank')} of {manifest.get('world')}, not {rank} of {world}")
    if manifest.get("positions") != expected or manifest.get("images") != [names[p] for p in expected]:
        problems.append("other images than this rank's")
    if problems:
        raise ShardError(f"shard directory {path} was computed for another parameter set ({'; '.join(problems)});"
                         " remove it (or the whole .shards folder of the unit) and rerun")


def compute_shard(chapter: str, name: str, params: Mapping[str, object], sharding: Sharding, device: str,
                  rank: int, world: int, root: Path | None = None) -> tuple[Path, bool]:
    """Rank ``rank``'s shard of a unit, computed unless a complete one is on disk. Returns its directory and
    whether this call computed it. ``params`` are the unit's cache parameters (device included)."""
    key, _ = cache.entry(chapter, name, params, root)
    names = list(sharding.images())
    mine = positions(len(names), rank, world, unit=f"{chapter}/{name}")
    path = shard_dir(chapter, name, key, world, rank, root)
    if (path / MANIFEST).is_file():
        _check(path, json.loads((path / MANIFEST).read_text()), key, world, rank, names)
        return path, False
    started, t0 = provenance.now(), time.perf_counter()
    outputs = sharding.compute(device, mine)
    manifest = {"chapter": chapter, "name": name, "key": key, "world": world, "rank": rank,
                "positions": mine, "images": [names[p] for p in mine], "started": started,
                "finished": provenance.now(), "wall_seconds": round(time.perf_counter() - t0, 3),
                "hardware": provenance.hardware(device)}
    _write(path, outputs, manifest)
    return path, True


# ----------------------------------------------------------------------------------------------- the merge


def _merge_table(table: str, frames: list[pd.DataFrame], shard_images: list[list[str]],
                 order: Mapping[str, int], group: Sequence[str]) -> pd.DataFrame:
    present = [f for f in frames if f is not None]
    if IMAGE not in present[0].columns:
        if any(not f.equals(present[0]) for f in present[1:]):
            raise ShardError(f"table {table!r} has no {IMAGE!r} column and differs between shards: it cannot "
                             "be merged")
        return present[0]
    group = list(group)
    group_order: list[tuple] = []
    keyed = []
    for rank, frame in enumerate(present):
        stray = sorted(set(frame[IMAGE]) - set(shard_images[rank]))
        if stray:
            raise ShardError(f"table {table!r} of rank {rank} has rows for images outside its shard: {stray[:3]}")
        groups = list(frame[group].itertuples(index=False, name=None)) if group else [()] * len(frame)
        seen = list(dict.fromkeys(groups))
        merged_so_far = [g for g in group_order if g in seen]
        if merged_so_far != seen[:len(merged_so_far)]:
            raise ShardError(f"table {table!r}: rank {rank} lists its groups {group} in another order")
        group_order.extend(g for g in seen if g not in group_order)
        keyed.append(frame.assign(_group=groups, _position=frame[IMAGE].map(order)))
    rank_of = {g: i for i, g in enumerate(group_order)}
    merged = pd.concat([k for k in keyed if len(k)] or keyed[:1], ignore_index=True)
    merged["_group"] = merged["_group"].map(rank_of)
    duplicated = merged.duplicated(["_group", "_position"])
    if duplicated.any():
        first = merged[duplicated].iloc[0]
        raise ShardError(f"table {table!r}: image {first[IMAGE]!r} appears twice in one group {group}")
    merged = merged.sort_values(["_group", "_position"], kind="mergesort")
    return merged.drop(columns=["_group", "_position"]).reset_index(drop=True)


def _merge_arrays(bundle: str, parts: list[dict[str, np.ndarray]], shard_positions: list[list[int]]
                  ) -> dict[str, np.ndarray]:
    merged = {}
    for name in dict.fromkeys(k for part in parts for k in part):
        rows, where = [], []
        for part, mine in zip(parts, shard_positions):
            if name in part:
                if len(part[name]) > len(mine):
                    raise ShardError(f"array {bundle}/{name} has {len(part[name])} rows but its shard "
                                     f"{len(mine)} images")
                rows.append(part[name])
                where.extend(mine[:len(part[name])])
        if sorted(where) != list(range(len(where))):
            raise ShardError(f"array {bundle}/{name}: the shards' rows are not the unit's first {len(where)} "
                             "images, each once")
        merged[name] = np.concatenate(rows)[np.argsort(where, kind="stable")]
    return merged


def merge_outputs(sharding: Sharding, shards: Sequence[Mapping[str, object]], shard_positions: list[list[int]],
                  names: Sequence[str]) -> Mapping[str, object]:
    """One unit's outputs from its shards' (in rank order), then :attr:`Sharding.finish`."""
    covered = sorted(p for mine in shard_positions for p in mine)
    if covered != list(range(len(names))):
        counts = pd.Series(covered).value_counts()
        twice = sorted(names[p] for p in counts[counts > 1].index)
        missing = sorted(set(names) - {names[p] for p in covered})
        raise ShardError(f"the shards do not cover every image exactly once (twice: {twice[:3]}, "
                         f"missing: {missing[:3]})")
    order = {n: i for i, n in enumerate(names)}
    shard_images = [[names[p] for p in mine] for mine in shard_positions]
    outputs: dict[str, object] = {}
    for output in dict.fromkeys(k for s in shards for k in s):
        parts = [s.get(output) for s in shards]
        if any(p is None for p in parts):
            raise ShardError(f"output {output!r} is missing from some shards")
        if isinstance(parts[0], pd.DataFrame):
            outputs[output] = _merge_table(output, parts, shard_images, order, sharding.groups.get(output, ()))
        elif output in sharding.per_image_arrays:
            outputs[output] = _merge_arrays(output, parts, shard_positions)
        else:
            first = parts[0]
            for part in parts[1:]:
                if part.keys() != first.keys() or any(not np.array_equal(part[k], first[k]) for k in first):
                    raise ShardError(f"array bundle {output!r} is not per image and differs between shards")
            outputs[output] = first
    return sharding.finish(outputs) if sharding.finish else outputs


def merge_shards(chapter: str, name: str, params: Mapping[str, object], sharding: Sharding, world: int,
                 root: Path | None = None) -> tuple[Mapping[str, object], dict[str, object]]:
    """The unit's outputs merged from its ``world`` shards, and the provenance of the shards."""
    key, _ = cache.entry(chapter, name, params, root)
    names = list(sharding.images())
    paths = [shard_dir(chapter, name, key, world, r, root) for r in range(world)]
    missing = [r for r, p in enumerate(paths) if not (p / MANIFEST).is_file()]
    if missing:
        raise ShardError(f"{chapter}/{name}: shard(s) of rank(s) {missing} of {world} are missing under "
                         f"{paths[0].parent}; rerun the same launch to compute them")
    manifests, shards = [], []
    for rank, path in enumerate(paths):
        manifest, outputs = _read(path)
        _check(path, manifest, key, world, rank, names)
        manifests.append(manifest)
        shards.append(outputs)
    merged = merge_outputs(sharding, shards, [m["positions"] for m in manifests], names)
    record = {"world": world, "shards": [{k: m[k] for k in ("rank", "started", "finished", "wall_seconds")}
                                         for m in manifests]}
    return merged, record
