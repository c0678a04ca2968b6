r"""The exact benchmark, second version: MLE vs NCMLE on Gaussian-mixture oracles of graded
overlap, where every density, score, class posterior and prefix marginal is closed form.

Run ``python -m benchmarks.exact`` from the repository root (``--quick``: the end-to-end
smoke version, under 2.5 minutes on one CPU core; ``--overlaps 2,3``: a subset). The design,
the pre-registered decision rule (``benchmarks/exact/DECISION_RULE.md``), the tables and the
verdicts are on ``docs/guides/compounding.rst``.

Modules: :mod:`.config` (sizes), :mod:`.oracle` (the data laws and their exact prefix
marginals), :mod:`.train` (MLE and NCMLE through :func:`ncmle_prob.training.fit` with early
stopping), :mod:`.metrics` (sample metrics, compounding profiles), :mod:`.study` (the stages,
cached as JSON so that a killed run resumes), :mod:`.report` (tables, power, verdicts, figure).
"""
