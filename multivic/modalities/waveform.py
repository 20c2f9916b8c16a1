"""The waveform modality: mono audio [T] at a fixed sample rate.

Each side of the joint embedding gets its own random segment and augmentation of the same clip
(identical inputs would make the invariance term trivial). Audio files and shard members are
read here too, by one decoder: soundfile for I/O (WAV, FLAC, OGG), torchaudio for resampling
(torchaudio 2.9+ loads files only through torchcodec and FFmpeg; soundfile needs neither).
"waveform" is the modality, "audio" the files and data sets.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import soundfile
import torch
import torchaudio.functional as AF

from multivic.errors import ConfigError, DataError
from multivic.modalities import Modality, check_at_most
from multivic.registry import accepted_kwargs, register_modality

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
# Upper bounds of the options: beyond them a value is a typo or a tampered export, not a recipe.
MAX_SAMPLE_RATE = 384_000  # the highest rate audio interfaces record at
MAX_CROP_SECONDS = 600.0
# Shard members read as audio; what `multivic shard` re-encodes is written as the first.
AUDIO_MEMBERS = ("wav", "flac", "ogg")

AudioTransform = Callable[[torch.Tensor], torch.Tensor]


def audio_frames(path: Path) -> tuple[int, int]:
    """(frames, sample rate) from the file header; DataError if it cannot be read."""
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError, OSError) as exc:
        raise DataError(f"cannot read audio file {path}: {str(exc).splitlines()[0]}") from None
    return int(info.frames), int(info.samplerate)


def load_mono(source: Path | bytes, sample_rate: int, where: str | None = None) -> torch.Tensor:
    """An audio file (a path, or its bytes) as a mono float32 waveform [T] at ``sample_rate``
    (channels averaged); a DataError naming ``where`` (default: the path) when it cannot be read.
    The one audio decoder: files and shard members alike."""
    where = where or f"file {source}"
    try:
        data, rate = soundfile.read(
            io.BytesIO(source) if isinstance(source, bytes) else str(source), dtype="float32", always_2d=True
        )
    except (RuntimeError, soundfile.LibsndfileError, OSError) as exc:
        raise DataError(f"cannot read audio {where}: {str(exc).splitlines()[0]}") from None
    if data.shape[0] == 0:
        raise DataError(f"audio {where} is empty (0 samples)")
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


def _uniform(low: float, high: float) -> float:
    return float(torch.empty(()).uniform_(low, high))


class AudioTrainView:
    """Random crop, random gain, additive white noise at a random SNR, random circular shift.

    Input: a mono clip [T]; output [crop_samples]. Randomness comes from torch's RNG, so runs
    are reproducible and resumable.
    """

    def __init__(
        self,
        crop_samples: int,
        gain_db: Sequence[float] = (-6.0, 6.0),
        noise_p: float = 0.5,
        noise_snr_db: Sequence[float] = (10.0, 30.0),
        shift_fraction: float = 0.1,
    ) -> None:
        if crop_samples < 1:
            raise ValueError(f"the crop must hold at least one sample; got {crop_samples}")
        self.crop_samples = crop_samples
        self.gain_db = (float(gain_db[0]), float(gain_db[1]))
        self.noise_p = noise_p
        self.noise_snr_db = (float(noise_snr_db[0]), float(noise_snr_db[1]))
        self.shift_fraction = shift_fraction

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        slack = max(0, wave.shape[0] - self.crop_samples)
        start = int(torch.randint(0, slack + 1, ()))
        x = crop_or_pad(wave, self.crop_samples, start).clone()
        x.mul_(10 ** (_uniform(*self.gain_db) / 20))
        if float(torch.rand(())) < self.noise_p:
            power = x.pow(2).mean().clamp_min(1e-10)
            snr = _uniform(*self.noise_snr_db)
            x.add_(torch.randn_like(x) * math.sqrt(float(power) / 10 ** (snr / 10)))
        if self.shift_fraction > 0:
            limit = int(self.shift_fraction * self.crop_samples)
            x = torch.roll(x, int(torch.randint(-limit, limit + 1, ())))
        return x


def audio_train_view(
    sample_rate: int,
    crop_seconds: float,
    gain_db: Sequence[float] = (-6.0, 6.0),
    noise_p: float = 0.5,
    noise_snr_db: Sequence[float] = (10.0, 30.0),
    shift_fraction: float = 0.1,
) -> AudioTransform:
    """One side's training view of a clip at ``sample_rate``: [T] in, [crop_seconds × rate] out."""
    return AudioTrainView(int(round(crop_seconds * sample_rate)), gain_db, noise_p, noise_snr_db, shift_fraction)


class CentreCrop:
    """The centre ``length`` samples of a clip [T] (zero-padded when shorter)."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        return crop_or_pad(wave, self.length)


def audio_eval_view(sample_rate: int, crop_seconds: float) -> AudioTransform:
    """The deterministic evaluation view: the centre ``crop_seconds`` of the clip (padded if short)."""
    return CentreCrop(int(round(crop_seconds * sample_rate)))


@register_modality("waveform")
@dataclass
class WaveformModality(Modality):
    """Mono audio resampled to ``sample_rate``; views are ``crop_seconds`` long ([crop samples])."""

    name = "waveform"
    file_suffixes = AUDIO_EXTENSIONS
    # Audio is mixed to mono and resampled to this many samples per second.
    sample_rate: int = 16000
    # The length of each view in seconds (shorter clips are zero-padded).
    crop_seconds: float = 2.0

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0 (samples per second); got {self.sample_rate}")
        if self.crop_seconds <= 0:
            raise ValueError(f"crop_seconds must be > 0; got {self.crop_seconds}")
        check_at_most("sample_rate", self.sample_rate, MAX_SAMPLE_RATE, "samples per second")
        check_at_most("crop_seconds", self.crop_seconds, MAX_CROP_SECONDS, "seconds per view")

    @property
    def crop_samples(self) -> int:
        return int(round(self.crop_seconds * self.sample_rate))

    def read_file(self, path: Path) -> torch.Tensor:
        return load_mono(path, self.sample_rate)

    def train_view(self, **view: Any) -> AudioTransform:
        return audio_train_view(self.sample_rate, self.crop_seconds, **view)

    def view_keys(self) -> set[str]:
        return (accepted_kwargs(audio_train_view) or set()) - {"sample_rate", "crop_seconds"}

    def eval_view(self) -> AudioTransform:
        return audio_eval_view(self.sample_rate, self.crop_seconds)

    def example_batch(self, batch_size: int = 2) -> torch.Tensor:
        return torch.randn(batch_size, 4000)

    def member_extensions(self) -> tuple[str, ...]:
        return AUDIO_MEMBERS

    def encode(self, value: torch.Tensor) -> tuple[str, bytes]:
        buffer = io.BytesIO()  # float samples: the waveform comes back bit for bit
        soundfile.write(buffer, value.numpy(), self.sample_rate, format="WAV", subtype="FLOAT")
        return "wav", buffer.getvalue()

    def decode(self, data: bytes, ext: str, where: str) -> torch.Tensor:
        return load_mono(data, self.sample_rate, where)

    def check_encoder(self, where: str, encoder: Any) -> None:
        # A spectrogram encoder needs at least one STFT window of samples.
        need = int(getattr(encoder, "min_input_samples", 1))
        if self.crop_samples < need:
            raise ConfigError(
                f"data.crop_seconds={self.crop_seconds} at {self.sample_rate} Hz gives {self.crop_samples} samples, "
                f"fewer than the {need} that {where} needs for one window: lengthen the crop"
            )


def waveform_of(modalities: Mapping[str, Modality]) -> WaveformModality:
    """The ``waveform`` modality of a format's modalities (its sample rate is the files' target rate)."""
    modality = modalities["waveform"]
    if not isinstance(modality, WaveformModality):
        raise ConfigError(f"the waveform modality is a {type(modality).__name__}, not a WaveformModality")
    return modality
