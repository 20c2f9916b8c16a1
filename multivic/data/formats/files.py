"""``image_files`` and ``audio_files``: a folder of files without labels, the commonest
self-supervised case (``root/**/*.jpg``, ``root/**/*.wav``, any layout, searched recursively).

Everything trains from them; evaluation has no labels to probe with, so the ``unlabelled``
protocol measures what needs none (the collapse statistics of each branch, for metrics.json and
the report) and says that the probes were skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Mapping

from torch.utils.data import Dataset

from multivic.data.formats import DataFormat, Sample
from multivic.errors import DataError
from multivic.files import inside_folder
from multivic.modalities import Modality, files_with_suffixes
from multivic.registry import register_format


class UnlabelledFiles(Dataset):
    """Sample dicts ``{modality: item}`` of every file of the modality's types under ``root``."""

    def __init__(self, root: Path, modality: Modality) -> None:
        self.modality = modality
        found = files_with_suffixes(root, modality.file_suffixes)
        # A symlink out of the folder (someone else's folder linking /etc/passwd) is refused.
        self.paths = [inside_folder(root, p.relative_to(root), f"{modality.name} file {p}") for p in found]

    def __len__(self) -> int:
        return len(self.paths)

    def path(self, index: int) -> Path:
        return self.paths[index]

    def __getitem__(self, index: int) -> Sample:
        return {self.modality.name: self.modality.read_file(self.paths[index])}

    def stored(self, index: int) -> Sample:
        return {self.modality.name: self.paths[index]}


@dataclass
class FilesFormat(DataFormat):
    """A folder of one modality's files, unlabelled; every file is in the training split."""

    protocol = "unlabelled"
    reads_any_folder = True
    modality: ClassVar[str] = ""

    def split(self, split: str, modalities: Mapping[str, Modality]) -> Dataset:
        root = Path(self.root)
        if not root.is_dir():
            raise DataError(f"data.root {root} is not a folder of {self.modality} files")
        modality = modalities[self.modality]
        files = UnlabelledFiles(root, modality)
        if len(files) == 0:
            raise DataError(
                f"{root} holds no {self.modality} files ({', '.join(modality.file_suffixes[:4])}, ...): "
                "point data.root at the folder that holds them"
            )
        return files

    def check_evaluation_data(self, modalities: Mapping[str, Modality]) -> None:
        self.split("train", modalities)  # the unlabelled protocol measures the training files


@register_format("image_files")
@dataclass
class ImageFilesFormat(FilesFormat):
    """Unlabelled images anywhere under ``root`` (no class folders needed)."""

    name = "image_files"
    modalities = ("image",)
    modality = "image"


@register_format("audio_files")
@dataclass
class AudioFilesFormat(FilesFormat):
    """Unlabelled audio files anywhere under ``root``."""

    name = "audio_files"
    modalities = ("waveform",)
    modality = "waveform"
