"""Training-step time against the previous MADE, and the default models of ours and zuko.

* ``train``: one optimisation step (``-model(s).log_prob(x).mean()``, backward, Adam) of ours
  ``MADE(D, H)`` against the same step of the previous, nflows-based MADE (loaded from a copy of
  its source file with ``--old-made``; its relative imports resolve inside
  :mod:`ncmle_prob.models`) and of zuko's matched MAF, same data and σ, interleaved.
* ``defaults``: what a user gets without options, labelled as such, *not* matched: ours
  ``MADE(D)`` (one MADE, H = 64, two residual blocks, ELU) against zuko's ``MAF(D)`` (three
  transforms of two hidden layers of 64, ReLU): log_prob, score and a training step.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import torch
from _report import Verdicts, fmt, inverse, ratio, table
from _timing import interleaved
from torch import Tensor, nn

from ncmle_prob.distributions import AutoregressiveConditioner
from ncmle_prob.models import MADE

__all__ = ["load_old_made", "section_defaults", "section_train"]


def load_old_made(path: Path) -> type[nn.Module]:
    """The ``MADE`` class of a copy of an earlier ``ncmle_prob/models/made.py``."""
    if not path.is_file():
        raise SystemExit(f"--old-made: no such file {path}")
    spec = importlib.util.spec_from_file_location("ncmle_prob.models._bench_old_made", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--old-made: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cls = module.MADE
    if not issubclass(cls, AutoregressiveConditioner):
        # The old class predates the conditioner base class; it has the same methods.
        AutoregressiveConditioner.register(cls)
    return cls


def _zuko_maf(d: int, h: int | None) -> nn.Module | None:
    try:
        import zuko
    except ImportError:
        return None
    if h is None:  # zuko's defaults
        return zuko.flows.MAF(d)
    return zuko.flows.MAF(
        d, transforms=1, hidden_features=(h, h), residual=True, activation=nn.ELU
    )


def _log_prob_fn(model: nn.Module, s: Tensor) -> Callable[[Tensor], Tensor]:
    if isinstance(model, AutoregressiveConditioner):
        return lambda v: model(s).log_prob(v)
    return lambda v: model().log_prob(v)  # zuko: a LazyDistribution without context


def _step(model: nn.Module, x: Tensor, s: Tensor) -> Callable[[], object]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    lp = _log_prob_fn(model, s)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        (-lp(x).mean()).backward()
        opt.step()

    return step


def _score(model: nn.Module, x: Tensor, s: Tensor) -> Callable[[], Tensor]:
    lp = _log_prob_fn(model, s)

    def score() -> Tensor:
        xg = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(lp(xg).sum(), xg)
        return g

    return score


def _data(d: int, b: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    s = torch.rand(b, generator=g)
    return torch.randn(b, d, generator=g) * (1 + s[:, None]), s


def section_train(
    sizes: tuple[tuple[int, int, int], ...],
    repeats: int,
    min_time: float,
    old: type[nn.Module] | None,
    results: dict[str, object],
    verdicts: Verdicts,
) -> None:
    """Training-step throughput of ours vs the previous MADE and zuko (matched)."""
    rows = []
    for d, h, b in sizes:
        x, s = _data(d, b)
        fns: dict[str, Callable[[], object]] = {}
        torch.manual_seed(0)
        fns["ours"] = _step(MADE(d, h, family="gaussian", activation="elu"), x, s)
        if old is not None:
            torch.manual_seed(0)
            fns["old"] = _step(old(d, h, family="gaussian", activation="elu"), x, s)
        zk = _zuko_maf(d, h)
        if zk is not None:
            fns["zuko"] = _step(zk, x, s)
        t = interleaved(fns, repeats=repeats, min_time=min_time)
        r = {
            "old/ours": inverse(ratio(t, "ours", "old")),
            "zuko/ours": inverse(ratio(t, "ours", "zuko")),
        }
        key = f"train D={d} H={h} B={b}"
        results[key] = {k: None if v is None else vars(v) for k, v in r.items()}
        results[key]["ms"] = {k: 1e3 * t.median(k) for k in t.times}
        rows.append([d, h, b, f"{1e3 * t.median('ours'):.2f}"] + [fmt(v) for v in r.values()])
        v = r["old/ours"]
        if v is not None and d >= 784:
            state = "met   " if v.median >= 1.0 else "MISSED"
            verdicts.append(f"{state} {key} training step vs previous MADE >= 1.0: {v}")
    if old is None:
        print("\n(train: no --old-made given; the previous MADE's column reads n/a)")
    title = "training step (log_prob, backward, Adam) throughput: their time / ours"
    head = ["D", "H", "B", "ours ms", "previous MADE/ours", "zuko matched/ours"]
    print(table(title, head, rows), flush=True)


def section_defaults(
    sizes: tuple[tuple[int, int], ...],
    repeats: int,
    min_time: float,
    results: dict[str, object],
) -> None:
    """Default models (not matched): ours ``MADE(D)`` vs zuko's ``MAF(D)``."""
    rows = []
    for d, b in sizes:
        x, s = _data(d, b)
        torch.manual_seed(0)
        ours = MADE(d, family="gaussian")
        zk = _zuko_maf(d, None)
        if zk is None:
            rows.append([d, b, "n/a", "n/a", "n/a", "n/a"])
            continue
        lp_o, lp_z = _log_prob_fn(ours, s), _log_prob_fn(zk, s)
        fns = {
            "ours.lp": lambda lp_o=lp_o, x=x: lp_o(x),
            "zuko.lp": lambda lp_z=lp_z, x=x: lp_z(x),
            "ours.score": _score(ours, x, s),
            "zuko.score": _score(zk, x, s),
            "ours.step": _step(ours, x, s),
            "zuko.step": _step(zk, x, s),
        }
        t = interleaved(fns, repeats=repeats, min_time=min_time)
        r = {k: inverse(ratio(t, f"ours.{k}", f"zuko.{k}")) for k in ("lp", "score", "step")}
        key = f"defaults D={d} B={b}"
        results[key] = {k: None if v is None else vars(v) for k, v in r.items()}
        results[key]["ms"] = {k: 1e3 * t.median(k) for k in t.times}
        rows.append([d, b, f"{1e3 * t.median('ours.lp'):.2f}"] + [fmt(v) for v in r.values()])
    title = "DEFAULT models, not matched: zuko MAF(D) (3 transforms, (64, 64), ReLU) time /"
    title += " ours MADE(D) (1 MADE, H=64, 2 residual blocks, ELU)"
    head = ["D", "B", "ours lp ms", "log_prob", "score", "training step"]
    print(table(title, head, rows), flush=True)
