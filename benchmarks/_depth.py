"""Throughput at matched depth: ours with and without the linear skip vs zuko and nflows.

Every model here has the same number of masked linear layers (counted, not assumed, and
printed in the ``layers`` column), family ``"gaussian"``, ELU, hidden width H:

* depth 3: ours ``MADE(D, H, num_blocks=1, residual=False)``; zuko
  ``MAF(D, transforms=1, hidden_features=(H, H))``; nflows
  ``MaskedAutoregressiveFlow(D, H, num_layers=1, num_blocks_per_layer=1,
  use_residual_blocks=False)``.
* depth 6: ours ``MADE(D, H, num_blocks=2, residual=True)`` (the default); zuko
  ``MAF(D, transforms=1, hidden_features=(H, H), residual=True)`` (initial layer, two
  two-layer residual blocks, output layer) and "zuko plain" ``hidden_features=(H,) * 5``;
  nflows ``num_blocks_per_layer=2`` (residual, its default).

nflows' MADE has 2 + ``num_blocks`` masked layers with feed-forward blocks and
2 + 2 ``num_blocks`` with residual blocks (initial layer, blocks, output layer); zuko's
``MaskedMLP`` has ``len(hidden_features) + 1``, or with ``residual=True`` an initial layer,
one two-layer residual block per hidden entry and the output layer. Ours adds, beyond the
layers counted, the σ embedding's one context layer (into the first hidden layer) and, with
``linear_skip=True``, a D × D masked matrix into the location parameters.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from _report import Verdicts, fmt, inverse, ratio, table
from _timing import interleaved
from torch import Tensor, nn

from ncmle_prob.models import MADE

__all__ = ["DEPTHS", "build_depth", "masked_layers", "section_depth"]

#: depth -> (ours' MADE kwargs, nflows' MaskedAutoregressiveFlow kwargs)
DEPTHS: dict[int, tuple[dict[str, object], dict[str, object]]] = {
    3: (
        {"num_blocks": 1, "residual": False},
        {"num_blocks_per_layer": 1, "use_residual_blocks": False},
    ),
    6: (
        {"num_blocks": 2, "residual": True},
        {"num_blocks_per_layer": 2, "use_residual_blocks": True},
    ),
}


def build_depth(lib: str, d: int, h: int, depth: int) -> nn.Module | None:
    """``lib`` in "ours+skip", "ours", "zuko", "zuko plain", "nflows"; ``None`` if absent."""
    torch.manual_seed(0)
    ours_kw, nflows_kw = DEPTHS[depth]
    if lib in ("ours", "ours+skip"):
        return MADE(
            d, h, family="gaussian", activation="elu", linear_skip=lib == "ours+skip", **ours_kw
        )  # type: ignore[arg-type]
    if lib == "nflows":
        from nflows.flows.autoregressive import MaskedAutoregressiveFlow

        return MaskedAutoregressiveFlow(d, h, num_layers=1, activation=F.elu, **nflows_kw)
    try:
        import zuko
    except ImportError:
        return None
    if lib == "zuko":
        hidden, residual = (h, h), depth == 6
    elif lib == "zuko plain" and depth > 3:
        hidden, residual = (h,) * (depth - 1), False
    else:
        return None
    return zuko.flows.MAF(
        d, transforms=1, hidden_features=hidden, residual=residual, activation=nn.ELU
    )


def masked_layers(lib: str, model: nn.Module) -> int:
    """Number of masked linear layers of the autoregressive network (skip not counted)."""
    if lib.startswith("ours"):
        net = model.net
    elif lib.startswith("zuko"):
        net = model.transform.transforms[0].hyper
    else:
        net = model._transform._transforms[1].autoregressive_net
    return sum(type(m).__name__ == "MaskedLinear" for m in net.modules())


def _log_prob(lib: str, model: nn.Module, x: Tensor, s: Tensor) -> Callable[[], Tensor]:
    """``log_prob(x)`` as each library computes it (ours builds the distribution per call)."""
    if lib.startswith("ours"):
        return lambda: model(s).log_prob(x)
    if lib.startswith("zuko"):
        return lambda: model().log_prob(x)
    return lambda: model.log_prob(x)


LIBS = ("ours+skip", "ours", "zuko", "zuko plain", "nflows")


def section_depth(
    sizes: tuple[tuple[int, int, int], ...],
    repeats: int,
    min_time: float,
    results: dict[str, object],
    verdicts: Verdicts,
) -> None:
    """log_prob throughput at matched depth; prints a table and summarises the goals."""
    rows = []
    tally: dict[str, tuple[list[str], list[str]]] = {}
    for depth in DEPTHS:
        for d, h, b in sizes:
            x = torch.randn(b, d)
            s = torch.full((b,), 0.5)
            fns, layers = {}, []
            for lib in LIBS:
                m = build_depth(lib, d, h, depth)
                layers.append("-" if m is None else str(masked_layers(lib, m)))
                if m is not None:
                    fns[lib] = _log_prob(lib, m, x, s)
            t = interleaved(fns, repeats=repeats, min_time=min_time)
            r = {"skip cost": ratio(t, "ours+skip", "ours")}
            for other in ("zuko", "zuko plain", "nflows"):
                for mine in ("ours+skip", "ours"):
                    r[f"{other}/{mine}"] = inverse(ratio(t, mine, other))
            key = f"depth={depth} D={d} H={h} B={b}"
            results[key] = {k: None if v is None else vars(v) for k, v in r.items()}
            results[key]["ms"] = {k: 1e3 * t.median(k) for k in t.times}
            results[key]["layers"] = dict(zip(LIBS[1:], layers[1:]))
            rows.append(
                [depth, d, h, b, "/".join(layers[1:]), f"{1e3 * t.median('ours'):.2f}"]
                + [fmt(v) for v in r.values()]
            )
            need = 1.2 if d == 64 else 1.0
            for other, goal in (("zuko", need), ("zuko plain", need), ("nflows", 1.0)):
                for mine in ("ours+skip", "ours"):
                    v = r[f"{other}/{mine}"]
                    if v is not None:
                        seen, misses = tally.setdefault(
                            f"depth {depth}, {mine} vs {other}", ([], [])
                        )
                        seen.append(key)
                        if v.median < goal:
                            misses.append(f"D={d} H={h} B={b} {v.median:.2f}x")
    head = ["depth", "D", "H", "B", "layers ours/zuko/zuko plain/nflows", "ours ms (no skip)"]
    head += ["skip cost"] + [
        f"{o}/{m}" for o in ("zuko", "zuko plain", "nflows") for m in ("ours+skip", "ours")
    ]
    title = "log_prob throughput at matched depth (their time / ours; > 1 means ours is faster;"
    title += " skip cost = ours+skip time / ours time)"
    print(table(title, head, rows), flush=True)
    for name, (seen, misses) in tally.items():
        goal = "1.0" if name.endswith("nflows") else "1.2 at D=64, 1.0 at D=784"
        state = "met   " if not misses else "MISSED"
        where = "" if not misses else "; missed at " + ", ".join(misses)
        n = len(seen)
        verdicts.append(
            f"{state} {name}: throughput >= {goal} at {n - len(misses)}/{n} sizes{where}"
        )
