"""``audio_csv``: ``root/<meta_csv>`` listing audio files (relative to root) with labels.

Columns ``file`` and ``label``; optionally ``fold`` (1-5), or a source column (``src_file``,
``source``) that keeps the clips of one recording in one fold; see
:func:`multivic.data.readers.audio_folder.csv_audio_files`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from torch.utils.data import Dataset

from multivic.data.formats import DataFormat, LabelledSamples
from multivic.data.readers.audio_folder import LabelledAudio, csv_audio_files
from multivic.modalities import Modality
from multivic.modalities.waveform import waveform_of
from multivic.registry import register_format


@register_format("audio_csv")
@dataclass
class AudioCsvFormat(DataFormat):
    """Labelled audio files listed in a CSV; ``val`` is ``test_fold``, ``train`` the others."""

    name = "audio_csv"
    modalities = ("waveform",)
    folds = (1, 2, 3, 4, 5)
    # The CSV under data.root listing the files (column file, relative to data.root) and labels.
    meta_csv: str = "labels.csv"
    # The fold held out as the val split; the others are the training split.
    test_fold: int = 5
    # Clips shorter than this are skipped (counted in one warning).
    min_seconds: float = 0.05

    def split(self, split: str, modalities: Mapping[str, Modality]) -> Dataset:
        files, classes = csv_audio_files(self.root, self.meta_csv, split, self.test_fold, self.folds)
        rate = waveform_of(modalities).sample_rate
        return LabelledSamples(LabelledAudio(files, classes, rate, None, self.min_seconds), "waveform")
