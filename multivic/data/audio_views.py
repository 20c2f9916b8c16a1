"""Audio views: each side of the joint embedding gets its own random segment and augmentation
of the same clip (identical inputs would make the invariance term trivial)."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from multivic.data.audio_io import crop_or_pad

AudioTransform = Callable[[torch.Tensor], torch.Tensor]


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


def audio_eval_view(sample_rate: int, crop_seconds: float) -> AudioTransform:
    """The deterministic evaluation view: the centre ``crop_seconds`` of the clip (padded if short)."""
    length = int(round(crop_seconds * sample_rate))
    return lambda wave: crop_or_pad(wave, length)
