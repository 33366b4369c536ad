"""`ylg patterns`: render the paper's pattern figures and print the pattern report."""

from __future__ import annotations


def _grid(text: str) -> tuple[int, int]:
    import argparse

    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ROWSxCOLS such as 8x8, got {text!r}") from None
    return rows, cols


def _patterns():
    import ylg.patterns

    return ylg.patterns


def register(sub) -> None:
    from ylg.cli import LazyChoices

    p = sub.add_parser(
        "patterns",
        help="render pattern figures (masks, ESA grid, IFG) and print the pattern report",
    )
    p.add_argument(
        "--pattern",
        nargs="+",
        default=["ltr", "rtl", "strided_fi", "fixed", "strided"],
        choices=LazyChoices(lambda: _patterns().PATTERNS),
        metavar="PATTERN",
        help="pattern names, any of %(choices)s (default: all)",
    )
    p.add_argument("--n", type=int, default=9, help="tokens of the 1-D figures (default 9)")
    p.add_argument("--grid", type=_grid, default=(8, 8), help="grid ROWSxCOLS (default 8x8)")
    p.add_argument(
        "--curve",
        default="esa",
        choices=LazyChoices(lambda: _patterns().CURVES),
        metavar="CURVE",
        help="grid enumeration, one of %(choices)s (default esa)",
    )
    p.add_argument("--stride", type=int, default=None, help="stride (default isqrt of n)")
    p.add_argument(
        "--pair-flow-max-n", type=int, default=12, help="compute the exact pair flow up to this n"
    )
    p.add_argument("--out", default="runs/patterns", help="output folder (default runs/patterns)")
    p.set_defaults(func=run)


def run(args) -> int:
    return render_and_report(
        out=args.out,
        names=args.pattern,
        n=args.n,
        grid=args.grid,
        curve=args.curve,
        stride=args.stride,
        pair_flow_max_n=args.pair_flow_max_n,
    )


def render_and_report(out: str = "runs/patterns", **kwargs) -> int:
    from ylg.viz.patterns import format_report, render_patterns

    files, report = render_patterns(out, **kwargs)
    print(format_report(report))
    print(f"\n{len(files)} figures written to {out}/")
    return 0
