"""The image study of issue 18: MLE against NCMLE MADEs on MNIST 14×14 (and the 8×8 digits).

Run it with ``python -m benchmarks.image_study`` from the repository root (``--help`` lists the
stages). Each stage reads what the earlier ones wrote and writes JSON under ``--results``, so an
interrupted study resumes where it stopped:

* ``train``: ``ncmle train`` for every (objective, seed), to early stopping on validation
  bits/dim (:mod:`.plan` holds the commands); ``--resume-or-start`` makes it resumable.
* ``likelihood``: test bits/dim of each run's best weights at every σ of the robustness curve,
  the NCMLE − MLE difference paired over seeds, its confidence interval and the smallest
  difference the comparison can detect (:mod:`.stats`).
* ``select``: every sampler setting of every family (:data:`.plan.FAMILIES`) draws from the
  seed-0 models and is scored against *validation* images only; the best setting of each
  family is kept (:mod:`.selection`).
* ``test``: the kept settings, once, on every seed, against the *test* images, every metric
  beside its real-vs-real floor at the same set sizes; the controls (a)–(c) with real test
  images; samples/s (:mod:`.testing`).
* ``grids``: titled sample grids of MLE ancestral and of each family's pick, side by side.
* ``report``: Markdown tables, the precision–coverage figure and the verdicts, computed from the
  numbers the earlier stages wrote (:mod:`.report`).
"""
