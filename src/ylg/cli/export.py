"""`ylg export`: a run's trained G and D as a model folder to share
(:func:`ylg.models.pretrained.export_model`), which ``--pretrained DIR`` and
``load_pretrained(DIR)`` read."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a run's G and D as a shareable model folder (safetensors + JSON + card)",
        description="Write G (EMA weights when kept) and D as safetensors, model.json (the "
        "options that shape them, class names, step, recipe, precision, SHA-256 of every "
        "file) and a model card skeleton into --out. Load it with ylg generate --pretrained "
        "DIR or ylg.models.pretrained.load_pretrained(DIR).",
    )
    p.add_argument("run", help="run folder (its latest checkpoint) or checkpoint file")
    p.add_argument("--out", required=True, help="the model folder to write")
    p.add_argument("--name", default=None, help="the model's name (default: --out's name)")
    p.add_argument("--card", default=None, help="a MODEL_CARD.md to ship instead of a skeleton")
    p.set_defaults(func=run_export)


def run_export(args) -> int:
    from pathlib import Path

    from ylg.models.pretrained import export_model

    card = Path(args.card).read_text() if args.card else None
    out = export_model(args.run, args.out, name=args.name, card=card)
    print(f"ylg export: wrote model folder {out}")
    return 0
