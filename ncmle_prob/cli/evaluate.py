"""``ncmle evaluate``: bits/dim of one or more checkpoints at a list of σ, a robustness plot and,
for image checkpoints, sample metrics (FCD/KID) beside their real-vs-real floor."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data import catalogue as _catalogue
from ..models import catalogue as _models
from .common import (
    DATASETS,
    CLIError,
    HelpFormatter,
    _idx_names,
    add_run_args,
    check_data_args,
    check_figure_file,
    check_output_file,
    load_run_data,
    nonnegative_int,
    parse_floats,
    positive_int,
    resolve_checkpoint,
    sampler_names,
    say,
    show_progress,
)
from .images import (
    add_image_data_args,
    check_data_spec,
    check_event_shape,
    checkpoint_data_error,
    load_image_data,
    spec_from_meta,
)
from .report import (
    SAMPLE_METRICS,
    format_metrics,
    format_table,
    half_bin_note,
    markdown_tables,
    noisy_levels_warning,
)

if TYPE_CHECKING:
    from torch import Tensor, nn

__all__ = [
    "SAMPLE_METRICS",
    "add_parser",
    "checkpoint_datasets",
    "format_table",
    "markdown_tables",
    "parse_metrics",
    "run",
    "sample_metrics",
]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Registers ``ncmle evaluate``."""
    p = sub.add_parser(
        "evaluate", help="bits/dim at several σ, a robustness plot, FCD/KID of image samples",
        description="Print test bits/dim of each checkpoint at each σ (same noisy data for every "
                    "model; all checkpoints must be trained on the same data) and plot bits/dim "
                    "against σ, one curve per model. For image data with a shipped feature "
                    "classifier (digits, mnist, mnist14) also score N samples of each sampler "
                    "(--metrics, --samplers) against held-out test images, beside the "
                    "real-vs-real floor at the same set sizes (ncmle_prob.metrics."
                    "score_with_floor); --json and --table write the results for a paper.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                   help="checkpoint files (last.pt) or pretrained:NAME (shipped models, "
                        "see 'ncmle pretrained'; labelled NAME)")
    p.add_argument("--labels", default=None,
                   help="comma-separated curve labels (default: each checkpoint's folder name)")
    p.add_argument("--data", default=None, metavar="SPEC",
                   help="data set or spec (" + ", ".join(_catalogue.spec_names())
                        + "; default: the checkpoints'; must fit them)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="folder of the IDX files (" + _idx_names() + " only)")
    add_image_data_args(p.add_argument_group("folder images"))
    p.add_argument("--sigmas", default="0,0.02,0.05,0.1,0.2,0.3,0.5", help="σ list")
    p.add_argument("--test-size", type=positive_int, default=None, metavar="N",
                   help="use the first N test images only (default: all)")
    p.add_argument("--plot", default="robustness.png",
                   help="figure path, .png, .jpg/.jpeg, .pdf or .svg ('' for none)")
    p.add_argument("--metric-samples", type=nonnegative_int, default=100, metavar="N",
                   help="image data: samples per model and sampler for the metrics (0: skip; at "
                        "most half the test images: a larger N is capped, with a note)")
    p.add_argument("--metrics", default=None,
                   help="comma-separated sample metrics of " + ", ".join(SAMPLE_METRICS)
                        + " (default: fcd,kid where a shipped classifier exists)")
    p.add_argument("--samplers", default="ancestral",
                   help="comma-separated samplers of the registry to score")
    p.add_argument("--repeats", type=positive_int, default=3,
                   help="random reference/held-out splits of the floor (spread needs >= 2)")
    p.add_argument("--json", default=None, metavar="PATH", help="write every result as JSON")
    p.add_argument("--table", default=None, metavar="PATH",
                   help="write Markdown tables (bits/dim, sample metrics)")
    p.add_argument("--no-ema", action="store_true", help="use raw instead of averaged weights")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation noise and samples")
    add_run_args(p, "metric samples")
    p.set_defaults(run=run)


def checkpoint_datasets(
    paths: list[str], data_name: str | None, data_dir: str | None
) -> tuple[str, str | None, int | None]:
    """``(data set, data_dir, bins)`` shared by all checkpoints; refuses to mix data sets.

    Reads only the checkpoints' metadata (no model, no data).
    """
    from ..training import load_checkpoint

    metas = {path: load_checkpoint(path).meta for path in paths}
    names = {path: m.get("dataset") for path, m in metas.items()}
    known = sorted({n for n in names.values() if n is not None})
    if len(known) > 1:
        shown = ", ".join(f"{p} on {n}" for p, n in names.items() if n is not None)
        raise CLIError(
            f"the checkpoints were trained on different data sets ({shown}); evaluate the "
            "models of one data set at a time"
        )
    if data_name is not None and known and known[0] != data_name:
        raise CLIError(f"--data {data_name}: the checkpoints were trained on {known[0]}")
    name = data_name or (known[0] if known else None)
    if name is None:
        raise CLIError(f"{paths[0]} does not say which data it was trained on; pass --data")
    bins = {m.get("bins") for m in metas.values() if m.get("dataset") is not None}
    if len(bins) > 1:
        raise CLIError(f"the checkpoints use different grids (bins {sorted(map(str, bins))}); "
                       "evaluate them separately")
    dirs = [m.get("data_dir") for m in metas.values() if m.get("data_dir")]
    return name, data_dir or (dirs[0] if dirs else None), next(iter(bins), None)


def parse_metrics(text: str | None, samplers: str) -> tuple[list[str] | None, list[str]]:
    """``(--metrics, --samplers)`` as lists, checked (``None``: the default metrics).

    Example:
        >>> from ncmle_prob.cli.evaluate import parse_metrics
        >>> parse_metrics("fcd,kid", "ancestral")
        (['fcd', 'kid'], ['ancestral'])
        >>> parse_metrics("fid", "ancestral")
        Traceback (most recent call last):
        ...
        ncmle_prob.cli.common.CLIError: --metrics: unknown metric 'fid'; choose from ...
    """
    names = [t.strip() for t in samplers.split(",") if t.strip()]
    if not names:
        raise CLIError(f"--samplers must name at least one sampler, got {samplers!r}")
    if text is None:
        return None, names
    metrics = [t.strip() for t in text.split(",") if t.strip()]
    bad = [m for m in metrics if m not in SAMPLE_METRICS]
    if bad or not metrics:
        raise CLIError(f"--metrics: unknown metric {bad[0] if bad else text!r}; choose from "
                       f"{', '.join(SAMPLE_METRICS)}")
    return metrics, names


def sample_metrics(
    model: nn.Module, real: Tensor, classifier: str, num: int, *, samplers: list[str],
    metrics: list[str], repeats: int, seed: int, batch_size: int | None = None,
    progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """Every metric of ``num`` samples at σ = 0 of each sampler, beside its floor.

    :func:`ncmle_prob.metrics.image_scores` splits the ``real`` test images ``repeats`` times
    into a reference set and a held-out set of ``num`` images: the score compares the reference
    with the samples, the floor with the held-out real images (the same set sizes).

    Returns:
        ``{sampler: {metric: value, metric_std, metric_floor, metric_floor_std, ...,
        num_samples, num_reference, repeats, seconds, samples_per_s}}``.
    """
    import time

    from ..metrics import image_scores
    from .images import as_images
    from .sample import draw

    shape = tuple(real.shape[1:])
    out: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(samplers):
        t0 = time.perf_counter()
        x = as_images(draw(model, num, 0.0, name, {}, seed + k, batch_size=batch_size,
                           progress=progress).detach(), shape)
        seconds = time.perf_counter() - t0
        dev = next(model.parameters()).device
        scores = image_scores(x.cpu().float(), real, classifier, metrics=metrics,
                              repeats=repeats, seed=seed, device=dev if dev.type == "cuda"
                              else None)
        out[name] = {**scores, "seconds": seconds, "samples_per_s": num / max(seconds, 1e-9)}
    return out


def _image_network(model: str | None) -> bool:
    """Whether ``model`` (a checkpoint's ``meta["model"]``) names a network of images."""
    return model in _models.names() and _models.lookup(model).input == "image"


def _image_checkpoints(metas: list[dict[str, Any]]) -> bool:
    """Checkpoints written for image data specs (PixelCNN++ or data loaded by spec)."""
    return any(_image_network(m.get("model")) or "data_bins" in m
               or (m.get("dataset") is not None and m.get("dataset") not in DATASETS)
               for m in metas)


def _load_data(args: argparse.Namespace, paths: list[str]) -> Any:
    """The test data of the checkpoints (or of ``--data``): legacy vectors or an ImageRun."""
    from ..training import load_checkpoint

    metas = [load_checkpoint(p).meta for p in paths]
    if not _image_checkpoints(metas):
        name, directory, bins = checkpoint_datasets(paths, args.data, args.data_dir)
        if name in DATASETS:
            return load_run_data(name, directory, bins)
    else:  # an image model may be evaluated on other images of its shape and grid
        name, directory, bins = checkpoint_datasets(paths, None, args.data_dir)
        if args.data is not None and args.data != name:
            name, directory = args.data, args.data_dir
    kw = spec_from_meta(metas[0])
    size = args.image_size if args.image_size is not None else kw["size"]
    channels = args.channels if args.channels is not None else kw["channels"]
    if args.data is not None and args.data != kw["spec"]:
        size = args.image_size  # another data set: its own size unless given
        channels = args.channels
    shapes = {tuple(m.get("event_shape") or ()) for m in metas}
    flatten = all(len(s) == 1 for s in shapes)
    try:
        return load_image_data(name, data_dir=directory, bins=bins, size=size,
                               channels=channels, resize=args.resize or kw["resize"],
                               flatten=flatten, train=False)
    except CLIError as e:
        if args.data is None:
            raise checkpoint_data_error(e, name, paths[0]) from e
        raise


def _requantise_note(data: Any) -> None:
    """Says when the data are re-quantised to the checkpoints' grid (trained with ``--bins``)."""
    from .images import ImageRun, native_bins

    if isinstance(data, ImageRun):
        native = data.meta.get("data_bins")
        if native == data.bins:
            native = native_bins(check_data_spec(data.spec, None))
    else:
        native = native_bins(data.name)
    if native is not None and data.bins is not None and native != data.bins:
        name = data.spec if isinstance(data, ImageRun) else data.name
        say(f"note: --data {name} comes on {native} levels; re-quantised to the checkpoints' "
            f"{data.bins} (they were trained with --bins {data.bins}), so bits/dim and metrics "
            f"are of the {data.bins}-level data")


def evaluate_checkpoints(
    args: argparse.Namespace, labels: list[str], sigmas: list[float],
    metrics: list[str] | None, samplers: list[str],
) -> tuple[dict[str, dict[float, float]], dict[str, dict[str, dict[str, Any]]], dict[str, Any]]:
    """``({label: {σ: bits/dim}}, {label: {sampler: metrics}}, facts)`` on the checkpoints'
    data."""

    from ..metrics import SHIPPED
    from ..training import evaluate_bits_per_dim, load_checkpoint, load_model, resolve_device
    from .images import ImageRun

    paths = args.checkpoints
    data = _load_data(args, paths)
    _requantise_note(data)
    image = isinstance(data, ImageRun)
    dev = resolve_device(args.device)
    models: dict[str, Any] = {}
    for path, label in zip(paths, labels):  # load and check every model before any work
        ck = load_checkpoint(path)
        warning = noisy_levels_warning(ck.train_config, ck.meta, samplers)
        if warning and (metrics is not None or args.metric_samples):
            print(f"ncmle: {path}: {warning}", file=sys.stderr, flush=True)
        model = load_model(path, ema=not args.no_ema, device=dev)
        feats = tuple(getattr(model, "event_shape", ()) or ())
        if image:
            check_event_shape(path, feats, data)
        elif feats and feats != tuple(data.test.shape[1:]):
            raise CLIError(
                f"{path} models {feats} vectors but {data.name} has {tuple(data.test.shape[1:])}"
            )
        models[label] = model
    if image:
        from torch.utils.data import Subset

        test: Any = data.test
        if args.test_size is not None and args.test_size < len(test):
            test = Subset(test, range(args.test_size))
        kind = check_data_spec(data.spec, None)
        classifier = kind if kind in SHIPPED else None
        image_shape = data.meta["image_shape"]
        name = data.spec
    else:
        test = data.test[: args.test_size].to(dev)
        classifier = data.name if data.name in SHIPPED and data.image_shape else None
        image_shape = data.image_shape
        name = data.name
    if metrics is not None and classifier is None:
        raise CLIError(f"--metrics: no shipped feature classifier for --data {name} (there are "
                       f"for {', '.join(SHIPPED)}); drop --metrics")
    num = min(args.metric_samples, len(test) // 2)
    if classifier is not None and 0 < num < args.metric_samples:
        say(f"note: --metric-samples {args.metric_samples} capped at {num}: at most half of the "
            f"{len(test)} test images, the other half being the reference")
    real = None
    if classifier is not None and num >= 2:
        from .images import as_images

        if image:
            real = as_images(test[list(range(len(test)))], image_shape)
        else:
            real = as_images(test, image_shape).cpu()
    results: dict[str, dict[float, float]] = {}
    scores: dict[str, dict[str, dict[str, Any]]] = {}
    for label, model in models.items():
        results[label] = evaluate_bits_per_dim(model, test, sigmas, bins=data.bins,
                                               seed=args.seed)
        if real is not None:
            scores[label] = sample_metrics(model, real, classifier, num,  # type: ignore[arg-type]
                                           samplers=samplers, metrics=metrics or ["fcd", "kid"],
                                           repeats=args.repeats, seed=args.seed,
                                           batch_size=args.batch_size,
                                           progress=show_progress(args.quiet))
    facts = {"data": name, "bins": data.bins, "image_shape": image_shape,
             "test_images": len(test), "classifier": classifier}
    return results, scores, facts


def run(args: argparse.Namespace) -> int:
    """Runs ``ncmle evaluate``."""
    sources = list(args.checkpoints)
    args.checkpoints = [resolve_checkpoint(p, "evaluate") for p in sources]
    sigmas = parse_floats(args.sigmas)
    labels = args.labels.split(",") if args.labels else [
        Path(p).parent.name or Path(p).stem for p in args.checkpoints
    ]
    if len(labels) != len(args.checkpoints):
        raise CLIError(f"--labels has {len(labels)} names for {len(args.checkpoints)} checkpoints")
    if len(set(labels)) != len(labels):
        raise CLIError(f"--labels must be distinct, got {','.join(labels)} (pass --labels)")
    metrics, samplers = parse_metrics(args.metrics, args.samplers)
    known = sampler_names()
    for name in samplers:
        if name not in known:
            raise CLIError(f"--samplers: unknown sampler {name!r}; choose from {', '.join(known)}")
    if args.data is not None:
        if args.data in DATASETS:
            check_data_args(args.data, args.data_dir)
        else:
            check_data_spec(args.data, args.data_dir)
    if args.plot:
        check_figure_file("--plot", args.plot)
    for flag, path in (("--json", args.json), ("--table", args.table)):
        if path:
            check_output_file(flag, path)
    results, scores, facts = evaluate_checkpoints(args, labels, sigmas, metrics, samplers)
    say(f"test bits/dim ({facts['test_images']} test images)")
    say(format_table(results))
    note = half_bin_note(sigmas, facts["bins"])
    if note:
        say(note)
    if scores:
        say(format_metrics(scores))
    if args.plot:
        from .plots import robustness_plot

        say(f"robustness plot: {robustness_plot(results, args.plot)}")
    if args.json:
        from .._io import atomic_write

        record = {"checkpoints": dict(zip(labels, sources)), **facts,
                  "sigmas": sigmas, "bits_per_dim": {k: {repr(s): v for s, v in r.items()}
                                                     for k, r in results.items()},
                  "sample_metrics": scores, "seed": args.seed, "ema": not args.no_ema}
        text = json.dumps(record, indent=1, default=float)
        say(f"json: {atomic_write(args.json, lambda f: f.write(text.encode()))}")
    if args.table:
        from .._io import atomic_write

        text = markdown_tables(results, scores, facts) + "\n"
        say(f"table: {atomic_write(args.table, lambda f: f.write(text.encode()))}")
    return 0
