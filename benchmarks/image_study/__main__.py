"""``python -m benchmarks.image_study [--data mnist14|digits] [--quick] STAGE ...``.

Stages run in the order given (default: all of them); see the package docstring.

Examples::

    python -m benchmarks.image_study --data mnist14 train        # hours of CPU, resumable
    python -m benchmarks.image_study --data mnist14 likelihood select test report
    python -m benchmarks.image_study --quick                      # every stage, ~1 minute
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .plan import STUDIES, Study

STAGES = ("train", "likelihood", "select", "test", "grids", "report")


def train(study: Study, root: Path) -> None:
    """Runs ``ncmle train`` for every run of the study that has not stopped yet."""
    for run in study.runs:
        folder = study.run_dir(root, run)
        if (folder / "DONE").exists():
            continue
        cmd = study.command(root, run)
        print("$ " + " ".join(cmd), flush=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ncmle_prob.cli", *cmd[1:]], check=True)
        folder.mkdir(exist_ok=True)
        (folder / "DONE").write_text(f"{time.perf_counter() - t0:.1f} s\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.image_study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stages", nargs="*", metavar="STAGE",
                   help=f"any of {', '.join(STAGES)} (default: all)")
    p.add_argument("--data", choices=["mnist14", "digits"], default="mnist14")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run of every stage on tiny models in a temporary folder")
    p.add_argument("--runs", type=Path, default=None,
                   help="folder of the training runs (default: runs/image_study)")
    p.add_argument("--results", type=Path, default=None,
                   help="folder of the JSON, tables and figures "
                        "(default: benchmarks/results/image_study/DATA)")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="select: score only every N-th setting from the I-th (0-based), for "
                        "several processes at once; a later select without it merges them")
    p.add_argument("--seeds", default=None, metavar="S,S",
                   help="test: only these training seeds, into test-sS.json (several processes "
                        "at once; the report merges them)")
    args = p.parse_args(argv)
    shard = None
    if args.shard is not None:
        i, _, n = args.shard.partition("/")
        if not (i.isdigit() and n.isdigit() and int(i) < int(n)):
            p.error(f"--shard {args.shard!r}: expected I/N with 0 <= I < N, e.g. 1/2")
        shard = (int(i), int(n))
    seeds = None
    if args.seeds is not None:
        parts = args.seeds.split(",")
        if not all(x.strip().isdigit() for x in parts):
            p.error(f"--seeds {args.seeds!r}: expected training seeds as non-negative integers "
                    "separated by commas, e.g. 0,2")
        seeds = [int(x) for x in parts]
    unknown = [s for s in args.stages if s not in STAGES]
    if unknown:
        p.error(f"unknown stage {unknown[0]!r}: choose from {', '.join(STAGES)}")
    study = STUDIES["quick" if args.quick else args.data]
    tmp = tempfile.mkdtemp(prefix="image_study_") if args.quick else None
    root = args.runs or (Path(tmp) / "runs" if tmp else Path("runs/image_study"))
    out = args.results or (Path(tmp) / "results" if tmp else
                           Path("benchmarks/results/image_study") / study.data)
    from . import likelihood, report, sampling

    for stage in args.stages or STAGES:
        t0 = time.perf_counter()
        print(f"== {stage}", flush=True)
        if stage == "train":
            train(study, root)
        elif stage == "likelihood":
            likelihood.likelihood(study, root, out)
        elif stage == "select":
            sampling.select(study, root, out, shard)
        elif stage == "test":
            sampling.test(study, root, out, seeds)
        elif stage == "grids":
            sampling.grids(study, root, out)
        else:
            print(report.report(study, out))
        print(f"== {stage}: {time.perf_counter() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
