"""What the image study runs: the training runs, the sampler families and the set sizes.

Everything a stage needs to know about the study is here, so the stages only differ in what
they compute. The sizes follow the issue: settings are *selected* on at least 1000 validation
samples (MNIST 14×14) and *tested* once on 2000, against test images the selection never saw.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FAMILIES", "STUDIES", "Run", "Setting", "Study", "settings"]


@dataclass(frozen=True)
class Run:
    """One ``ncmle train`` run: an objective and a training seed."""

    objective: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.objective}-s{self.seed}"


@dataclass(frozen=True)
class Setting:
    """A sampler setting: a family (what the issue names), a registered sampler and options."""

    family: str
    method: str
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in self.options)
        return f"{self.method}({opts})" if opts else self.method

    def kwargs(self) -> dict[str, Any]:
        return dict(self.options)


def _grid(family: str, method: str, **axes: list[Any]) -> list[Setting]:
    keys = list(axes)
    return [Setting(family, method, tuple(zip(keys, values)))
            for values in itertools.product(*(axes[k] for k in keys))]


SIGMA_STARTS = [0.2, 0.3, 0.5]

#: family -> its settings; the issue's grid (selection keeps the best of each family)
FAMILIES: dict[str, list[Setting]] = {
    "ancestral": [Setting("ancestral", "ancestral")],
    # noisy ancestral at σ_start and one Tweedie step (TarFlow)
    "noisy+tweedie": _grid("noisy+tweedie", "self_denoising", sigma_start=SIGMA_STARTS,
                           steps=[1]),
    # noisy ancestral and K self-denoising steps, no corrector (iTARFlow)
    "self-denoising": _grid("self-denoising", "self_denoising", sigma_start=SIGMA_STARTS,
                            steps=[3, 10, 30]),
    "score-corrected langevin": _grid(
        "score-corrected langevin", "score_corrected_ancestral", sigma_start=SIGMA_STARTS,
        steps_per_level=[3, 10, 30, 100], corrector=["langevin"]),
    "score-corrected mala": _grid(
        "score-corrected mala", "score_corrected_ancestral", sigma_start=SIGMA_STARTS,
        steps_per_level=[3, 10, 30, 100], corrector=["mala"]),
}

QUICK_FAMILIES: dict[str, list[Setting]] = {
    "ancestral": [Setting("ancestral", "ancestral")],
    "noisy+tweedie": [Setting("noisy+tweedie", "self_denoising",
                              (("sigma_start", 0.3), ("steps", 1)))],
    "self-denoising": [Setting("self-denoising", "self_denoising",
                               (("sigma_start", 0.3), ("steps", 3)))],
    "score-corrected mala": _grid("score-corrected mala", "score_corrected_ancestral",
                                  sigma_start=[0.3], steps_per_level=[2, 3], corrector=["mala"],
                                  num_levels=[3], grid_steps=[10]),
}


@dataclass(frozen=True)
class Study:
    """The runs and set sizes of one data set."""

    data: str
    runs: tuple[Run, ...]
    train_options: tuple[str, ...]
    select_samples: int  # samples per setting, scored against the validation images
    test_samples: int  # samples per kept setting and seed, against the test images
    test_reference: int  # test images [0, test_reference) are the metrics' real set
    control_starts: int  # test images [test_reference, + control_starts) start controls (a)
    sigmas: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
    families: dict[str, list[Setting]] = field(default_factory=lambda: FAMILIES)
    repeats: int = 3  # resplits of the floor

    def run_dir(self, root: Path, run: Run) -> Path:
        return root / f"{self.data}-made-{run.objective}-s{run.seed}"

    def command(self, root: Path, run: Run) -> list[str]:
        """The ``ncmle train`` command of a run (resumable)."""
        return ["ncmle", "train", "--data", self.data, "--model", "made",
                "--objective", run.objective, "--seed", str(run.seed), *self.train_options,
                "--out", str(self.run_dir(root, run)), "--resume-or-start", "--quiet"]


def _runs(seeds: range) -> tuple[Run, ...]:
    return tuple(Run(obj, s) for s in seeds for obj in ("mle", "ncmle"))


STUDIES: dict[str, Study] = {
    "mnist14": Study(
        "mnist14", _runs(range(3)),
        ("--steps", "40000", "--eval-every", "500", "--patience", "5",
         "--validation-size", "1000", "--checkpoint-every", "500", "--test-size", "10000"),
        select_samples=1000, test_samples=2000, test_reference=8000, control_starts=2000),
    "digits": Study(
        "digits", _runs(range(3)),
        ("--steps", "40000", "--eval-every", "200", "--patience", "5",
         "--validation-size", "300", "--checkpoint-every", "200"),
        select_samples=300, test_samples=100, test_reference=259, control_starts=100),
    "quick": Study(  # the same stages on the 8x8 digits (they load in a blink) and tiny MADEs
        "digits", _runs(range(2)),
        ("--steps", "40", "--eval-every", "10", "--patience", "1", "--validation-size", "200",
         "--checkpoint-every", "20", "--hidden", "16", "--blocks", "1", "--batch-size", "32",
         "--lr", "0.02"),
        select_samples=30, test_samples=30, test_reference=150, control_starts=30,
        sigmas=(0.0, 0.1), families=QUICK_FAMILIES, repeats=2),
}


def settings(study: Study) -> list[Setting]:
    """Every setting of every family, in order."""
    return [s for family in study.families.values() for s in family]
