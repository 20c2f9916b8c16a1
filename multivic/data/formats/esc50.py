"""``esc50``: ``root/audio/*.wav`` and ``root/meta/esc50.csv``, as the ESC-50 release ships it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from torch.utils.data import Dataset

from multivic.data.builtin import write_sounds22k_dataset, write_sounds_dataset
from multivic.data.formats import DataFormat, LabelledSamples
from multivic.data.readers.audio_folder import LabelledAudio, esc50_files
from multivic.modalities import Modality
from multivic.modalities.waveform import waveform_of
from multivic.registry import register_format


@register_format("esc50")
@dataclass
class ESC50Format(DataFormat):
    """Labelled clips in five folds: ``val`` is ``test_fold``, ``train`` the others. Clips
    shorter than ``min_seconds`` are skipped (counted in one warning)."""

    name = "esc50"
    modalities = ("waveform",)
    folds = (1, 2, 3, 4, 5)
    builtins = {"sounds": write_sounds_dataset, "sounds22k": write_sounds22k_dataset}
    # The fold held out as the val split; the others are the training split.
    test_fold: int = 5
    # Clips shorter than this are skipped (counted in one warning).
    min_seconds: float = 0.05

    def split(self, split: str, modalities: Mapping[str, Modality]) -> Dataset:
        files, classes = esc50_files(self.root, split, self.test_fold, self.folds)
        rate = waveform_of(modalities).sample_rate
        return LabelledSamples(LabelledAudio(files, classes, rate, None, self.min_seconds), "waveform")
