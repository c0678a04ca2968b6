"""Reproduces the pretrained zoo: ncmle_prob/pretrained/zoo/<name>/{model.pt,card.json}.

Usage::

    # from scratch: train every model to early stopping (the exact commands of RECIPES), then
    # write every weight file, card, sample grid and the docs table
    python scripts/build_zoo.py --train --runs zoo-runs

    # from finished runs (folders holding best.pt, last.pt and DONE), one model or all
    python scripts/build_zoo.py --runs /work/zoo-runs --runs /work/runs
    python scripts/build_zoo.py --runs /work/runs --only mnist14-pixelcnnpp-ncmle

    # only the docs table, from the shipped cards
    python scripts/build_zoo.py --docs-only

For each model whose run has stopped early (a run that hit its step budget is refused: the zoo
ships early-stopped models only), the script

1. takes the best validation step's weights (``best.pt``) without the optimiser;
2. writes them in float32 and float16 and measures test bits/dim of both at
   σ ∈ {0, 0.05, 0.1, 0.2, 0.5} on the whole test split with ``ncmle evaluate`` (same noise for
   both); float16 is shipped only where every σ changes by less than ``--fp16-tolerance``
   (0.001 bits/dim);
3. runs ``ncmle evaluate`` on the shipped file: test bits/dim, and FCD/KID/precision/recall of
   ``--metric-samples`` samples of the recommended sampler and of ancestral beside the
   real-vs-real floor at the same set sizes, with samples/s (one thread: ``OMP_NUM_THREADS=1``);
4. runs it again on the first ``--check-size`` test images (the value the test suite
   reproduces, tests/test_pretrained.py);
5. writes the card (JSON) with the SHA-256 of the weights, a sample grid
   docs/guides/pretrained_figures/<name>.png with ``ncmle sample``, and the cards' table in
   docs/guides/pretrained.rst.

Every number in a card comes from a command printed as it runs; nothing is typed in.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ncmle_prob import __version__
from ncmle_prob.pretrained import CARD_FILE, TASKS, WEIGHTS_FILE, ZOO
from ncmle_prob.training import History, load_checkpoint, save_checkpoint
from ncmle_prob.training.checkpoint import build_model

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "guides" / "pretrained.rst"
FIGURES = ROOT / "docs" / "guides" / "pretrained_figures"
SIGMAS = (0.0, 0.05, 0.1, 0.2, 0.5)
CHECK_SIGMAS = (0.0, 0.1)
TABLE_START = ".. zoo-table-start"
TABLE_END = ".. zoo-table-end"


@dataclass(frozen=True)
class Recipe:
    """How a model of the zoo is trained: its run folder's name and the exact command
    (``{out}``: the run folder). ``command=None``: read it from the run's log (RUN.log beside
    the folder, the first line holding ``ncmle train``)."""

    run: str
    command: str | None
    summary: str


_MNIST14 = ("ncmle train --data mnist14 --model made --objective {obj} --seed 0 --steps 40000 "
            "--eval-every 500 --patience 5 --validation-size 1000 --checkpoint-every 500 "
            "--test-size 10000 --out {out} --resume-or-start --quiet")
_DIGITS = ("ncmle train --data digits --model made --objective {obj} --seed 0 --steps 20000 "
           "--eval-every 100 --patience 5 --checkpoint-every 500 --out {out} --quiet")

RECIPES: dict[str, Recipe] = {
    "digits-made-mle": Recipe("digits-made-mle-s0", _DIGITS.replace("{obj}", "mle"),
                              "MADE on 8x8 digits, plain MLE (sigma = 0 only)"),
    "digits-made-ncmle": Recipe("digits-made-ncmle-s0", _DIGITS.replace("{obj}", "ncmle"),
                                "MADE on 8x8 digits, NCMLE (every sigma in [0, 0.5])"),
    "mnist14-made-mle": Recipe("mnist14-made-mle-s0", _MNIST14.replace("{obj}", "mle"),
                               "MADE on 14x14 MNIST, plain MLE (sigma = 0 only)"),
    "mnist14-made-ncmle": Recipe("mnist14-made-ncmle-s0", _MNIST14.replace("{obj}", "ncmle"),
                                 "MADE on 14x14 MNIST, NCMLE (every sigma in [0, 0.5])"),
    "mnist14-pixelcnnpp-ncmle": Recipe(
        "mnist14-pcnn-ncmle-s0",
        "ncmle train --data mnist14 --model pixelcnnpp --filters 32 --resnets 1 --ema 0.999 "
        "--checkpoint-every 250 --objective ncmle --seed 0 --steps 200000 --eval-every 500 "
        "--patience 5 --validation-size 1000 --test-size 10000 --out {out} --resume-or-start "
        "--quiet",
        "small PixelCNN++ (32 filters, 1 resnet per stage) on 14x14 MNIST, NCMLE"),
}


def say(*args: Any) -> None:
    print("[build_zoo]", *args, flush=True)


class CommandError(RuntimeError):
    """An ``ncmle`` command exited non-zero; the message is its last stderr line."""


def ncmle(*argv: str) -> None:
    """Runs the ``ncmle`` command of this checkout (one thread, printed as it runs)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    say("$ ncmle " + shlex.join(argv))
    proc = subprocess.run([sys.executable, "-m", "ncmle_prob.cli", *argv], env=env,
                          stderr=subprocess.PIPE, text=True)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise CommandError(lines[-1] if lines else f"exit status {proc.returncode}")


def find_run(recipe: Recipe, runs: list[Path]) -> Path | None:
    for folder in runs:
        if (folder / recipe.run).is_dir():
            return folder / recipe.run
    return None


def command_of(recipe: Recipe, run: Path) -> str:
    if recipe.command is not None:
        return recipe.command.replace("{out}", str(run))
    log = run.parent / f"{run.name}.log"
    if log.is_file():
        for line in log.read_text(errors="replace").splitlines():
            if "ncmle train" in line:
                return line[line.index("ncmle train"):].strip()
    raise SystemExit(f"{recipe.run}: the recipe has no command and {log} names none; put the "
                     "training command in that log's first line")


def train(name: str, recipe: Recipe, runs: Path) -> None:
    out = runs / recipe.run
    if (out / "DONE").is_file():
        return
    if recipe.command is None:
        raise SystemExit(f"{name}: no training command in RECIPES; train it yourself")
    argv = shlex.split(recipe.command.replace("{out}", str(out)))
    assert argv[0] == "ncmle"
    runs.mkdir(parents=True, exist_ok=True)
    ncmle(*argv[1:])
    (out / "DONE").touch()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_weights(best: Path, path: Path, half: bool) -> None:
    """The best step's weights (EMA if any) as a weights-only checkpoint, float32 or float16."""
    ck = load_checkpoint(best)
    model = build_model(ck.model_class, ck.model_config)  # type: ignore[arg-type]
    model.load_state_dict(ck.ema if ck.ema is not None else ck.model)
    if half:
        model.half()
    config = {k: v for k, v in ck.train_config.items() if k not in ("checkpoint_dir", "meta")}
    meta = {**ck.meta, "data_dir": None}
    save_checkpoint(path, model, step=ck.step, train_config=config, meta=meta)


def evaluate(files: list[Path], labels: list[str], tmp: Path, *extra: str) -> dict[str, Any]:
    out = tmp / "eval.json"
    ncmle("evaluate", *map(str, files), "--labels", ",".join(labels), "--plot", "",
          "--json", str(out), "--quiet", *extra)
    return json.loads(out.read_text())


def _key(s: float) -> str:
    return f"{s:g}"


def score_sampler() -> str:
    """The score-based sampler scored beside ancestral: self-denoising where the registry has
    it, else score-corrected ancestral (the paper's scheme)."""
    from ncmle_prob import samplers

    return "self_denoising" if "self_denoising" in samplers.available() else (
        "score_corrected_ancestral")


def recommended_sampler(objective: str, metrics: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """``(sampler, why)``: ancestral for an MLE model (it has no trained σ > 0, and ancestral
    draws are exact for it); for an NCMLE model the scored sampler with the lowest FCD."""
    if objective == "mle" or not metrics:
        return "ancestral", ("MLE trains sigma = 0 only, and ancestral draws are exact for the "
                             "model; score-based samplers use untrained noise levels")
    best = min(metrics, key=lambda k: metrics[k]["fcd"])
    shown = ", ".join(f"{k} {v['fcd']:.2f}" for k, v in metrics.items())
    return best, f"lowest FCD of the samplers scored here ({shown})"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build(name: str, recipe: Recipe, run: Path, args: argparse.Namespace) -> dict[str, Any]:
    last = load_checkpoint(run / "last.pt")
    hist = History.from_json(last.history)
    if not (hist.stop_reason or "").startswith("early stopping"):
        raise SystemExit(f"{name}: {run} did not stop early ({hist.stop_reason or 'still running'}"
                         "); the zoo ships early-stopped models only")
    best = load_checkpoint(run / "best.pt")
    command = command_of(recipe, run)
    target = ZOO / name
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        f32, f16 = tmp / "f32" / WEIGHTS_FILE, tmp / "f16" / WEIGHTS_FILE
        write_weights(run / "best.pt", f32, half=False)
        write_weights(run / "best.pt", f16, half=True)
        sig = ",".join(map(_key, SIGMAS))
        both = evaluate([f32, f16], ["float32", "float16"], tmp, "--sigmas", sig,
                        "--metric-samples", "0")
        b32, b16 = both["bits_per_dim"]["float32"], both["bits_per_dim"]["float16"]
        change = {_key(float(s)): abs(b16[s] - b32[s]) for s in b32}
        use_half = max(change.values()) < args.fp16_tolerance
        chosen = f16 if use_half else f32
        say(f"{name}: float16 changes test bits/dim by at most {max(change.values()):.2e} "
            f"(tolerance {args.fp16_tolerance}): shipping {'float16' if use_half else 'float32'}")
        objective = best.meta.get("objective", "ncmle")
        scored = [score_sampler(), "ancestral"]
        failed = {}
        metric_args = ["--sigmas", sig, "--metric-samples", str(args.metric_samples),
                       "--metrics", "fcd,kid,precision,recall", "--repeats", str(args.repeats)]
        try:
            full = evaluate([chosen], [name], tmp, *metric_args, "--samplers", ",".join(scored))
        except CommandError as e:
            if objective != "mle":
                raise
            # an MLE model has no trained sigma > 0: a score-based sampler may fail on it;
            # the card says so, and scores the recommended (ancestral) sampler alone
            say(f"{name}: {scored[0]} failed ({e}); scoring ancestral only")
            failed[scored[0]] = str(e)
            full = evaluate([chosen], [name], tmp, *metric_args, "--samplers", "ancestral")
        check = evaluate([chosen], [name], tmp, "--sigmas", ",".join(map(_key, CHECK_SIGMAS)),
                         "--test-size", str(args.check_size), "--metric-samples", "0")
        data = target / WEIGHTS_FILE
        data.write_bytes(chosen.read_bytes())
    metrics = full["sample_metrics"].get(name, {})
    first = next(iter(metrics.values()), {})
    sampler, why = recommended_sampler(objective, metrics)
    prior = best.train_config.get("prior", {})
    model = build_model(best.model_class, best.model_config)  # type: ignore[arg-type]
    meta = best.meta
    shape = meta.get("image_shape")
    evals = best.train_config.get("eval_every")
    card: dict[str, Any] = {
        "name": name,
        "card_version": 1,
        "summary": recipe.summary,
        "library_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "tasks": [t for t in TASKS if t != "restore" or shape],
        "data": {
            "spec": meta.get("dataset"),
            "bins": meta.get("bins"),
            "image_shape": shape,
            "event_shape": meta.get("event_shape"),
            "splits": {
                "train": best.train_config.get("data_size"),
                "validation": meta.get("validation_size"),
                "test": full["test_images"],
                "rule": "validation: the last N examples of the data set's train split, held "
                        "out of training (early stopping watches it); test: the data set's own "
                        "test split",
            },
        },
        "objective": meta.get("objective"),
        "noise_prior": {**prior, "note": "MLE: p_zero = 1, sigma = 0 only"}
        if meta.get("objective") == "mle" else prior,
        "architecture": {
            "class": best.model_class,
            "config": best.model_config,
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        "training": {
            "command": command,
            "environment": "OMP_NUM_THREADS=1, CPU",
            "early_stopping_step": hist.best_step,
            "stopped_at_step": hist.stopped_step,
            "stop_reason": hist.stop_reason,
            "eval_every": evals,
            "patience": best.train_config.get("patience"),
            "best_validation_bits_per_dim": meta.get("best_bits_per_dim"),
            "monitored_sigma": meta.get("monitor", 0.0),
        },
        "test_bits_per_dim": {_key(float(s)): v for s, v in full["bits_per_dim"][name].items()},
        "test_examples": full["test_images"],
        "eval_seed": full["seed"],
        "samples": {
            "recommended_sampler": sampler,
            "recommended_because": why,
            "sigma": 0.0,
            "classifier": full["classifier"],
            "num_samples": first.get("num_samples"),
            "num_reference": first.get("num_reference"),
            "repeats": first.get("repeats"),
            "metrics": metrics,
            "failed": failed,
            "cpu": cpu_name(),
            "threads": 1,
            "note": "samples/s measured on a CPU shared with other jobs: a lower bound",
        },
        "weights": {
            "file": WEIGHTS_FILE,
            "bytes": data.stat().st_size,
            "sha256": sha256(data),
            "dtype": "float16" if use_half else "float32",
            "fp16_check": {
                "abs_change_bits_per_dim": change,
                "tolerance": args.fp16_tolerance,
                "float16_used": use_half,
                "float32_bits_per_dim": {_key(float(s)): v for s, v in b32.items()},
            },
        },
        "check": {
            "test_size": check["test_images"],
            "sigmas": list(CHECK_SIGMAS),
            "seed": check["seed"],
            "bits_per_dim": {_key(float(s)): v for s, v in check["bits_per_dim"][name].items()},
            "tolerance": {"abs": args.check_tolerance, "rel": 1e-5},
            "command": f"ncmle evaluate pretrained:{name} --sigmas "
                       f"{','.join(map(_key, CHECK_SIGMAS))} --test-size {args.check_size} "
                       "--metric-samples 0 --plot ''",
        },
        "reproduce": f"python scripts/build_zoo.py --runs RUNS --only {name}",
    }
    (target / CARD_FILE).write_text(json.dumps(card, indent=1, sort_keys=False) + "\n")
    say(f"wrote {target / CARD_FILE} ({card['weights']['bytes']} bytes of weights)")
    if not args.no_figures:
        FIGURES.mkdir(parents=True, exist_ok=True)
        ncmle("sample", f"pretrained:{name}", "--num", "64", "--method", sampler, "--seed", "0",
              "--out", str(FIGURES / f"{name}.png"), "--npz", "", "--quiet")
    return card


def docs_table() -> str:
    """The cards as one reStructuredText table (list-table)."""
    from ncmle_prob import pretrained

    head = ["model", "data (test images)", "objective", "bytes (dtype)", "early stop (step)",
            *[f"bits/dim σ={_key(s)}" for s in SIGMAS], "recommended sampler",
            "FCD score-based (floor)", "FCD ancestral (floor)", "samples/s score-based / anc."]
    rows = []
    for name in pretrained.available():
        c = pretrained.card(name)
        m = c["samples"]["metrics"]
        scored = [k for k in m if k != "ancestral"]
        sb, anc = (m[scored[0]] if scored else {}), m.get("ancestral", {})

        def fcd(s: dict[str, Any]) -> str:
            if "fcd" not in s:
                return "-"
            return f"{s['fcd']:.1f} ({s['fcd_floor']:.1f})"

        failed = "; ".join(f"``{k}`` failed: {v.removeprefix('ncmle: error: ')}"
                           for k, v in c["samples"].get("failed", {}).items()) or "-"
        sps = " / ".join(f"{s['samples_per_s']:.0f}" if "samples_per_s" in s else "-"
                         for s in (sb, anc))
        rows.append([
            f"``{name}``", f"{c['data']['spec']} ({c['data']['splits']['test']})",
            c["objective"].upper(), f"{c['weights']['bytes']} ({c['weights']['dtype']})",
            f"{c['training']['early_stopping_step']}",
            *[f"{c['test_bits_per_dim'][_key(s)]:.3f}" for s in SIGMAS],
            f"``{c['samples']['recommended_sampler']}``",
            (f"{fcd(sb)} ``{scored[0]}``" if scored else failed), fcd(anc), sps,
        ])
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [head, *rows]:
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {cell}" for cell in row[1:])
    for name in pretrained.available():
        c = pretrained.card(name)
        figure = FIGURES / f"{name}.png"
        if figure.is_file():
            lines += ["", f".. figure:: {FIGURES.name}/{name}.png", "   :width: 45%", "",
                      f"   ``{name}``: 64 samples at σ = 0 with "
                      f"``{c['samples']['recommended_sampler']}`` (``ncmle sample "
                      f"pretrained:{name} --method {c['samples']['recommended_sampler']} "
                      "--seed 0``)."]
    return "\n".join(lines)


def write_docs() -> None:
    text = DOCS.read_text()
    start, end = text.index(TABLE_START), text.index(TABLE_END)
    body = text[: start + len(TABLE_START)] + "\n\n" + docs_table() + "\n\n" + text[end:]
    DOCS.write_text(body)
    say(f"wrote the table of {DOCS}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", action="append", type=Path, default=[],
                   help="folder(s) holding the run folders of RECIPES (repeatable; with "
                        "--train the first is where new runs go)")
    p.add_argument("--only", action="append", choices=sorted(RECIPES), default=[],
                   help="build these models only (repeatable)")
    p.add_argument("--train", action="store_true",
                   help="first train every selected model that has no finished run")
    p.add_argument("--metric-samples", type=int, default=1000,
                   help="samples per sampler for FCD/KID/precision/recall (capped by ncmle "
                        "evaluate at half the test split)")
    p.add_argument("--repeats", type=int, default=3, help="floor splits (ncmle evaluate)")
    p.add_argument("--check-size", type=int, default=100,
                   help="test images of the card's check (reproduced by the tests)")
    p.add_argument("--check-tolerance", type=float, default=2e-4,
                   help="absolute bits/dim tolerance of the check (plus 1e-5 relative): the "
                        "float32 summation order is all that may differ")
    p.add_argument("--fp16-tolerance", type=float, default=1e-3,
                   help="ship float16 weights only if no test bits/dim changes by this much")
    p.add_argument("--no-figures", action="store_true", help="no sample grids")
    p.add_argument("--docs-only", action="store_true", help="only rewrite the docs table")
    args = p.parse_args()
    if not args.docs_only:
        runs = args.runs or [ROOT / "zoo-runs"]
        for name in args.only or list(RECIPES):
            recipe = RECIPES[name]
            if args.train:
                train(name, recipe, runs[0])
            run = find_run(recipe, runs)
            if run is None or not (run / "DONE").is_file():
                say(f"{name}: no finished run {recipe.run} (with DONE) under "
                    f"{', '.join(map(str, runs))}: skipped, not in the zoo")
                continue
            build(name, recipe, run, args)
    write_docs()


if __name__ == "__main__":
    main()
