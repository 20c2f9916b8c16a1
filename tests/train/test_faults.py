"""Unreadable samples: replaced, warned about with their path and counted; strict mode and too
many of them stop the run with a one-line error from the main process, workers or not."""

import logging

import pytest
import torch

from multivic.errors import DataError
from tests.helpers.toy import PairsOfVectors, history, train, vicreg_model

BAD = {3, 10}


class SomeUnreadable(PairsOfVectors):
    """Items in BAD raise the DataError a modality raises for a corrupt file."""

    def __getitem__(self, i):
        if i in BAD:
            raise DataError(f"cannot read image /data/img_{i}.png: UnidentifiedImageError: cannot identify image file")
        return super().__getitem__(i)


class TypeErrorAt(PairsOfVectors):
    def __getitem__(self, i):
        if i == 7:
            raise TypeError("a bug in a user transform")
        return super().__getitem__(i)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_unreadable_samples_are_replaced_counted_and_named(tmp_path, caplog, num_workers):
    with caplog.at_level(logging.WARNING, logger="multivic"):
        result = train(
            vicreg_model(),
            SomeUnreadable(64),
            tmp_path / "run",
            epochs=2,
            num_workers=num_workers,
            max_bad_fraction=0.05,
        )
    assert (result.step, result.bad_samples) == (8, 4)  # every sample is drawn once per epoch
    assert int(history(tmp_path / "run")[-1]["bad_samples"]) == 4
    assert caplog.text.count("skipped an unreadable training sample") == 4
    assert "/data/img_3.png" in caplog.text and "/data/img_10.png" in caplog.text
    assert all(torch.isfinite(p).all() for p in result.model.parameters())


def test_a_replaced_sample_is_the_next_readable_one_under_the_same_seed():
    from multivic.data.loader import SeededSamples

    data = SeededSamples(SomeUnreadable(64))
    (a, b), fault = data[(3, 1234)]
    (a4, b4), none = SeededSamples(PairsOfVectors(64))[(4, 1234)]
    assert fault.index == 3 and "img_3.png" in fault.reason and none is None
    assert torch.equal(a, a4) and torch.equal(b, b4)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_strict_mode_stops_on_the_first_unreadable_sample_with_its_path(tmp_path, num_workers):
    with pytest.raises(
        DataError, match=r"unreadable training sample: cannot read image /data/img_\d+\.png.*data\.strict=true"
    ) as err:
        train(vicreg_model(), SomeUnreadable(64), tmp_path / "run", epochs=1, num_workers=num_workers, strict=True)
    assert "\n" not in str(err.value)


def test_more_than_max_bad_fraction_of_the_split_stops_the_run(tmp_path):
    with pytest.raises(
        DataError, match=r"2 of the 64 training samples are unreadable this epoch, more than data.max_bad_fraction=0.02"
    ):
        train(vicreg_model(), SomeUnreadable(64), tmp_path / "run", epochs=1, max_bad_fraction=0.02)


def test_any_exception_in_a_worker_is_a_fault_naming_the_sample_not_a_traceback(tmp_path):
    with pytest.raises(DataError, match=r"sample 7: TypeError: a bug in a user transform"):
        train(vicreg_model(), TypeErrorAt(64), tmp_path / "run", epochs=1, num_workers=2, strict=True)
