"""Core benchmark: the cost of the distribution wrapper, scores, throughput and sampling.

Every figure is a *paired ratio* of functions timed side by side, in interleaved rounds, in one
process (see ``_timing.py``); absolute times are printed only for orientation. The three models
are matched layer for layer at each hidden size H (family ``"gaussian"``, ELU):

* ours: ``MADE(D, hidden_features=H, num_blocks=2)`` (the default) -- our masked MLP
  (``ncmle_prob.models.masked``): initial masked layer plus σ's embedding (once), two
  two-layer residual blocks, output layer;
* zuko: ``MAF(D, transforms=1, hidden_features=(H, H), residual=True, activation=nn.ELU)``
  (initial masked layer, two two-layer residual blocks, output layer; no context);
* nflows: ``MaskedAutoregressiveFlow(D, H, num_layers=1, num_blocks_per_layer=2,
  activation=F.elu)`` (nflows' residual MADE, without context).

All three have 6 masked linear layers. The ``depth`` section (``_depth.py``) adds 3-layer
models (ours ``num_blocks=1, residual=False``; zuko ``(H, H)`` without residual blocks; nflows
one feed-forward block), a plain 6-layer zuko ``(H,) * 5``, and ours with and without the
linear skip. The ``train`` and ``defaults`` sections (``_train_step.py``) time a training step
against the previous (nflows-based) MADE, given with ``--old-made`` as a copy of its source
(``git show <commit>:ncmle_prob/models/made.py > old_made.py``), and the default models of
ours and zuko.

Run ``python benchmarks/bench_core.py`` (a few minutes on one core) or ``--quick`` (seconds,
a smoke test of the script, not a measurement). zuko is optional (``pip install zuko``); its
columns read ``n/a`` without it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _depth import section_depth
from _memory import peak_growth, run_children
from _report import Verdicts, fmt, inverse, ratio, table
from _report import check as _check
from _timing import interleaved
from _train_step import load_old_made, section_defaults, section_train

from ncmle_prob.models import MADE

SECTIONS = ("logprob", "depth", "sample", "memory", "train", "defaults")
GOALS = {
    "lp_over_net": 1.3,
    "score_over_lp": 2.0,
    "throughput": 1.0,
    "zuko_d64": 1.2,
    "sample_over_fwd": 1.1,
}


@dataclass(frozen=True)
class Config:
    """Sizes of one run (``--quick`` uses tiny ones)."""

    logprob: tuple[tuple[int, int, int], ...]  # (D, H, batch)
    sample: tuple[tuple[int, int, int], ...]  # (D, H, num_samples)
    memory: tuple[int, int, int]  # (D, H, num_samples)
    train: tuple[tuple[int, int, int], ...]  # (D, H, batch)
    defaults: tuple[tuple[int, int], ...]  # (D, batch)
    repeats: int
    sample_repeats: int
    min_time: float


FULL = Config(
    logprob=tuple(
        (d, h, b)
        for d, hs in ((64, (64, 256)), (784, (256, 1024)))
        for h in hs
        for b in (256, 1024)
    ),
    sample=((64, 256, 64), (784, 256, 16)),
    memory=(784, 256, 16),
    train=((784, 256, 256), (784, 1024, 256)),
    defaults=((64, 256), (784, 256)),
    repeats=7,
    sample_repeats=5,
    min_time=0.05,
)
QUICK = Config(
    logprob=((8, 16, 32),),
    sample=((8, 16, 4),),
    memory=(8, 16, 4),
    train=((8, 16, 32),),
    defaults=((8, 32),),
    repeats=3,
    sample_repeats=3,
    min_time=0.002,
)


# ---------------------------------------------------------------------- models
def _zuko() -> object | None:
    try:
        import zuko
    except ImportError:
        return None
    return zuko


def build(lib: str, d: int, h: int) -> nn.Module | None:
    """The model of library ``lib`` ("ours", "zuko", "nflows") at D = d, hidden size h."""
    torch.manual_seed(0)
    if lib == "ours":
        return MADE(d, hidden_features=h, num_blocks=2, family="gaussian", activation="elu")
    if lib == "zuko":
        zuko = _zuko()
        if zuko is None:
            return None
        return zuko.flows.MAF(
            d, transforms=1, hidden_features=(h, h), residual=True, activation=nn.ELU
        )
    if lib == "nflows":
        from nflows.flows.autoregressive import MaskedAutoregressiveFlow

        return MaskedAutoregressiveFlow(
            d, h, num_layers=1, num_blocks_per_layer=2, activation=F.elu
        )
    raise ValueError(f"lib must be 'ours', 'zuko' or 'nflows', got {lib!r}")


def network(lib: str, model: nn.Module, batch: int) -> Callable[[Tensor], Tensor]:
    """The bare masked network of a model: one forward pass, no distribution wrapper."""
    if lib == "ours":
        s = torch.full((batch,), 0.5)
        return lambda x: model.conditional_params(x, s)
    if lib == "zuko":
        return model.transform.transforms[0].hyper
    return model._transform._transforms[1].autoregressive_net


def _grad_of(f: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    xg = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(f(xg).sum(), xg)
    return g


#: ``--old-embedding``: the ``NoiseEmbedding`` class of a copy of an earlier embedding.py.
OLD_EMBEDDING: list[type[nn.Module]] = []


def build_before(old: type[nn.Module], d: int, h: int) -> nn.Module:
    """The previous MADE (``--old-made``) matched to ``build("ours", d, h)``.

    The copy of the old ``made.py`` imports today's ``masked.py`` and ``embedding.py``: its
    hidden layers' block split (:func:`ncmle_prob.models.masked.block_split`, newer than the
    old file) is switched off, and with ``--old-embedding`` its σ embedding is the old one, so
    that the model computes as the old code did.
    """
    torch.manual_seed(0)
    model = old(d, hidden_features=h, num_blocks=2, family="gaussian", activation="elu")
    if hasattr(model.net, "split"):
        model.net.split = None
    if OLD_EMBEDDING:
        emb = model.embedding
        model.embedding = OLD_EMBEDDING[0](emb.num_features, emb.sigma_floor, emb.sigma_max)
    return model


def _load_class(path: Path, module: str, name: str) -> type[nn.Module]:
    """Class ``name`` of a copy of an earlier file of :mod:`ncmle_prob.models`."""
    import importlib.util

    if not path.is_file():
        raise SystemExit(f"no such file {path}")
    spec = importlib.util.spec_from_file_location(f"ncmle_prob.models.{module}", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, name)


def logprob_fns(
    d: int, h: int, b: int, old: type[nn.Module] | None = None
) -> dict[str, Callable[[], object]]:
    """Zero-argument closures timed against each other at one size (autograd on); with
    ``old`` (the ``--old-made`` class) also the previous MADE's ``log_prob`` ("before.lp")."""
    x = torch.randn(b, d)
    s = torch.full((b,), 0.5)
    fns: dict[str, Callable[[], object]] = {}
    if old is not None:
        before = build_before(old, d, h)
        fns["before.lp"] = lambda: before(s).log_prob(x)
    ours = build("ours", d, h)
    dist = ours(s)
    ctx = ours.embedding(s)
    fns["ours.lp"] = lambda: ours(s).log_prob(x)
    fns["ours.lp_bound"] = lambda: dist.log_prob(x)
    fns["ours.net"] = lambda: ours.conditional_params(x, s)
    fns["ours.raw"] = lambda: ours.net(x, ctx)
    fns["ours.score"] = lambda: dist.score(x)
    zk = build("zuko", d, h)
    if zk is not None:
        fns["zuko.lp"] = lambda: zk().log_prob(x)
        zk_net = network("zuko", zk, b)
        fns["zuko.net"] = lambda: zk_net(x)
        fns["zuko.score"] = lambda: _grad_of(lambda v: zk().log_prob(v), x)
    nf = build("nflows", d, h)
    fns["nflows.lp"] = lambda: nf.log_prob(x)
    nf_net = network("nflows", nf, b)
    fns["nflows.net"] = lambda: nf_net(x)
    fns["nflows.score"] = lambda: _grad_of(nf.log_prob, x)
    return fns


def sample_fns(lib: str, d: int, h: int, n: int) -> dict[str, Callable[[], object]] | None:
    """Sampling ``n`` draws vs one no-grad network forward at batch ``n``."""
    model = build(lib, d, h)
    if model is None:
        return None
    net = network(lib, model, n)
    x = torch.randn(n, d)

    def forward() -> Tensor:
        with torch.no_grad():
            return net(x)

    if lib == "ours":
        dist = model(0.5)
        draw: Callable[[], object] = lambda: dist.sample((n,))  # noqa: E731
    elif lib == "zuko":
        draw = lambda: model().sample((n,))  # noqa: E731
    else:
        draw = lambda: model.sample(n)  # noqa: E731  (autograd on: nflows' own behaviour)
    return {f"{lib}.sample": draw, f"{lib}.fwd": forward}


# ---------------------------------------------------------------------- memory
def memory_child(lib: str, d: int, h: int, n: int) -> dict[str, float]:
    """Runs in a fresh process: the peak resident memory (MiB) one sampling call adds.

    After building the model and a no-grad warm-up draw of one sample (lazy initialisation,
    no graph kept alive), :func:`_memory.peak_growth` measures the draw of ``n`` samples.
    """
    torch.set_num_threads(1)
    model = build(lib, d, h)
    if model is None:
        return {}
    if lib == "ours":
        dist = model(0.5)
        draw: Callable[[int], object] = lambda k: dist.sample((k,))  # noqa: E731
    elif lib == "zuko":
        draw = lambda k: model().sample((k,))  # noqa: E731
    else:
        draw = lambda k: model.sample(k)  # noqa: E731
    with torch.no_grad():
        draw(1)
    kept: list[object] = []
    out = peak_growth(lambda: kept.append(draw(n)))
    out["graph"] = float(isinstance(kept[0], Tensor) and kept[0].requires_grad)
    return out


def measure_memory(libs: list[str], d: int, h: int, n: int) -> dict[str, dict[str, float]]:
    """:func:`memory_child` for each lib, each in its own fresh subprocess."""
    me = str(Path(__file__).resolve())
    args = ["--memory-child", "LIB", str(d), str(h), str(n)]
    cmds = {lib: [sys.executable, me] + [lib if a == "LIB" else a for a in args] for lib in libs}
    return run_children(cmds)


# ---------------------------------------------------------------------- report
def section_logprob(
    cfg: Config,
    results: dict[str, object],
    verdicts: Verdicts,
    old: type[nn.Module] | None = None,
) -> None:
    """log_prob vs the bare networks, score vs log_prob, and throughput vs zuko/nflows; with
    ``old`` also zuko's throughput over the previous MADE's and the previous over ours."""
    rows, srows, brows = [], [], []
    for d, h, b in cfg.logprob:
        t = interleaved(logprob_fns(d, h, b, old), repeats=cfg.repeats, min_time=cfg.min_time)
        r = {
            "lp/net": ratio(t, "ours.lp", "ours.net"),
            "bound/net": ratio(t, "ours.lp_bound", "ours.net"),
            "net/raw": ratio(t, "ours.net", "ours.raw"),
            "zuko lp/net": ratio(t, "zuko.lp", "zuko.net"),
            "nflows lp/net": ratio(t, "nflows.lp", "nflows.net"),
            "thr vs zuko": inverse(ratio(t, "ours.lp", "zuko.lp")),
            "thr vs nflows": inverse(ratio(t, "ours.lp", "nflows.lp")),
            "score ours": ratio(t, "ours.score", "ours.lp_bound"),
            "score zuko": ratio(t, "zuko.score", "zuko.lp"),
            "score nflows": ratio(t, "nflows.score", "nflows.lp"),
            "score thr vs zuko": inverse(ratio(t, "ours.score", "zuko.score")),
            "score thr vs nflows": inverse(ratio(t, "ours.score", "nflows.score")),
        }
        if old is not None:
            r["zuko/before"] = inverse(ratio(t, "before.lp", "zuko.lp"))
            r["before/ours"] = ratio(t, "before.lp", "ours.lp")
            ms = f"{1e3 * t.median('ours.lp'):.2f}"
            brows.append(
                [d, h, b, ms]
                + [fmt(r[k]) for k in ("zuko/before", "thr vs zuko", "before/ours")]
            )
        key = f"D={d} H={h} B={b}"
        results[key] = {k: None if v is None else vars(v) for k, v in r.items()}
        results[key]["ms"] = {k: 1e3 * t.median(k) for k in t.times}
        cols = ("lp/net", "bound/net", "net/raw", "zuko lp/net", "nflows lp/net")
        cols += ("thr vs zuko", "thr vs nflows")
        rows.append([d, h, b, f"{1e3 * t.median('ours.net'):.2f}"] + [fmt(r[k]) for k in cols])
        scores = ("score ours", "score zuko", "score nflows", "score thr vs zuko")
        scores += ("score thr vs nflows",)
        srows.append([d, h, b] + [fmt(r[k]) for k in scores])
        med = {k: None if v is None else v.median for k, v in r.items()}
        need = GOALS["zuko_d64"] if d == 64 else GOALS["throughput"]
        lp_ok = med["lp/net"] is not None and med["lp/net"] <= GOALS["lp_over_net"]
        _check(verdicts, key, r["lp/net"], lp_ok, "model(s).log_prob / net <= 1.3")
        sc = med["score ours"]
        _check(
            verdicts,
            key,
            r["score ours"],
            sc and sc <= GOALS["score_over_lp"],
            "score / log_prob <= 2",
        )
        tn = med["thr vs nflows"]
        _check(
            verdicts,
            key,
            r["thr vs nflows"],
            tn and tn >= GOALS["throughput"],
            "throughput vs nflows >= 1.0",
        )
        for name, rule in (("thr vs zuko", "throughput"), ("score thr vs zuko", "score")):
            tz = med[name]
            _check(
                verdicts, key, r[name], None if tz is None else tz >= need,
                f"{rule} vs zuko >= {need}",
            )
    head = ["D", "H", "B", "ours net ms", "lp/net", "bound lp/net", "net/raw masked MLP"]
    head += ["zuko lp/net", "nflows lp/net", "thr vs zuko", "thr vs nflows"]
    title = "log_prob: wrapper overhead (time ratios) and throughput vs zuko/nflows"
    title += " (their time / ours; > 1 means ours is faster)"
    print(table(title, head, rows), flush=True)
    title = "score / log_prob (time ratio, same model and batch), and score throughput"
    title += " (their score time / ours)"
    head = ["D", "H", "B", "ours", "zuko", "nflows", "thr vs zuko", "thr vs nflows"]
    print(table(title, head, srows), flush=True)
    if brows:
        title = "log_prob before (--old-made) and after: zuko time / ours, before time / ours"
        head = ["D", "H", "B", "ours lp ms", "zuko/before", "zuko/after", "before/after"]
        print(table(title, head, brows), flush=True)


def section_sample(cfg: Config, results: dict[str, object], verdicts: Verdicts) -> None:
    """Ancestral sampling vs D times one no-grad network forward at the same batch."""
    rows = []
    for d, h, n in cfg.sample:
        for lib in ("ours", "zuko", "nflows"):
            fns = sample_fns(lib, d, h, n)
            if fns is None:
                rows.append([lib, d, h, n, "n/a", "n/a", "n/a"])
                continue
            once = {f"{lib}.sample": 1}
            t = interleaved(fns, repeats=cfg.sample_repeats, min_time=cfg.min_time, number=once)
            r = t.ratio(f"{lib}.sample", f"{lib}.fwd", scale_b=d)
            results[f"sample {lib} D={d} H={h} n={n}"] = vars(r)
            secs = [f"{t.median(f'{lib}.sample'):.3f}", f"{d * t.median(f'{lib}.fwd'):.3f}"]
            rows.append([lib, d, h, n, *secs, fmt(r)])
            if lib == "ours":
                ok = r.median <= GOALS["sample_over_fwd"]
                _check(verdicts, f"D={d} H={h} n={n}", r, ok, "sample / (D x fwd) <= 1.1")
    title = "ancestral sampling vs D x one no-grad network forward at the same batch"
    head = ["lib", "D", "H", "n", "sample s", "D x fwd s", "ratio"]
    print(table(title, head, rows), flush=True)


def section_memory(cfg: Config, results: dict[str, object]) -> None:
    """Peak memory of one sampling call, each library in a fresh subprocess."""
    d, h, n = cfg.memory
    rows = []
    for lib, m in measure_memory(["ours", "zuko", "nflows"], d, h, n).items():
        results[f"memory {lib} D={d} H={h} n={n}"] = m
        if not m:
            rows.append([lib, d, h, n, "n/a", "n/a", "n/a"])
            continue
        graph = "yes" if m["graph"] else "no"
        rows.append([lib, d, h, n, graph, f"{m['baseline_mib']:.0f}", f"{m['peak_delta_mib']:.1f}"])
    title = "peak memory of one sampling call (fresh subprocess, peak RSS growth, VmHWM)"
    head = ["lib", "D", "H", "n", "result keeps autograd graph", "baseline MiB", "peak growth MiB"]
    print(table(title, head, rows), flush=True)


def _write_json(path: Path, data: dict[str, object]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test in seconds")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--repeats", type=int, default=None, help="interleaved rounds per size")
    p.add_argument(
        "--sections",
        default="logprob,depth,sample,memory,train,defaults",
        help="comma-separated subset of " + ",".join(SECTIONS),
    )
    p.add_argument(
        "--old-made",
        type=Path,
        default=None,
        help="a copy of the previous made.py (git show main:ncmle_prob/models/made.py): the "
        "logprob section then adds its log_prob (before/after) and the train section times "
        "its training step against ours",
    )
    p.add_argument(
        "--old-embedding",
        type=Path,
        default=None,
        help="with --old-made: a copy of the previous embedding.py, used by the previous MADE",
    )
    p.add_argument("--json", type=Path, default=None, help="also write raw figures here")
    p.add_argument(
        "--memory-child", nargs=4, metavar=("LIB", "D", "H", "N"), help=argparse.SUPPRESS
    )
    args = p.parse_args(argv)
    if args.memory_child:
        lib, d, h, n = args.memory_child
        print(json.dumps(memory_child(lib, int(d), int(h), int(n))))
        return 0
    if args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    sections = set(args.sections.split(","))
    if not sections <= set(SECTIONS):
        p.error(f"--sections must be a subset of {','.join(SECTIONS)}, got {args.sections!r}")
    cfg = QUICK if args.quick else FULL
    if args.repeats is not None:
        cfg = Config(
            cfg.logprob, cfg.sample, cfg.memory, cfg.train, cfg.defaults, args.repeats,
            args.repeats, cfg.min_time,
        )
    torch.set_num_threads(args.threads)
    zuko = _zuko()
    from importlib.metadata import version

    clock = "process CPU time" if args.threads == 1 else "process CPU time (summed over threads)"
    print(
        f"# bench_core{' --quick (tiny sizes: not a measurement)' if args.quick else ''}\n"
        f"torch {torch.__version__}, nflows {version('nflows')}, "
        f"zuko {getattr(zuko, '__version__', 'not installed')}, python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, torch threads "
        f"{torch.get_num_threads()}, clock: {clock}, autograd on except sampling.\n"
        f"Ratios: median of {cfg.repeats} interleaved paired rounds [interquartile range]."
    )
    results: dict[str, object] = {"threads": args.threads, "quick": args.quick}
    verdicts: Verdicts = []
    old = load_old_made(args.old_made) if args.old_made is not None else None
    if args.old_embedding is not None:
        OLD_EMBEDDING.append(_load_class(args.old_embedding, "_bench_old_embedding",
                                         "NoiseEmbedding"))
    if "logprob" in sections:
        section_logprob(cfg, results, verdicts, old)
    if "depth" in sections:
        section_depth(cfg.logprob, cfg.repeats, cfg.min_time, results, verdicts)
    if "sample" in sections:
        section_sample(cfg, results, verdicts)
    if "memory" in sections:
        section_memory(cfg, results)
    if "train" in sections:
        section_train(cfg.train, cfg.repeats, cfg.min_time, old, results, verdicts)
    if "defaults" in sections:
        section_defaults(cfg.defaults, cfg.repeats, cfg.min_time, results)
    print(
        "\n## goals"
        + (" (--quick: tiny sizes, verdicts not meaningful)" if args.quick else "")
        + "\n"
    )
    print("\n".join(verdicts) if verdicts else "(no goal-bearing section run)")
    if args.json is not None:
        _write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
