"""The model catalogue is the one list of built-in networks: every other list reads it.

Each test would fail if a list were written by hand again and drifted: a network added to
the catalogue without a class, a checkpoint entry or an ``ncmle train`` builder; a ``--model``
choice, a restore kernel named in ``--help`` that the registry does not have.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from ncmle_prob.models import catalogue


def test_importing_the_catalogue_imports_no_torch() -> None:
    code = ("import sys, ncmle_prob.models.catalogue as c, ncmle_prob.models as m\n"
            "assert m.CATALOGUE is c.CATALOGUE\n"
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


@pytest.mark.parametrize("record", catalogue.CATALOGUE, ids=lambda r: r.name)
def test_every_record_names_its_registered_class(record: catalogue.ModelRecord) -> None:
    import importlib

    import torch

    from ncmle_prob.models import MODELS, NoiseConditionalModel

    module, attr = record.target.split(":")
    cls = getattr(importlib.import_module(module), attr)
    assert cls.__name__ == record.class_name
    assert issubclass(cls, NoiseConditionalModel)
    assert MODELS.get(record.class_name) is cls  # checkpoints rebuild it by this name
    assert catalogue.by_class(record.class_name) is record
    # the input kind is what the network takes: flat vectors or (C, H, W) images
    model = (cls(features=4, hidden_features=8) if record.input == "vector"
             else cls((1, 4, 4), filters=4, resnets=1))
    x = torch.zeros(2, *model.event_shape)
    assert len(model.event_shape) == (1 if record.input == "vector" else 3)
    assert model(0.1).log_prob(x).shape == (2,)


def test_train_builds_every_catalogued_network_and_offers_exactly_those() -> None:
    from ncmle_prob.cli.train import MODEL_BUILDERS, add_parser

    assert tuple(MODEL_BUILDERS.names(sort=False)) == catalogue.names()
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    model = next(a for a in sub.choices["train"]._actions if a.dest == "model")
    assert tuple(model.choices) == catalogue.names()
    assert model.default == catalogue.CATALOGUE[0].name


def test_resume_check_reads_the_catalogue(tmp_path: object) -> None:
    from pathlib import Path

    from ncmle_prob.cli.common import CLIError
    from ncmle_prob.cli.runs import check_resume_model

    ckpt = Path(str(tmp_path)) / "last.pt"
    check_resume_model(ckpt, "PixelCNNPP", {}, "pixelcnnpp")  # same network: accepted
    with pytest.raises(CLIError, match=r"holds a PixelCNNPP .*--model pixelcnnpp"):
        check_resume_model(ckpt, "PixelCNNPP", {}, "made")


def test_restore_help_names_exactly_the_registered_kernels() -> None:
    from ncmle_prob.cli.restore import HELP_KERNELS
    from ncmle_prob.infer import RESTORE_KERNELS

    assert sorted(HELP_KERNELS) == RESTORE_KERNELS.names()


def test_unknown_model_lists_the_catalogue() -> None:
    with pytest.raises(ValueError, match="unknown model 'gpt'; choose from made, pixelcnnpp"):
        catalogue.lookup("gpt")
    assert catalogue.by_class("Transformer") is None
