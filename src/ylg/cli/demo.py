"""`ylg demo`: the main job on the built-in default (for now: the pattern figures and report)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the main job on the built-in default")
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ylg.cli.patterns import render_and_report

    return render_and_report(out=args.out + "/patterns")
