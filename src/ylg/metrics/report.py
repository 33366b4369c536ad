"""An evaluation as ``ylg eval`` runs it: FID / IS / KID of a checkpoint, or FID / KID of an
image set, against a dataset or reference statistics, as one report.

:func:`evaluate_run` makes every decision of the command (the inputs that go together, the
default metrics, where the reference statistics come from, the notes the run leaves) and
returns the report, a plain dict that :func:`format_table` prints and :func:`save_report`
writes as JSON (by default beside the checkpoint, :func:`default_report_path`). Its errors
name the ``ylg eval`` flags of the arguments (``images`` is ``--images``, ``ref`` ``--ref``).

    report = evaluate_run("runs/demo", data="builtin", n=10000)
    print(format_table(report))
    save_report(report, default_report_path(report))

The Inception and the metric functions are looked up through the :mod:`ylg.metrics`
package when the run starts, so a caller that replaces ``ylg.metrics.load_inception`` (a test
with a tiny extractor) replaces it here too.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

from ylg import metrics as _metrics  # the package: its functions are looked up at call time
from ylg.metrics.evaluate import default_metrics, parse_metrics
from ylg.metrics.stats import ReferenceStats
from ylg.metrics.weights import no_is_message
from ylg.models.loading import load_for_inference
from ylg.runtime.device import resolve_device
from ylg.runtime.files import atomic_write_text

__all__ = [
    "BUILTIN",
    "check_data_source",
    "check_eval_inputs",
    "data_source",
    "default_report_path",
    "evaluate_run",
    "format_table",
    "save_report",
]

#: the name of the built-in procedural dataset where a data source is expected
BUILTIN = "builtin"


def data_source(value: str | None) -> str | None:
    """The data source for make_dataset: None for the built-in procedural dataset."""
    return None if value in (None, "", BUILTIN) else value


def check_data_source(value: str | None, flag: str) -> None:
    """FileNotFoundError naming ``flag`` when a data source does not exist."""
    if data_source(value) is not None and not Path(value).expanduser().exists():
        raise FileNotFoundError(
            f"{flag} {value!r} not found; give an image folder, a .npz of images, or "
            f"'{BUILTIN}' (the procedural shapes)"
        )


def check_eval_inputs(
    checkpoint: str | os.PathLike | None,
    images: str | None,
    *,
    resolution: int | None,
    metrics: str | Sequence[str] | None,
    use_ema: bool,
    data: str | None,
    ref: str | os.PathLike | None,
) -> tuple[tuple[str, ...] | None, ReferenceStats | None]:
    """Everything about the inputs that can be checked without the Inception weights.

    Returns the parsed metrics (``None``: the defaults, decided once the weights are known)
    and the reference statistics loaded from ``ref`` (``None`` without it)."""
    metrics = parse_metrics(metrics) if metrics is not None else None
    if (checkpoint is None) == (images is None):
        raise ValueError(
            "give either a checkpoint to evaluate or --images SET (an image folder or .npz), "
            f"not {'both' if images else 'neither'}"
        )
    if images is not None:
        check_data_source(images, "--images")
        if resolution is None:
            raise ValueError(
                "--images needs --resolution R: the side both image sets are brought to before "
                "the Inception's own resize to 299"
            )
        if metrics is not None and "is" in metrics:
            raise ValueError(
                "--metrics is: the Inception Score is computed for a checkpoint's samples only; "
                "for two image sets use fid and/or kid"
            )
        if not use_ema:
            raise ValueError("--no-ema is for a checkpoint, not --images")
    else:
        if resolution is not None:
            raise ValueError(
                "--resolution is for --images; a checkpoint's generator has its own resolution"
            )
        if not Path(checkpoint).expanduser().exists():
            raise FileNotFoundError(
                f"checkpoint {checkpoint!r} not found; give a run directory or a .pt file"
            )
    if data is not None:
        check_data_source(data, "--data")
    if (data is None) == (ref is None):
        raise ValueError(
            "give either data (a dataset: folder, .npz or 'builtin') or ref (a statistics "
            f".npz from `ylg stats`) as the reference, not {'both' if ref else 'neither'}"
        )
    reference = None
    if ref is not None:
        reference = ReferenceStats.load(ref)
        if metrics is not None and "kid" in metrics and reference.features is None:
            raise ValueError(
                f"--metrics kid needs the feature sample of the reference, but {ref!r} has "
                "none (remake it with `ylg stats ... --keep-features 5000`)"
            )
    return metrics, reference


def evaluate_run(
    checkpoint: str | os.PathLike | None = None,
    *,
    images: str | None = None,
    resolution: int | None = None,
    data: str | None = None,
    ref: str | os.PathLike | None = None,
    metrics: str | Sequence[str] | None = None,
    n: int | None = None,
    ref_n: int | None = None,
    seed: int = 0,
    use_ema: bool = True,
    inception_weights: str | os.PathLike | None = None,
    batch_size: int = 64,
    device: str = "auto",
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    bootstrap: int = 0,
    cache: bool = True,
    num_workers: int = 0,
    progress: bool = True,
) -> dict:
    """Evaluate a checkpoint's samples, or an image set, against a reference; the report.

    Args:
        checkpoint: run directory (its latest checkpoint) or checkpoint file; or give
            ``images``, an image folder or ``.npz`` brought to ``resolution``.
        data, ref: the reference, exactly one: a dataset (folder, ``.npz`` or ``builtin``,
            ``ref_n`` images of it, default all) or statistics from ``ylg stats``.
        metrics: ``fid``, ``is``, ``kid`` (list or comma-separated); ``None``: FID and IS for
            a checkpoint (FID alone when the weights have no IS head), FID for ``images``.
        n: samples of the checkpoint (default 50000); with ``images``: images used (default
            all). ``seed``: the sampling / subset seed. ``use_ema``: the EMA generator.
        inception_weights: the Inception weight file (default: see
            :func:`ylg.metrics.load_inception`).
        bootstrap: resamples for 95% intervals of FID and KID (``fid_ci95``, ``kid_ci95``;
            0 = none; a checkpoint's samples only).
        cache: reuse cached statistics of the data sets (``False``: recompute them).

    Returns:
        ``checkpoint``, ``step``, ``ema``, ``n``, ``seed`` (a checkpoint) or ``images`` (the
        set's summary); ``reference`` (its summary), ``metrics_requested``, ``metrics``
        (values, ``*_std`` for IS and KID) and ``warnings`` (the notes of the run).
    """
    metrics, reference = check_eval_inputs(
        checkpoint, images, resolution=resolution, metrics=metrics, use_ema=use_ema,
        data=data, ref=ref,
    )  # fmt: skip
    if bootstrap and images is not None:
        raise ValueError(
            f"bootstrap={bootstrap}: intervals are computed for a checkpoint's samples; with "
            "images, compare the sets with KID (its std over subsets) instead"
        )
    device = str(resolve_device(device))
    loaded = None
    if images is None:
        loaded = load_for_inference(checkpoint, device=device, use_ema=use_ema)
        resolution = loaded.G.resolution
    if reference is not None:
        reference.check(resolution=resolution, name=repr(ref))

    inception = _metrics.load_inception(inception_weights, device=device)
    notes_before = []
    if metrics is None:
        metrics = ("fid",) if images is not None else default_metrics(inception)
        if images is None and "is" not in metrics:
            notes_before.append(f"IS skipped: {no_is_message(inception)}")
    elif "is" in metrics and not getattr(inception, "has_classifier", True):
        raise ValueError(no_is_message(inception))
    if reference is not None:
        reference.check(extractor=inception.extractor_id, name=repr(ref))
    else:
        reference = _metrics.reference_stats(
            data_source(data), resolution, n=ref_n, batch_size=batch_size, device=device,
            inception=inception, cache=cache, num_workers=num_workers, progress=progress,
        )  # fmt: skip
    common = dict(
        metrics=metrics, batch_size=batch_size, device=device, seed=seed, inception=inception,
        kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, progress=progress,
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if loaded is not None:
            n = n if n is not None else 50000
            values = _metrics.evaluate_generator(
                loaded.G, n=n, reference=reference, bootstrap=bootstrap, **common
            )
        else:
            values, stats = _metrics.evaluate_images(
                data_source(images), resolution, reference=reference, n=n, cache=cache,
                num_workers=num_workers, **common,
            )  # fmt: skip
    report: dict = {}
    if loaded is not None:
        path = Path(loaded.path) if loaded.path is not None else Path(checkpoint)
        report.update(checkpoint=str(path), step=loaded.step, ema=bool(loaded.used_ema), n=n,
                      seed=seed)  # fmt: skip
    else:
        report["images"] = stats.summary()
    report.update(
        reference=reference.summary(),
        metrics_requested=list(metrics),
        metrics=values,
        warnings=notes_before + sorted({str(w.message) for w in caught}),
    )
    return report


def default_report_path(report: dict) -> Path | None:
    """``<run dir>/eval-step<S>-n<N>.json`` for a checkpoint's report; ``None`` for an image
    set's (which has no folder of its own)."""
    if "checkpoint" not in report:
        return None
    return Path(report["checkpoint"]).parent / f"eval-step{report['step']}-n{report['n']}.json"


def save_report(report: dict, path: str | os.PathLike) -> Path:
    """Write the report as JSON, atomically (a killed run leaves no half-written file)."""
    return atomic_write_text(path, json.dumps(report, indent=2) + "\n")


def _describe(summary: dict) -> str:
    r = summary["resolution"]
    return f"{summary['source'] or '?'} (n = {summary['n']}, {r}x{r}, {summary['extractor']})"


def format_table(report: dict) -> str:
    """The report as the table ``ylg eval`` prints."""
    if "images" in report:
        lines = [f"images      {_describe(report['images'])}"]
    else:
        lines = [
            f"checkpoint  {report['checkpoint']} (step {report['step']}, "
            f"{'EMA' if report['ema'] else 'raw'} generator)",
            f"samples     N = {report['n']} (seed {report['seed']})",
        ]
    lines += [
        f"reference   {_describe(report['reference'])}",
        "",
        f"{'metric':<8}{'value':>14}{'std':>14}",
    ]
    for name in report["metrics_requested"]:
        value = report["metrics"][name]
        std = report["metrics"].get(f"{name}_std")
        std_text = f"{'':>14}" if std is None else f"{std:>14.6g}"
        ci = report["metrics"].get(f"{name}_ci95")
        ci_text = "" if ci is None else f"   95% CI [{ci[0]:.6g}, {ci[1]:.6g}]"
        lines.append(f"{name.upper():<8}{value:>14.6g}{std_text}{ci_text}".rstrip())
    return "\n".join(lines)
