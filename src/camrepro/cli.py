"""Command line of the compendium: ``python -m camrepro.cli {data,notebooks,compute,html,bench}``.

The Makefile calls these; each can also be run by hand from the repository root with the venv's Python.
Exit status: 0 on success, 1 when the work failed (the message says where), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


class CommandError(RuntimeError):
    """A command cannot run; the message says why and what to do."""


def _import_entry(module: str, function: str):
    """``module.function``, or a CommandError naming the module when it is missing."""
    import importlib

    try:
        return getattr(importlib.import_module(module), function)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.startswith(exc.name):
            raise CommandError(f"{module} is not available: {exc}") from exc
        raise


def _data(args: argparse.Namespace) -> int:
    _import_entry("camrepro.data.check", "ensure_all")()
    return 0


def _notebooks(args: argparse.Namespace) -> int:
    from camrepro.colophon import chapter_times
    from camrepro.notebooks import run_all

    record = run_all(args.profile, args.chapters, device=args.device)
    print(f"executed at profile {args.profile!r} into book/chapters/ (record: data/results/book-run.json)")
    print(chapter_times(record).loc[:, ["notebook", "status", "wall_seconds"]].to_string(index=False))
    return 0


def _compute(args: argparse.Namespace) -> int:
    import json
    import time

    from camrepro.experiments import registry
    from camrepro.notebooks import load_profile

    from camrepro import distributed

    chapter = registry.get(args.chapter)
    overrides = json.loads(args.set) if args.set else None
    params = chapter.params(args.profile, overrides)
    device = args.device or str(load_profile(args.profile)["device"])
    start = time.perf_counter()
    launch = distributed.start(device)   # under torchrun: this rank's place; otherwise one process
    try:
        results = chapter.run(params, device, only=args.units, launch=launch)
    finally:
        distributed.stop()
    if not launch.is_main:
        return 0
    if launch.sharded:
        print(f"{args.chapter}: {launch.world} ranks; per-image units sharded, the others computed by rank 0")
    for name, result in results.items():
        state = "cached" if result.from_cache else f"computed in {result.manifest.get('wall_seconds', 0):.0f} s"
        print(f"{args.chapter}/{name}: {state} ({result.path})")
    print(f"{args.chapter} at profile {args.profile!r}: {len(results)} units in "
          f"{time.perf_counter() - start:.0f} s")
    if args.units is None:   # claims need every unit
        for claim in chapter.claims_from(results, params):
            print(f"  {claim.key}: {claim.decision()}")
    return 0


def _html(args: argparse.Namespace) -> int:
    from camrepro.book import build_html

    html = build_html()
    print(f"book written to {html / 'index.html'}")
    return 0


def _bench(argv: Sequence[str]) -> int:
    result = _import_entry("camrepro.bench", "main")(list(argv))
    return int(result or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m camrepro.cli",
        description="Build the camrepro compendium: data, notebooks, HTML book, benchmarks.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{data,notebooks,compute,html,bench}")

    p = sub.add_parser("data", help="get and check every data source (packaged photos, Fashion-MNIST, "
                                    "generated datasets)")
    p.set_defaults(run=_data)

    p = sub.add_parser("notebooks", help="execute the chapter notebooks with papermill into book/chapters/",
                       description="Execute notebooks/<chapter>.ipynb with the parameters of "
                                   "notebooks/params/<profile>.yaml into book/chapters/, then the report and "
                                   "colophon; fails on any error, traceback or warning in an output.")
    p.add_argument("--profile", required=True,
                   help="smoke, book or paper (a file notebooks/params/<profile>.yaml)")
    p.add_argument("--chapters", nargs="+", metavar="NAME",
                   help="only these notebooks (the report and colophon follow any chapter)")
    p.add_argument("--device", help="override the profile's device, e.g. cuda")
    p.set_defaults(run=_notebooks)

    p = sub.add_parser("compute", help="fill one chapter's cache (every compute unit) without its notebook",
                       description="Compute every unit of a chapter at a profile into data/results/; the "
                                   "notebook then renders from the cache. Prints each claim's verdict. Under "
                                   "torchrun (torchrun --nproc-per-node N -m camrepro.cli compute ...) the "
                                   "per-image units are split over the ranks, each image computed once.")
    p.add_argument("--chapter", required=True, help="a chapter name (see camrepro.experiments.registry)")
    p.add_argument("--profile", required=True, help="smoke, book or paper")
    p.add_argument("--set", metavar="JSON", help='parameter overrides as JSON, e.g. \'{"images": {"n": 32}}\'')
    p.add_argument("--device", help="override the profile's device, e.g. cuda")
    p.add_argument("--units", nargs="+", metavar="UNIT",
                   help="only these units (claims are then not printed: they need every unit)")
    p.set_defaults(run=_compute)

    p = sub.add_parser("html", help="render the executed notebooks into _build/html (any warning fails)")
    p.set_defaults(run=_html)

    # listed for the help text only: main() hands everything after "bench" to camrepro.bench untouched
    sub.add_parser("bench", help="time every method per image next to pytorch-grad-cam; writes a CSV "
                                 "(arguments go to camrepro.bench)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from camrepro.book import BookBuildError
    from camrepro.experiments.sharding import ShardError
    from camrepro.notebooks import NotebookExecutionError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    command = argv[0] if argv else None
    try:
        if command == "bench":
            return _bench(argv[1:])
        args = parser.parse_args(argv)
        return args.run(args)
    except (CommandError, NotebookExecutionError, BookBuildError, ShardError,
            ValueError, TypeError, FileNotFoundError) as exc:
        # these messages name the problem and the way out; a traceback would only bury them
        print(f"camrepro {command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
