"""``ncmle evaluate``: bits/dim of one or more checkpoints at a list of σ, a robustness plot and,
for image checkpoints, sample metrics (FCD/KID) beside their real-vs-real floor."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import (
    DATASETS,
    CLIError,
    HelpFormatter,
    check_data_args,
    check_output_file,
    load_run_data,
    nonnegative_int,
    parse_floats,
    say,
)

if TYPE_CHECKING:
    from torch import Tensor, nn

__all__ = [
    "add_parser",
    "checkpoint_datasets",
    "format_table",
    "run",
    "sample_metrics",
]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Registers ``ncmle evaluate``."""
    p = sub.add_parser(
        "evaluate", help="bits/dim at several σ, a robustness plot, FCD/KID of image samples",
        description="Print test bits/dim of each checkpoint at each σ (same noisy data for every "
                    "model; all checkpoints must be trained on the same data set) and plot "
                    "bits/dim against σ, one curve per model. For image data with a shipped "
                    "feature classifier (digits, mnist) also print FCD and KID of ancestral "
                    "samples at σ = 0 against the test set, beside the real-vs-real floor at "
                    "the same set size.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                   help="checkpoint files (last.pt)")
    p.add_argument("--labels", default=None,
                   help="comma-separated curve labels (default: each checkpoint's folder name)")
    p.add_argument("--data", default=None, metavar="NAME",
                   help="data set, one of " + ", ".join(DATASETS) + " (default: the "
                        "checkpoints'; must agree with them)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="folder of the IDX files (mnist and fashion_mnist only)")
    p.add_argument("--sigmas", default="0,0.02,0.05,0.1,0.2,0.3,0.5", help="σ list")
    p.add_argument("--plot", default="robustness.png", help="PNG path ('' for none)")
    p.add_argument("--metric-samples", type=nonnegative_int, default=100, metavar="N",
                   help="image data: ancestral samples per model for FCD/KID (0: skip)")
    p.add_argument("--no-ema", action="store_true", help="use raw instead of averaged weights")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation noise and samples")
    p.set_defaults(run=run)


def format_table(results: dict[str, dict[float, float]]) -> str:
    """A text table: one row per σ, one column per model.

    Example:
        >>> from ncmle_prob.cli.evaluate import format_table
        >>> print(format_table({"mle": {0.0: 1.9}, "ncmle": {0.0: 1.93, 0.2: 2.5}}))
             σ         mle       ncmle
             0      1.9000      1.9300
           0.2           -      2.5000
    """
    labels = list(results)
    sigmas = sorted({s for r in results.values() for s in r})
    width = max(10, *(len(lab) for lab in labels))
    lines = ["σ".rjust(6) + "".join(lab.rjust(width + 2) for lab in labels)]
    for s in sigmas:
        row = f"{s:6.3g}" + "".join(
            (f"{results[lab][s]:.4f}" if s in results[lab] else "-").rjust(width + 2)
            for lab in labels
        )
        lines.append(row)
    return "\n".join(lines)


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


def sample_metrics(
    model: nn.Module, test: Tensor, image_shape: tuple[int, ...], dataset: str, num: int,
    *, seed: int,
) -> dict[str, float]:
    """FCD and KID of ``num`` ancestral samples at σ = 0 against the test images, with the
    real-vs-real floor of each metric at the same set size (``num`` against ``num``).

    Uses :func:`ncmle_prob.metrics.fcd`, :func:`~ncmle_prob.metrics.kid` and
    :func:`~ncmle_prob.metrics.real_vs_real` in the feature space of the shipped classifier.
    """
    import torch

    from ..metrics import fcd, kid, load_classifier, real_vs_real
    from .sample import draw

    dev = next(model.parameters()).device
    net = load_classifier(dataset, device=dev)
    x = draw(model, num, 0.0, "ancestral", {}, seed).reshape(num, *image_shape)

    @torch.no_grad()
    def features(images: Tensor) -> Tensor:
        return torch.cat([net.features(images[i : i + 500].to(dev).float())
                          for i in range(0, images.shape[0], 500)]).cpu()

    real = features(test.reshape(-1, *image_shape))
    fake = features(x)
    g = torch.Generator().manual_seed(seed)
    k, k_se = kid(real, fake, generator=g)
    fcd_floor, _ = real_vs_real(fcd, real, size=num, generator=g)

    def kid_mean(a: Tensor, b: Tensor) -> float:
        return kid(a, b, subsets=10, generator=g)[0]

    kid_floor, _ = real_vs_real(kid_mean, real, size=num, generator=g)
    # FCD of the samples against a random real subset of the same size as the floor's halves,
    # so that sample and floor share the small-sample bias
    perm = torch.randperm(real.shape[0], generator=g)[:num]
    return {"n": float(num), "fcd": fcd(real[perm], fake), "fcd_floor": fcd_floor, "kid": k,
            "kid_se": k_se, "kid_floor": kid_floor}


def evaluate_checkpoints(
    paths: list[str], labels: list[str], sigmas: list[float], *, data_name: str | None,
    data_dir: str | None, ema: bool, device: str, seed: int, metric_samples: int = 0,
) -> tuple[dict[str, dict[float, float]], dict[str, dict[str, float]]]:
    """``({label: {σ: bits/dim}}, {label: sample metrics})`` on the checkpoints' data set."""
    from ..metrics import SHIPPED
    from ..training import evaluate_bits_per_dim, load_model, resolve_device

    name, directory, bins = checkpoint_datasets(paths, data_name, data_dir)
    data = load_run_data(name, directory, bins)
    dev = resolve_device(device)
    models: dict[str, Any] = {}
    for path, label in zip(paths, labels):  # load and check every model before any work
        model = load_model(path, ema=ema, device=dev)
        feats = getattr(model, "event_shape", None)
        if feats is not None and tuple(feats) != tuple(data.test.shape[1:]):
            raise CLIError(
                f"{path} models {tuple(feats)} vectors but {name} has {tuple(data.test.shape[1:])}"
            )
        models[label] = model
    metric_samples = min(metric_samples, data.test.shape[0] // 2)
    results: dict[str, dict[float, float]] = {}
    metrics: dict[str, dict[str, float]] = {}
    for label, model in models.items():
        results[label] = evaluate_bits_per_dim(
            model, data.test.to(dev), sigmas, bins=data.bins, seed=seed
        )
        if data.image_shape is not None and name in SHIPPED and metric_samples >= 2:
            metrics[label] = sample_metrics(model, data.test, data.image_shape, name,
                                            metric_samples, seed=seed)
    return results, metrics


def format_metrics(metrics: dict[str, dict[str, float]]) -> str:
    """The sample-metric lines of ``ncmle evaluate``."""
    num = int(next(iter(metrics.values()))["n"])
    lines = [f"sample metrics: {num} ancestral samples at σ=0 vs {num} test images in the shipped "
             "classifier's feature space; floor: real vs real at the same set size"]
    for label, m in metrics.items():
        lines.append(f"  {label}: FCD {m['fcd']:.3f} (floor {m['fcd_floor']:.3f}), "
                     f"KID {m['kid']:.4f} ± {m['kid_se']:.4f} (floor {m['kid_floor']:.4f})")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Runs ``ncmle evaluate``."""
    sigmas = parse_floats(args.sigmas)
    labels = args.labels.split(",") if args.labels else [
        Path(p).parent.name or Path(p).stem for p in args.checkpoints
    ]
    if len(labels) != len(args.checkpoints):
        raise CLIError(f"--labels has {len(labels)} names for {len(args.checkpoints)} checkpoints")
    if len(set(labels)) != len(labels):
        raise CLIError(f"--labels must be distinct, got {','.join(labels)} (pass --labels)")
    if args.data is not None:
        check_data_args(args.data, args.data_dir)
    if args.plot:
        check_output_file("--plot", args.plot)
    results, metrics = evaluate_checkpoints(
        args.checkpoints, labels, sigmas, data_name=args.data, data_dir=args.data_dir,
        ema=not args.no_ema, device=args.device, seed=args.seed,
        metric_samples=args.metric_samples,
    )
    say("test bits/dim")
    say(format_table(results))
    if metrics:
        say(format_metrics(metrics))
    if args.plot:
        from .plots import robustness_plot

        say(f"robustness plot: {robustness_plot(results, args.plot)}")
    return 0
