"""`bnviz library build|check|show`: the results library from the command line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_library_command(sub: argparse._SubParsersAction) -> None:
    lib = sub.add_parser("library", help="the shipped results library: build, check, show")
    lib.add_argument("action", choices=("build", "check", "show"),
                     help="build: train or copy what is missing (resumable); check: verify "
                          "it against today's code (presence, config ids, and the first "
                          "steps of entries retrained); show: print every question's answer")
    lib.add_argument("--path", help="library file (default: the one shipped in the package)")
    lib.add_argument("--jobs", type=int, default=2, help="build: runs trained at once")
    lib.add_argument("--only", help="comma-separated question keys (default: all)")
    lib.add_argument("--full", action="store_true",
                     help="check: also retrain one entry chosen at random to the end and "
                          "compare its final numbers")
    lib.add_argument("--all", action="store_true", dest="every",
                     help="check: retrain the first steps of every entry (default: a "
                          "random sample with at least one entry of every question)")
    lib.add_argument("--steps", type=int, default=None, metavar="K",
                     help="check: steps retrained per entry and compared bit for bit "
                          "(default 20; 0 checks presence and config ids only)")
    lib.add_argument("--sample-seed", type=int, default=None, metavar="N",
                     help="check: choose the sample with this seed (printed by every check)")
    lib.add_argument("--no-store", action="store_true",
                     help="build: do not copy runs from the run store")
    lib.set_defaults(func=run)


def run(args) -> int:
    from bnviz.library import LIBRARY_FILE, Library
    from bnviz.library import build as lb
    from bnviz.library.catalog import QUESTION, QUESTIONS
    from bnviz.runs.store import RunStore, StoreError
    path = Path(args.path) if args.path else LIBRARY_FILE
    questions = QUESTIONS
    if args.only:
        keys = [k.strip() for k in args.only.split(",") if k.strip()]
        bad = [k for k in keys if k not in QUESTION]
        if bad:
            print(f"bnviz: unknown question {', '.join(bad)}; choose from "
                  f"{', '.join(QUESTION)}", file=sys.stderr)
            return 2
        questions = tuple(QUESTION[k] for k in keys)
    if args.action == "build":
        reuse = None
        if not args.no_store:
            try:
                reuse = RunStore()
            except StoreError as e:
                print(f"bnviz: not copying from the run store: {e}", file=sys.stderr)
        r = lb.build(path, questions, jobs=max(1, args.jobs), reuse=reuse)
        print(f"done: {r['runs']} runs ({r['present']} were there, {r['copied']} copied, "
              f"{r['trained']} trained in {r['seconds'] / 60:.1f} min); "
              f"{path.stat().st_size / 1e6:.1f} MB")
        return 0
    if args.action == "check":
        steps = lb.PREFIX_STEPS if args.steps is None else args.steps
        if steps < 0:
            print("bnviz: --steps must be 0 or more", file=sys.stderr)
            return 2
        problems = lb.check(path, questions, retrain=args.full, every=args.every,
                            steps=steps, sample_seed=args.sample_seed)
        for p in problems:
            print(p)
        print("library check: " + (f"{len(problems)} problem(s)" if problems else "ok"))
        return 1 if problems else 0
    try:
        print(lb.answers_text(Library(path), questions))
    except StoreError as e:
        print(f"bnviz: {e}", file=sys.stderr)
        return 1
    return 0
