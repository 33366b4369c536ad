"""`ylg upgrade-checkpoint`: convert a checkpoint of an older ylg, which needs pickle, into
the current format, which loads without it (:func:`ylg.runtime.checkpoint.upgrade_checkpoint`).

Loading the old file unpickles it, which can run code: the command asks for ``--trust``."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser(
        "upgrade-checkpoint",
        help="convert a checkpoint of an older ylg (pickled numpy objects) to the safe format",
        description="Rewrite a ylg-train-1 checkpoint as ylg-train-2, whose fields are tensors "
        "and plain types that load with torch.load(weights_only=True). Reading the old file "
        "unpickles it, which runs any code it holds: only for files you made or trust.",
    )
    p.add_argument("checkpoint", help="checkpoint file or run folder (its latest.pt)")
    p.add_argument("--out", default=None, help="write here instead of replacing the file")
    p.add_argument(
        "--trust", action="store_true", help="required: I made this file or trust its source"
    )
    p.set_defaults(func=run_upgrade)


def run_upgrade(args) -> int:
    from ylg.runtime.checkpoint import upgrade_checkpoint

    if not args.trust:
        print(
            f"ylg upgrade-checkpoint: reading {args.checkpoint} unpickles it, which can run "
            "code; add --trust if you made this file or trust its source",
            file=sys.stderr,
        )
        return 2
    out = upgrade_checkpoint(args.checkpoint, args.out, trust=True)
    print(f"ylg upgrade-checkpoint: wrote {out} (loads without pickle)")
    return 0
