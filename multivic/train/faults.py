"""Unreadable samples during training: replaced by the loader, counted and judged here.

The loader (multivic.data.loader) replaces a sample it cannot read or view by the next readable
one and hands the trainer a :class:`SampleFault` naming it. Here, in the training process, each
fault is warned about once with its path and counted (history.csv's ``bad_samples``); with
``strict`` the first one stops the run, and more than ``max_bad_fraction`` of the split in one
epoch stops it too, since then the data, not a stray file, is broken.
"""

from __future__ import annotations

import logging
from typing import Sequence

from multivic.data.loader import MAX_REPLACEMENT_TRIES, SampleFault
from multivic.errors import DataError
from multivic.train.checkpoint import TrainState

logger = logging.getLogger("multivic")


class DataFaults:
    """Judges the faults of each batch of one process. The counts of all processes are summed by
    the caller once per step and handed to :meth:`count`, so every process stops at the same step;
    the totals live in the checkpointed :class:`TrainState`."""

    def __init__(self, split_size: int, strict: bool, max_bad_fraction: float) -> None:
        self.split_size, self.strict, self.max_bad_fraction = split_size, strict, max_bad_fraction
        self.pending = 0  # this process's faults since the last count

    def record(self, batch: object, faults: Sequence[SampleFault]) -> None:
        """Warn about (or, strict, stop on) this process's faults of one batch."""
        for fault in faults:
            if self.strict:
                raise DataError(
                    f"unreadable training sample: {fault.reason}; data.strict=true stops on the first one: "
                    "fix or remove the file, or set data.strict=false to skip and count such samples"
                )
            logger.warning("skipped an unreadable training sample (replaced by the next one): %s", fault.reason)
        self.pending += len(faults)
        if batch is None:
            raise DataError(
                f"{MAX_REPLACEMENT_TRIES} training samples in a row are unreadable, first: "
                f"{faults[0].reason if faults else '?'}: check data.root and the files"
            )

    def count(self, total_new: int, state: TrainState) -> None:
        """Add the faults of all processes since the last count; stop when the epoch has too many."""
        self.pending = 0
        state.bad_samples += total_new
        state.bad_in_epoch += total_new
        if state.bad_in_epoch > self.max_bad_fraction * self.split_size:
            raise DataError(
                f"{state.bad_in_epoch} of the {self.split_size} training samples are unreadable this epoch, more than "
                f"data.max_bad_fraction={self.max_bad_fraction}: the data set is damaged (the warnings above name "
                "the files); fix it, or raise data.max_bad_fraction"
            )
