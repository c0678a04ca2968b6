"""The demo's gallery: what the pretrained digits models do, in one titled figure, in seconds.

:func:`gallery` loads the shipped ``digits-made-ncmle`` and ``digits-made-mle``
(:mod:`ncmle_prob.pretrained`) and computes, then draws side by side:

* samples of the NCMLE model at σ = 0: ancestral, self-denoising (the ``self_denoising``
  sampler with its defaults: an ancestral draw at σ_start = 0.3, then ten probability-flow
  steps with the model's own score, snapped to the grid) and score-corrected ancestral;
* a denoising and an inpainting restoration of test images (MALA posterior means with the NCMLE
  model at σ_p = 0.1 as the prior), with their PSNR before and after;
* the robustness plot: test bits/dim against σ of the pretrained MLE and NCMLE models.

Every number drawn is returned (and printed by the demo), so the demo's verdicts on the gallery
are computed from printed numbers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["GALLERY_MODELS", "PSNR_MARGIN_DB", "gallery", "gallery_verdicts"]

#: the shipped models the gallery uses (NCMLE first)
GALLERY_MODELS = ("digits-made-ncmle", "digits-made-mle")
#: a restoration "improves" the images when its mean PSNR beats the observation's by this much
#: (1 dB: well above the spread of a mean over the gallery's images)
PSNR_MARGIN_DB = 1.0
ROBUSTNESS_SIGMAS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
PRIOR_SIGMA = 0.1


def _self_denoising(model: Any, n: int, seed: int) -> Tensor:
    import torch

    from .. import samplers

    g = torch.Generator().manual_seed(seed)
    return samplers.sample(model(), n, method="self_denoising", generator=g)


def gallery(path: str | Path, *, seed: int = 0, quick: bool = False) -> dict[str, Any]:
    """Computes and writes the gallery PNG; returns every number it shows.

    Args:
        path: figure path (``.png``; written atomically).
        seed: seed of samples, corruptions and chains.
        quick: fewer samples, images and MCMC steps (numbers not meaningful).

    Returns:
        ``{"path", "models", "seconds", "psnr": {task: {"observed", "restored"}},
        "bits_per_dim": {"MLE": {σ: v}, "NCMLE": {σ: v}}, "test_images", "samplers"}``.

    Example:
        >>> import tempfile, pathlib
        >>> from ncmle_prob.cli.gallery import gallery
        >>> out = gallery(pathlib.Path(tempfile.mkdtemp()) / "g.png", quick=True)
        >>> out["path"].is_file(), sorted(out["psnr"])
        (True, ['denoise', 'inpaint'])
    """
    import torch

    from .. import pretrained
    from ..infer.inverse import inpaint, psnr, remove_noise
    from ..training import evaluate_bits_per_dim
    from .common import load_run_data
    from .plots import _figure, _save, grid_canvas
    from .sample import draw

    start = time.perf_counter()
    ncmle, mle = (pretrained.load(name) for name in GALLERY_MODELS)
    data = load_run_data("digits")
    shape = (1, 8, 8)
    n = 8 if quick else 16
    opts: dict[str, Any] = {"steps_per_level": 2, "num_levels": 2} if quick else {}
    samples = {
        "ancestral": draw(ncmle, n, 0.0, "ancestral", {}, seed),
        "self-denoising": _self_denoising(ncmle, n, seed),
        "score-corrected": draw(ncmle, n, 0.0, "score_corrected_ancestral", opts, seed),
    }
    # restorations: the first k test images, one MALA chain each
    k = 4 if quick else 6
    steps = {"num_samples": 10 if quick else 100, "warmup_steps": 10 if quick else 200,
             "seed": seed}
    g = torch.Generator().manual_seed(seed)
    clean = data.test[:k]
    prior = ncmle(PRIOR_SIGMA)
    noisy = clean + 0.4 * torch.randn(clean.shape, generator=g)
    den = remove_noise(prior, noisy, 0.4, **steps).mean.detach()
    mask = torch.ones(8, 8, dtype=torch.bool)
    mask[5:, :] = False  # the bottom 3 rows are hidden: complete the digit from its top
    masked = torch.where(mask.reshape(-1), clean, torch.zeros_like(clean))
    inp = inpaint(prior, masked, mask.reshape(-1), 0.05, **steps).mean.detach()
    rows = {
        "denoise": (noisy, den),
        "inpaint": (masked, inp),
    }
    psnrs = {task: {"observed": float(psnr(clean, y).mean()),
                    "restored": float(psnr(clean, r).mean())} for task, (y, r) in rows.items()}
    test = data.test[: 128 if quick else len(data.test)]
    bpd = {label: evaluate_bits_per_dim(model, test, ROBUSTNESS_SIGMAS, bins=data.bins,
                                        seed=seed)
           for label, model in (("MLE", mle), ("NCMLE", ncmle))}

    fig = _figure(13.0, 8.6)
    gs = fig.add_gridspec(2, 3, hspace=0.3, wspace=0.35)
    for j, (label, x) in enumerate(samples.items()):
        ax = fig.add_subplot(gs[0, j])
        ax.imshow(grid_canvas(x.reshape(-1, *shape), cols=4, gap=1).numpy(),
                  interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(f"NCMLE samples: {label}", fontsize=10)
    for j, (task, (y, r)) in enumerate(rows.items()):
        ax = fig.add_subplot(gs[1, j])
        tiles = torch.cat([clean, y, r]).reshape(-1, *shape)
        ax.imshow(grid_canvas(tiles, cols=k, gap=1).numpy(), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([1 + r * 9 + 3.5 for r in range(3)],
                      ["clean", "noisy" if task == "denoise" else "masked", "restored"])
        ax.tick_params(axis="y", length=0)
        p = psnrs[task]
        ax.set_title(f"{task}: PSNR {p['observed']:.1f} dB → {p['restored']:.1f} dB", fontsize=10)
    ax = fig.add_subplot(gs[1, 2])
    for label, points in bpd.items():
        ax.plot(list(points), list(points.values()), marker="o", label=f"pretrained {label}")
    ax.set_xlabel("noise level σ")
    ax.set_ylabel("test bits/dim")
    ax.set_title("robustness to noise", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(f"ncmle_prob pretrained models on 8x8 digits ({', '.join(GALLERY_MODELS)})"
                 + (" [--quick: numbers not meaningful]" if quick else ""), fontsize=12)
    written = _save(fig, path)
    return {"path": written, "models": list(GALLERY_MODELS),
            "seconds": time.perf_counter() - start, "psnr": psnrs, "bits_per_dim": bpd,
            "test_images": len(test), "restored_images": k, "samples_per_panel": n}


def gallery_verdicts(result: dict[str, Any]) -> list[str]:
    """The lines the demo prints for the gallery: its numbers, then verdicts computed from them.

    Example:
        >>> from ncmle_prob.cli.gallery import gallery_verdicts
        >>> lines = gallery_verdicts({"psnr": {"denoise": {"observed": 8.0, "restored": 14.0}},
        ...     "bits_per_dim": {"MLE": {0.0: 1.9, 0.2: 5.0}, "NCMLE": {0.0: 1.95, 0.2: 3.4}},
        ...     "test_images": 359, "restored_images": 6})
        >>> print("\\n".join(lines[-3:]))
          denoise improves the images (restored PSNR > observed + 1 dB): shown (+6.0 dB)
          pretrained NCMLE more robust to noise than MLE (5% rule, every σ > 0): shown
          pretrained NCMLE better than MLE at σ = 0: not shown (at σ=0 NCMLE is worse by 2.6%)
    """
    from .demo import verdict

    lines = [f"gallery numbers (pretrained models; PSNR: mean of {result['restored_images']} "
             f"test images; bits/dim: {result['test_images']} test images):"]
    for task, p in result["psnr"].items():
        lines.append(f"  {task}: PSNR observed {p['observed']:.2f} dB, restored "
                     f"{p['restored']:.2f} dB")
    mle, ncmle = result["bits_per_dim"]["MLE"], result["bits_per_dim"]["NCMLE"]
    for s in mle:
        lines.append(f"  σ={s:g}: test bits/dim NCMLE {ncmle[s]:.4f}, MLE {mle[s]:.4f}")
    lines.append("gallery verdicts, computed from these numbers:")
    for task, p in result["psnr"].items():
        gain = p["restored"] - p["observed"]
        word = "shown" if gain > PSNR_MARGIN_DB else "not shown"
        lines.append(f"  {task} improves the images (restored PSNR > observed + "
                     f"{PSNR_MARGIN_DB:g} dB): {word} ({gain:+.1f} dB)")
    noisy = [s for s in mle if s > 0]
    lines.append("  pretrained NCMLE more robust to noise than MLE (5% rule, every σ > 0): "
                 + verdict(mle, ncmle, noisy))
    lines.append("  pretrained NCMLE better than MLE at σ = 0: " + verdict(mle, ncmle, [0.0]))
    return lines
