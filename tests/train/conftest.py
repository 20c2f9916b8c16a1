"""Fixtures of the training tests: a finished toy run, copied for each test that tampers with it."""

import shutil

import pytest

from tests.helpers.toy import PairsOfVectors, train, vicreg_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 1-epoch toy run (4 steps): each test copies it."""
    run = tmp_path_factory.mktemp("trained") / "run"
    train(vicreg_model(), PairsOfVectors(64), run, epochs=1)
    return run


@pytest.fixture
def run(trained, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy
