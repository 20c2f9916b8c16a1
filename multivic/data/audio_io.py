"""Reading audio files: soundfile for I/O (WAV, FLAC, OGG), torchaudio for resampling.

torchaudio 2.9+ loads files only through torchcodec and FFmpeg; soundfile needs neither.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.functional as AF

from multivic.errors import DataError


def audio_frames(path: Path) -> tuple[int, int]:
    """(frames, sample rate) from the file header; DataError if it cannot be read."""
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError, OSError) as exc:
        raise DataError(f"cannot read audio file {path}: {str(exc).splitlines()[0]}") from None
    return int(info.frames), int(info.samplerate)


def load_mono(path: Path, sample_rate: int) -> torch.Tensor:
    """The file as a mono float32 waveform [T] at ``sample_rate`` (channels averaged)."""
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, OSError) as exc:
        raise DataError(f"cannot read audio file {path}: {str(exc).splitlines()[0]}") from None
    if data.shape[0] == 0:
        raise DataError(f"audio file {path} is empty (0 samples)")
    wave = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
    if rate != sample_rate:
        wave = AF.resample(wave, orig_freq=rate, new_freq=sample_rate)
    return wave


def crop_or_pad(wave: torch.Tensor, length: int, start: int | None = None) -> torch.Tensor:
    """A window of ``length`` samples from [T] starting at ``start`` (centre when None);
    clips shorter than ``length`` are zero-padded at the end."""
    if wave.shape[0] < length:
        return torch.nn.functional.pad(wave, (0, length - wave.shape[0]))
    if start is None:
        start = (wave.shape[0] - length) // 2
    return wave[start : start + length]
