"""Figures of the paper's patterns: 1-D step masks, masks on the grid, ESA numbers, IFGs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from ylg.attention.grid import grid_head_specs, grid_mask
from ylg.ifg import min_pair_flow, missing_paths
from ylg.patterns import PATTERNS, enumerate_grid, grid_masks, two_step

_MASK_CMAP = ListedColormap(["#f4f4f4", "#2b6cb0"])


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_step_masks(masks: torch.Tensor, title: str, path: Path) -> Path:
    """The steps of a 1-D pattern side by side: rows are queries, columns keys."""
    steps, nq, nk = masks.shape
    fig, axes = plt.subplots(1, steps, figsize=(3.2 * steps, 3.4), squeeze=False)
    for t, ax in enumerate(axes[0]):
        ax.imshow(masks[t].numpy(), cmap=_MASK_CMAP, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"step {t}")
        ax.set_xlabel("key")
        ax.set_ylabel("query")
        if nk <= 16:
            ax.set_xticks(range(nk))
            ax.set_yticks(range(nq))
            ax.set_xticks([x - 0.5 for x in range(nk + 1)], minor=True)
            ax.set_yticks([y - 0.5 for y in range(nq + 1)], minor=True)
            ax.grid(which="minor", color="white", linewidth=1)
            ax.tick_params(which="minor", length=0)
    fig.suptitle(title)
    return _save(fig, path)


def plot_grid_masks(masks: torch.Tensor, grid: tuple[int, int], queries, title: str, path: Path):
    """For a few query cells, the keys each step lets it see, drawn on the 2-D grid.

    ``masks`` is ``[steps, N, N]`` on a ``grid`` of raster-ordered tokens; each query cell is
    outlined in red.
    """
    rows, cols = grid
    steps = masks.shape[0]
    fig, axes = plt.subplots(
        len(queries), steps, figsize=(2.6 * steps, 2.6 * len(queries)), squeeze=False
    )
    for i, (r, c) in enumerate(queries):
        for t in range(steps):
            ax = axes[i][t]
            ax.imshow(
                masks[t, r * cols + c].view(rows, cols).numpy(), cmap=_MASK_CMAP, vmin=0, vmax=1
            )
            ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, color="red", lw=2))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"query ({r},{c}), step {t}", fontsize=9)
    fig.suptitle(title)
    return _save(fig, path)


def grid_pattern_panels(
    specs: list[tuple[str, dict]], grid: tuple[int, int], query: tuple[int, int]
) -> list[tuple[str, torch.Tensor]]:
    """For one query cell, the key cells each distinct head mask lets it see.

    ``specs``: ``(pattern, grid_mask keywords)`` pairs (``heads``, ``key_grid``, ``radius``,
    ...); heads with the same mask are drawn once, titled with all their indices. Returns
    ``(title, bool [h, w])`` panels, on the key grid; global tokens (``extra_tokens``) are
    left out of the panel (every query sees them) and named in the title.
    """
    rows, cols = grid
    r, c = query
    panels = []
    for pattern, kw in specs:
        kw = dict(kw)
        heads = kw.pop("heads", 8)
        e = kw.get("extra_tokens", 0)
        hk, wk = kw.get("key_grid") or grid
        mask = grid_mask(pattern, grid, heads=heads, **kw)[:, e + r * cols + c, e:]  # [h, hk*wk]
        names = grid_head_specs(pattern, heads)
        seen: dict[tuple, list[int]] = {}
        for h in range(heads):
            seen.setdefault(tuple(mask[h].tolist()), []).append(h)
        for members in seen.values():
            spec = names[members[0]]
            what = spec if isinstance(spec, str) else f"{spec[0]} step {spec[1]}"
            extra = f" + {e} global" if e else ""
            extra += f", pooled keys {hk}x{wk}" if (hk, wk) != tuple(grid) else ""
            title = f"{pattern}: heads {','.join(map(str, members))}\n{what}{extra}"
            panels.append((title, mask[members[0]].view(hk, wk)))
    return panels


def plot_grid_patterns(
    panels: list[tuple[str, torch.Tensor]],
    grid: tuple[int, int],
    query: tuple[int, int],
    path: Path,
    title: str,
    per_row: int = 4,
) -> Path:
    """Draw :func:`grid_pattern_panels`: allowed key cells in blue, the cell under the query
    outlined in red (on a pooled key grid, the key cell that holds the query)."""
    n = len(panels)
    nrows = -(-n // per_row)
    fig, axes = plt.subplots(nrows, per_row, figsize=(2.5 * per_row, 2.7 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, keys) in zip(axes.flat, panels):
        hk, wk = keys.shape
        kr, kc = query[0] * hk // grid[0], query[1] * wk // grid[1]
        ax.axis("on")
        ax.imshow(keys.numpy(), cmap=_MASK_CMAP, vmin=0, vmax=1, interpolation="nearest")
        ax.add_patch(plt.Rectangle((kc - 0.5, kr - 0.5), 1, 1, fill=False, color="red", lw=1.5))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{name}\n{int(keys.sum())} of {hk * wk} keys", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_enumeration(order: torch.Tensor, grid: tuple[int, int], title: str, path: Path) -> Path:
    """The curve's number in every cell of the grid, like the paper's Figure 3."""
    rows, cols = grid
    numbers = torch.empty_like(order)
    numbers[order] = torch.arange(order.numel())
    numbers = numbers.view(rows, cols)
    fig, ax = plt.subplots(figsize=(0.55 * cols + 1, 0.55 * rows + 1))
    ax.imshow(numbers.numpy(), cmap="viridis")
    for r in range(rows):
        for c in range(cols):
            ax.text(c, r, int(numbers[r, c]), ha="center", va="center", color="white", fontsize=8)
    ys, xs = order // cols, order % cols
    ax.plot(xs.numpy(), ys.numpy(), color="white", alpha=0.35, lw=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    return _save(fig, path)


def plot_ifg(masks: torch.Tensor, title: str, path: Path, highlight=None) -> Path:
    """The information flow graph: one column of tokens per layer, an edge per allowed pair.

    ``highlight`` = (input, output) draws one path between them in red, if there is one.
    """
    steps, n, _ = masks.shape
    fig, ax = plt.subplots(figsize=(1.8 * (steps + 1), 0.35 * n + 1))
    for t in range(steps):
        for b, a in masks[t].nonzero().tolist():
            ax.plot([t, t + 1], [a, b], color="#7a869a", lw=0.6, alpha=0.7)
    if highlight is not None:
        path_nodes = _one_path(masks, *highlight)
        if path_nodes:
            ax.plot(range(steps + 1), path_nodes, color="red", lw=2)
    for layer in range(steps + 1):
        ax.scatter([layer] * n, range(n), s=60, color="#2b6cb0", zorder=3)
    ax.set_xticks(range(steps + 1))
    ax.set_xticklabels(["input"] + [f"after step {t}" for t in range(steps)])
    ax.set_yticks(range(n))
    ax.invert_yaxis()
    ax.set_ylabel("token")
    ax.set_title(title)
    return _save(fig, path)


def _one_path(masks: torch.Tensor, source: int, sink: int) -> list[int] | None:
    """Tokens of one path from ``source`` to ``sink``, layer by layer (backtracking)."""
    steps = masks.shape[0]

    def extend(path: list[int]) -> list[int] | None:
        t = len(path) - 1
        if t == steps:
            return path if path[-1] == sink else None
        for b in masks[t, :, path[-1]].nonzero().flatten().tolist():
            found = extend([*path, b])
            if found:
                return found
        return None

    return extend([source])


def pattern_report(name: str, masks: torch.Tensor, pair_flow_max_n: int = 12) -> dict:
    """Allowed positions, density, Full Information (with one missing path) and pair flow."""
    steps, n, _ = masks.shape
    allowed = int(masks.sum())
    missing = missing_paths(masks)  # one reachability computation gives both answers
    fi = not missing
    row = {
        "pattern": name,
        "n": n,
        "allowed": allowed,
        "density": allowed / (steps * n * n),
        "full_information": fi,
        "missing_path": None if fi else missing[0],
        "pair_flow": min_pair_flow(masks) if 2 <= n <= pair_flow_max_n else None,
    }
    return row


def format_report(rows: list[dict]) -> str:
    head = f"{'pattern':<18}{'n':>6}{'allowed':>9}{'density':>9}  {'full info':<28}{'pair flow':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["full_information"]:
            fi = "yes"
        else:
            a, b = r["missing_path"]
            fi = f"no (input {a} -/-> output {b})"
        flow = "-" if r["pair_flow"] is None else str(r["pair_flow"])
        lines.append(
            f"{r['pattern']:<18}{r['n']:>6}{r['allowed']:>9}{r['density']:>9.3f}  {fi:<28}{flow:>9}"
        )
    return "\n".join(lines)


def render_patterns(
    out,
    names=("ltr", "rtl", "strided_fi", "fixed", "strided"),
    n: int = 9,
    grid: tuple[int, int] = (8, 8),
    curve: str = "esa",
    stride: int | None = None,
    pair_flow_max_n: int = 12,
) -> tuple[list[Path], list[dict]]:
    """Render the figures of every pattern into ``out`` and return (files, report rows).

    For each pattern: its 1-D steps over ``n`` tokens and their IFG (like Figure 2), and its
    masks on the ``grid`` for three query cells; once: the curve's enumeration of the grid
    (like Figure 3). Report rows cover both the 1-D and the grid version.
    """
    unknown = [name for name in names if name not in PATTERNS]
    if unknown:
        raise ValueError(f"unknown pattern names={unknown}; valid names: {', '.join(PATTERNS)}")
    out = Path(out)
    rows, cols = grid
    files = [
        plot_enumeration(
            enumerate_grid(rows, cols, curve),
            grid,
            f"{curve} enumeration of a {rows}x{cols} grid",
            out / f"enumeration_{curve}_{rows}x{cols}.png",
        )
    ]
    report = []
    queries = [(0, 0), (rows // 2, cols // 2), (rows - 1, cols - 1)]
    for name in names:
        one_d = two_step(name, n, stride)
        on_grid = grid_masks(name, grid, curve=curve, stride=stride)
        row_1d = pattern_report(name, one_d, pair_flow_max_n)
        row_grid = pattern_report(f"{name}@{rows}x{cols}", on_grid, pair_flow_max_n)
        report += [row_1d, row_grid]
        files.append(plot_step_masks(one_d, f"{name}, n={n}", out / f"{name}_1d_n{n}.png"))
        files.append(
            plot_step_masks(
                on_grid,
                f"{name} on {rows}x{cols} ({curve})",
                out / f"{name}_grid_{rows}x{cols}.png",
            )
        )
        files.append(
            plot_grid_masks(
                on_grid,
                grid,
                queries,
                f"{name} on a {rows}x{cols} grid ({curve})",
                out / f"{name}_grid_{rows}x{cols}_queries.png",
            )
        )
        highlight = (0, n - 1) if row_1d["full_information"] else row_1d["missing_path"]
        files.append(
            plot_ifg(one_d, f"IFG of {name}, n={n}", out / f"{name}_ifg_n{n}.png", highlight)
        )
    return files, report
