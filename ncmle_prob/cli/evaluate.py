"""``ncmle evaluate``: bits/dim of one or more checkpoints at a list of σ, and a robustness plot."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import CLIError, load_run_data, parse_floats, say

__all__ = ["add_parser", "format_table", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Registers ``ncmle evaluate``."""
    p = sub.add_parser(
        "evaluate", help="bits/dim at several σ and a robustness plot",
        description="Print test bits/dim of each checkpoint at each σ (same noisy data for every "
                    "model) and plot bits/dim against σ, one curve per model.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("checkpoints", nargs="+", help="checkpoint files (last.pt)")
    p.add_argument("--labels", default=None, help="comma-separated curve labels")
    p.add_argument("--data", default=None, help="data set (default: the checkpoint's)")
    p.add_argument("--data-dir", default=None, help="folder of the IDX files")
    p.add_argument("--sigmas", default="0,0.02,0.05,0.1,0.2,0.3,0.5", help="σ list")
    p.add_argument("--plot", default="robustness.png", help="PNG path ('' for none)")
    p.add_argument("--no-ema", action="store_true", help="use raw instead of averaged weights")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation noise")
    p.set_defaults(run=run)


def format_table(results: dict[str, dict[float, float]]) -> str:
    """A text table: one row per σ, one column per model."""
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


def evaluate_checkpoints(
    paths: list[str], labels: list[str], sigmas: list[float], *, data_name: str | None,
    data_dir: str | None, ema: bool, device: str, seed: int,
) -> dict[str, dict[float, float]]:
    """``{label: {σ: bits/dim}}`` for each checkpoint on its (or the given) data set."""
    from ..training import evaluate_bits_per_dim, load_checkpoint, load_model, resolve_device

    dev = resolve_device(device)
    results: dict[str, dict[float, float]] = {}
    for path, label in zip(paths, labels):
        meta = load_checkpoint(path).meta
        name = data_name or meta.get("dataset")
        if name is None:
            raise CLIError(f"{path} does not say which data it was trained on; pass --data")
        data = load_run_data(name, data_dir or meta.get("data_dir"), meta.get("bins"))
        model = load_model(path, ema=ema, device=dev)
        feats = getattr(model, "event_shape", None)
        if feats is not None and tuple(feats) != tuple(data.test.shape[1:]):
            raise CLIError(
                f"{path} models {tuple(feats)} vectors but {name} has {tuple(data.test.shape[1:])}"
            )
        results[label] = evaluate_bits_per_dim(
            model, data.test.to(dev), sigmas, bins=data.bins, seed=seed
        )
    return results


def run(args: argparse.Namespace) -> int:
    """Runs ``ncmle evaluate``."""
    sigmas = parse_floats(args.sigmas)
    labels = args.labels.split(",") if args.labels else [
        Path(p).parent.name or Path(p).stem for p in args.checkpoints
    ]
    if len(labels) != len(args.checkpoints):
        raise CLIError(f"--labels has {len(labels)} names for {len(args.checkpoints)} checkpoints")
    results = evaluate_checkpoints(
        args.checkpoints, labels, sigmas, data_name=args.data, data_dir=args.data_dir,
        ema=not args.no_ema, device=args.device, seed=args.seed,
    )
    say("test bits/dim")
    say(format_table(results))
    if args.plot:
        from .plots import robustness_plot

        say(f"robustness plot: {robustness_plot(results, args.plot)}")
    return 0
