"""What :func:`ylg.data.prepare.write_dataset` did: the images written per class and style,
the ones skipped with their reasons, the modes converted to RGB."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["Summary"]


@dataclass
class Summary:
    """What :func:`write_dataset` did: counts per class and style, skips with reasons."""

    out: str
    written: int = 0
    resolution: int = 0
    class_names: list[str] | None = None
    style_names: list[str] | None = None
    per_class: Counter = field(default_factory=Counter)
    per_style: Counter = field(default_factory=Counter)
    per_class_style: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    skipped_examples: dict = field(default_factory=dict)  # reason -> first item name
    converted: Counter = field(default_factory=Counter)  # source mode -> count (non-RGB)

    def to_dict(self) -> dict:
        classes = self.class_names or []
        styles = self.style_names or []

        def cname(i: int) -> str:
            return classes[i] if i < len(classes) else str(i)

        def sname(i: int) -> str:
            return styles[i] if i < len(styles) else str(i)

        return {
            "out": self.out,
            "resolution": self.resolution,
            "written": self.written,
            "class_names": self.class_names,
            "style_names": self.style_names,
            "per_class": {cname(k): v for k, v in sorted(self.per_class.items())},
            "per_style": {sname(k): v for k, v in sorted(self.per_style.items())},
            "per_class_style": {
                f"{cname(c)} / {sname(s)}": v for (c, s), v in sorted(self.per_class_style.items())
            },
            "skipped": dict(self.skipped),
            "skipped_examples": dict(self.skipped_examples),
            "converted_modes": dict(self.converted),
        }

    def format(self) -> str:
        """A human-readable summary (counts per class, per style, skips with reasons)."""
        d = self.to_dict()
        lines = [f"wrote {self.written} images ({self.resolution}x{self.resolution}) to {self.out}"]
        if self.class_names:
            lines.append(f"classes ({len(self.class_names)}):")
            lines += [f"  {name:<20} {d['per_class'].get(name, 0):>7}" for name in self.class_names]
        if self.style_names:
            names = self.style_names
            lines.append(f"styles ({len(names)}):")
            lines += [f"  {name:<20} {d['per_style'].get(name, 0):>7}" for name in names]
        if self.converted:
            modes = ", ".join(f"{m}: {n}" for m, n in sorted(self.converted.items()))
            lines.append(f"converted to RGB: {modes}")
        total_skipped = sum(self.skipped.values())
        lines.append(f"skipped {total_skipped}")
        for reason, n in self.skipped.most_common():
            lines.append(f"  {n:>7}  {reason} (e.g. {self.skipped_examples[reason]})")
        return "\n".join(lines)
