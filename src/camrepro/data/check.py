"""``camrepro data``: check that every data source is present and generate the default canvas datasets.

Each check returns a row (ok, what was found, where); :func:`ensure_all` runs them all, prints a table and,
with ``strict``, raises :class:`DataCheckError` listing every failure after the table, so one run shows
everything that is missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from PIL import Image

from camrepro.data.canvas import DEFAULT_CANVAS, canvas_cache_dir, canvas_key, canvas_params, make_canvas
from camrepro.data.fashion_mnist import load_fashion_mnist
from camrepro.data.packaged import EFFICIENTNET_LITE0_WEIGHTS, MOBILENET_V2_WEIGHTS, PackagedWeights
from camrepro.data.photos import photo_files


class DataCheckError(FileNotFoundError):
    """One or more data sources are missing or corrupt (a corrupt file counts as the expected file missing).

    A FileNotFoundError, so that callers which report missing data cleanly (the command line) report this too.
    """


Row = dict[str, object]


def _photos(source: str) -> Row:
    files = photo_files(source)
    for _name, path in files:
        with Image.open(path) as image:
            image.load()  # a full decode, so a truncated or corrupt file fails here
    return {"detail": f"{len(files)} photos", "path": str(files[0][1].parent)}


def _fashion_mnist(split: str) -> Row:
    data = load_fashion_mnist(split)
    return {"detail": f"{len(data)} images", "path": str(data.folder)}


def _weights(spec: PackagedWeights) -> Row:
    path = spec.path(verify=True)
    return {"detail": f"sha256 ok ({path.stat().st_size / 2**20:.1f} MiB)", "path": str(path)}


def _canvas(spec: Mapping[str, object]) -> Row:
    params = canvas_params(**spec)
    existed = (canvas_cache_dir() / f"{canvas_key(params)}.pt").is_file()
    started = time.perf_counter()
    canvas = make_canvas(**spec)
    how = "cached" if existed else f"generated in {time.perf_counter() - started:.1f} s"
    return {"detail": f"{len(canvas)} samples, {how}", "path": str(canvas.path)}


def checks(canvas_specs: Mapping[str, Mapping[str, object]] | None = None) -> dict[str, Callable[[], Row]]:
    """Every check by name, in the order they run (the canvas needs Fashion-MNIST, so it comes after).

    ``canvas_specs`` maps a name to ``make_canvas`` keyword arguments (default: ``DEFAULT_CANVAS``).
    """
    table: dict[str, Callable[[], Row]] = {
        "photos/ai-benchmark": lambda: _photos("ai-benchmark"),
        "photos/skimage": lambda: _photos("skimage"),
        "fashion-mnist/train": lambda: _fashion_mnist("train"),
        "fashion-mnist/test": lambda: _fashion_mnist("test"),
        "weights/mobilenet_v2": lambda: _weights(MOBILENET_V2_WEIGHTS),
        "weights/efficientnet_lite0": lambda: _weights(EFFICIENTNET_LITE0_WEIGHTS),
    }
    for name, spec in (DEFAULT_CANVAS if canvas_specs is None else canvas_specs).items():
        table[f"canvas/{name}"] = lambda spec=spec: _canvas(spec)
    return table


def _shorten(text: str, width: int = 72) -> str:
    # Failure messages are long; the table shows their start and the raised error carries them whole.
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(results: dict[str, Row]) -> str:
    """A plain-text table: source, status, detail, location."""
    rows = [("source", "status", "detail", "location")]
    rows += [(name, "ok" if row["ok"] else "MISSING", _shorten(str(row["detail"])), str(row["path"] or "-"))
             for name, row in results.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}" for a, b, c, d in rows)


def ensure_all(verbose: bool = True, strict: bool = True,
               canvas_specs: Mapping[str, Mapping[str, object]] | None = None) -> dict[str, Row]:
    """Check every data source and generate (or find cached) the canvas datasets of ``canvas_specs``
    (default ``DEFAULT_CANVAS``).

    Returns ``{source: {"ok": bool, "detail": str, "path": str | None}}``. With ``verbose`` prints the table;
    with ``strict`` raises DataCheckError naming each failed source and why (after printing the table).
    """
    results: dict[str, Row] = {}
    for name, check in checks(canvas_specs).items():
        try:
            results[name] = {"ok": True, **check()}
        except (OSError, ImportError, ValueError) as error:
            results[name] = {"ok": False, "detail": f"{type(error).__name__}: {error}", "path": None}
    if verbose:
        print(format_table(results))
    failed = {name: row["detail"] for name, row in results.items() if not row["ok"]}
    if strict and failed:
        raise DataCheckError("data sources missing or corrupt:\n" +
                             "\n".join(f"  {name}: {detail}" for name, detail in failed.items()))
    return results
