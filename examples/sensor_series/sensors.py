"""Sensor time series as a new multivic modality and data format, from outside the package.

Everything here uses multivic's public extension points only; a recipe lists this file under
``imports:`` (recipe.yaml beside it) and the names below can then be used in the recipe:

* modality ``sensor``: one CSV file per recording (rows = time steps, columns = channels, an
  optional header row) read as a float tensor [C, T]; training views are random windows with
  per-channel gain and additive noise, the evaluation view is the centre window. Options
  (``data.window``, ``data.channels``) are the dataclass fields.
* data format ``sensor_csv``: ``root/<split>/<class>/*.csv`` for the splits ``train`` and
  ``val`` (the class is the folder name, as ImageNet's layout). Its built-in data set
  ``toy_sensors`` is synthesised on first use: four activity-like classes of three-channel
  signals.
* encoders ``sensor_cnn1d`` (a 1-D CNN over the raw [B, C, T]) and ``sensor_spectrogram``
  (a magnitude STFT of each channel, computed inside the encoder, then a 2-D CNN).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from multivic import ConfigError, DataError, DataFormat, Modality, register_encoder, register_format, register_modality
from multivic.data.formats import LabelledSamples

SENSOR_SUFFIXES = (".csv",)


# ------------------------------------------------------------------------------------------
# Reading one recording
# ------------------------------------------------------------------------------------------


def read_sensor_csv(path: Path) -> np.ndarray:
    """A CSV recording as a float32 array [T, C]; the first row is skipped when it is a header."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read sensor file {path}: {exc.__class__.__name__}: {exc}") from None
    rows = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if rows:
        try:
            [float(v) for v in rows[0].split(",")]
        except ValueError:
            rows = rows[1:]  # a header row of channel names
    if not rows:
        raise DataError(f"sensor file {path} holds no rows of numbers")
    try:
        array = np.array([[float(v) for v in row.split(",")] for row in rows], dtype=np.float32)
    except ValueError as exc:  # ragged rows or a non-number
        raise DataError(f"sensor file {path}: every row must be {len(rows[0].split(','))} numbers ({exc})") from None
    if not np.isfinite(array).all():
        raise DataError(f"sensor file {path} holds NaN or infinite values")
    return array


def crop_or_pad(x: Tensor, length: int, start: int | None = None) -> Tensor:
    """``length`` time steps of ``x`` [C, T] from ``start`` (default: the centre), zero-padded when short."""
    total = x.shape[-1]
    if total < length:
        return torch.nn.functional.pad(x, (0, length - total))
    if start is None:
        start = (total - length) // 2
    return x[:, start : start + length]


# ------------------------------------------------------------------------------------------
# Views
# ------------------------------------------------------------------------------------------


class SensorTrainView:
    """A random window of ``window`` steps, a random gain per channel, additive Gaussian noise
    of ``noise_std`` × the window's per-channel standard deviation. Input [C, T], output
    [C, window]. Randomness comes from torch's RNG (reproducible runs)."""

    def __init__(self, window: int, noise_std: float, scale_range: Sequence[float]) -> None:
        self.window, self.noise_std = window, float(noise_std)
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))

    def __call__(self, x: Tensor) -> Tensor:
        slack = max(0, x.shape[-1] - self.window)
        start = int(torch.randint(0, slack + 1, ()))
        w = crop_or_pad(x, self.window, start).clone()
        low, high = self.scale_range
        w.mul_(torch.empty(w.shape[0], 1).uniform_(low, high))
        if self.noise_std > 0:
            w.add_(torch.randn_like(w) * self.noise_std * w.std(dim=-1, keepdim=True).clamp_min(1e-6))
        return w


class CentreWindow:
    """The centre ``window`` steps of a recording [C, T] (zero-padded when shorter)."""

    def __init__(self, window: int) -> None:
        self.window = window

    def __call__(self, x: Tensor) -> Tensor:
        return crop_or_pad(x, self.window).clone()


@register_modality("sensor")
@dataclass
class SensorModality(Modality):
    """Multichannel sensor recordings, one CSV file each; views are ``window`` steps of ``channels`` channels."""

    name = "sensor"
    file_suffixes = SENSOR_SUFFIXES
    window: int = 128
    channels: int = 3

    def __post_init__(self) -> None:
        # Messages start with the option's name: multivic reports them as "data.<message>".
        if self.window < 8:
            raise ValueError(f"window must be >= 8 time steps; got {self.window}")
        if self.channels < 1:
            raise ValueError(f"channels must be >= 1; got {self.channels}")

    def read_file(self, path: Path) -> Tensor:
        array = read_sensor_csv(path)
        if array.shape[1] != self.channels:
            raise DataError(f"sensor file {path} has {array.shape[1]} columns; data.channels is {self.channels}")
        return torch.from_numpy(np.ascontiguousarray(array.T))  # [C, T]

    def train_view(
        self, noise_std: float = 0.1, scale_range: Sequence[float] = (0.8, 1.2)
    ) -> Callable[[Tensor], Tensor]:
        """One side's augmentation (a branch's ``view`` keys are these arguments)."""
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0; got {noise_std}")
        if len(scale_range) != 2 or not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f"scale_range must be [low, high] with 0 < low <= high; got {list(scale_range)}")
        return SensorTrainView(self.window, noise_std, scale_range)

    def eval_view(self) -> Callable[[Tensor], Tensor]:
        return CentreWindow(self.window)

    def example_batch(self, batch_size: int = 2) -> Tensor:
        return torch.randn(batch_size, self.channels, self.window)

    def encoder_kwargs(self) -> dict[str, Any]:
        # Sizes the encoder's input channels unless the recipe sets encoder_kwargs.in_channels.
        return {"in_channels": self.channels}

    def check_encoder(self, where: str, encoder: Any) -> None:
        need = int(getattr(encoder, "min_input_samples", 1))
        if self.window < need:
            raise ConfigError(
                f"data.window={self.window} is shorter than the {need} steps {where} needs: lengthen the window"
            )
        in_channels = getattr(encoder, "in_channels", self.channels)
        if in_channels != self.channels:
            raise ConfigError(f"{where} reads {in_channels} channels but data.channels is {self.channels}")


# ------------------------------------------------------------------------------------------
# The data format and its built-in toy data set
# ------------------------------------------------------------------------------------------


class SensorFolder(Dataset):
    """``(recording [C, T], label)`` of every ``<folder>/<class>/*.csv``, read lazily."""

    def __init__(self, folder: Path, read: Callable[[Path], Tensor]) -> None:
        if not folder.is_dir():
            raise DataError(f"sensor_csv: no folder {folder}; expected <root>/{folder.name}/<class>/*.csv")
        self.classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not self.classes:
            raise DataError(f"sensor_csv: {folder} has no class sub-folders; expected {folder}/<class>/*.csv")
        self.files: list[Path] = []
        self.targets: list[int] = []
        for label, cls in enumerate(self.classes):
            found = sorted(p for p in (folder / cls).iterdir() if p.is_file() and p.suffix.lower() in SENSOR_SUFFIXES)
            if not found:
                raise DataError(f"sensor_csv: class folder {folder / cls} holds no .csv files")
            self.files += found
            self.targets += [label] * len(found)
        self.read = read

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.read(self.files[index]), self.targets[index]


TOY_CLASSES = ("sine", "square", "bursts", "ramp")


def _toy_signal(kind: str, rng: np.random.Generator, steps: int, active: bool) -> np.ndarray:
    """One channel of class ``kind`` (or of background only when not ``active``): a random
    frequency, phase, amplitude and offset, over a slow random drift and white noise."""
    t = np.arange(steps)
    amp, offset, noise = rng.uniform(0.5, 1.5), rng.normal(0.0, 0.5), rng.uniform(0.2, 0.5)
    if not active:
        x = np.zeros(steps)
    elif kind == "sine":  # smooth oscillation, 0.015-0.08 cycles per step
        x = np.sin(2 * np.pi * rng.uniform(0.015, 0.08) * t + rng.uniform(0, 2 * np.pi))
    elif kind == "square":  # the same frequency band, but a square wave (odd harmonics)
        x = np.sign(np.sin(2 * np.pi * rng.uniform(0.015, 0.08) * t + rng.uniform(0, 2 * np.pi)))
    elif kind == "bursts":  # short broadband bursts
        envelope = np.zeros(steps)
        for _ in range(rng.integers(3, 7)):
            centre, width = rng.uniform(0, steps), rng.uniform(4, 16)
            envelope += np.exp(-0.5 * ((t - centre) / width) ** 2)
        x = rng.normal(size=steps) * np.clip(envelope, 0, 1.5)
    elif kind == "ramp":  # sawtooth: slow rise, sudden drop
        x = 2 * ((rng.uniform(0.015, 0.05) * t + rng.uniform(0, 1)) % 1.0) - 1
    else:
        raise ValueError(f"unknown toy class {kind!r}")
    drift = np.cumsum(rng.normal(0.0, 0.03, steps))  # a slow random walk, as a sensor's baseline wanders
    return (amp * x + offset + drift + rng.normal(0.0, noise, steps)).astype(np.float32)


def write_toy_sensors(
    root: str | Path,
    train_per_class: int = 64,
    val_per_class: int = 32,
    steps: int = 256,
    channels: int = 3,
    seed: int = 0,
) -> Path:
    """Write ``root/{train,val}/<class>/NNNN.csv``: four classes of ``channels``-channel signals,
    ``steps`` rows each, with a header row ``ch0,ch1,...``. Each recording shows its class on a
    random subset of the channels (at least one), the others carry background only. Deterministic
    for a given ``seed``."""
    root = Path(root)
    header = ",".join(f"ch{c}" for c in range(channels))
    for label, kind in enumerate(TOY_CLASSES):
        for split_index, (split, count) in enumerate((("train", train_per_class), ("val", val_per_class))):
            folder = root / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng([seed, label, split_index])
            for i in range(count):
                active = rng.random(channels) < 0.6  # not every axis sees the activity
                active[rng.integers(channels)] = True
                signal = np.stack([_toy_signal(kind, rng, steps, bool(a)) for a in active], axis=1)  # [T, C]
                np.savetxt(folder / f"{i:04d}.csv", signal, fmt="%.5f", delimiter=",", header=header, comments="")
    return root


@register_format("sensor_csv")
@dataclass
class SensorCSVFormat(DataFormat):
    """Labelled sensor recordings: ``root/train/<class>/*.csv`` and ``root/val/<class>/*.csv``."""

    name = "sensor_csv"
    modalities = ("sensor",)
    protocol = "classification"
    builtins = {"toy_sensors": write_toy_sensors}

    def split(self, split: str, modalities: Mapping[str, Modality]) -> Dataset:
        return LabelledSamples(SensorFolder(Path(self.root) / split, modalities["sensor"].read_file), "sensor")


# ------------------------------------------------------------------------------------------
# Encoders
# ------------------------------------------------------------------------------------------


def _conv1d(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(cin, cout, kernel, stride, padding=kernel // 2, bias=False),
        nn.BatchNorm1d(cout),
        nn.ReLU(inplace=True),
    )


class SensorCNN1d(nn.Module):
    """A small 1-D CNN over the raw signal. Input [B, C, T], output [B, width * 4]."""

    modality = "sensor"

    def __init__(self, in_channels: int = 3, width: int = 32) -> None:
        super().__init__()
        if in_channels < 1 or width < 1:
            raise ValueError(f"in_channels and width must be >= 1; got {in_channels} and {width}")
        self.in_channels = in_channels
        self.input_norm = nn.BatchNorm1d(in_channels)  # per-channel scale and offset of the sensor
        self.body = nn.Sequential(
            _conv1d(in_channels, width, 7, stride=2),
            _conv1d(width, width * 2, 5),
            nn.MaxPool1d(2),
            _conv1d(width * 2, width * 4, 5),
            nn.MaxPool1d(2),
            _conv1d(width * 4, width * 4, 3),
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
        )
        self.out_dim: int = width * 4
        self.min_input_samples = 8

    def forward(self, x: Tensor) -> Tensor:
        return self.body(self.input_norm(x))


@register_encoder("sensor_cnn1d", modality="sensor")
def sensor_cnn1d(in_channels: int = 3, width: int = 32) -> SensorCNN1d:
    """A small 1-D CNN over raw sensor windows [B, C, T]."""
    return SensorCNN1d(in_channels, width)


def _conv2d(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SensorSpectrogramCNN(nn.Module):
    """Log-magnitude STFT of each channel (inside the encoder, in float32), then a small 2-D CNN.

    Input [B, C, T]; the spectrogram is [B, C, n_fft // 2 + 1, frames] with the sensor
    channels as image channels; output [B, width * 4].
    """

    modality = "sensor"

    def __init__(self, in_channels: int = 3, n_fft: int = 32, hop_length: int = 4, width: int = 32) -> None:
        super().__init__()
        if n_fft < 4 or hop_length < 1:
            raise ValueError(f"n_fft must be >= 4 and hop_length >= 1; got {n_fft} and {hop_length}")
        self.in_channels, self.n_fft, self.hop_length = in_channels, n_fft, hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.input_norm = nn.BatchNorm2d(in_channels)  # per channel, over frequency and time
        self.body = nn.Sequential(
            _conv2d(in_channels, width),
            nn.MaxPool2d(2),
            _conv2d(width, width * 2),
            nn.MaxPool2d(2),
            _conv2d(width * 2, width * 4),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.out_dim: int = width * 4
        self.min_input_samples = n_fft

    def spectrogram(self, x: Tensor) -> Tensor:
        b, c, t = x.shape
        with torch.autocast(device_type=x.device.type, enabled=False):
            spec = torch.stft(
                x.float().reshape(b * c, t),
                self.n_fft,
                self.hop_length,
                window=self.window.float(),
                center=True,
                return_complex=True,
            ).abs()
            return torch.log1p(spec).reshape(b, c, spec.shape[-2], spec.shape[-1])

    def forward(self, x: Tensor) -> Tensor:
        return self.body(self.input_norm(self.spectrogram(x)))


@register_encoder("sensor_spectrogram", modality="sensor")
def sensor_spectrogram(
    in_channels: int = 3, n_fft: int = 32, hop_length: int = 4, width: int = 32
) -> SensorSpectrogramCNN:
    """STFT magnitude of each sensor channel, then a small 2-D CNN."""
    return SensorSpectrogramCNN(in_channels, n_fft, hop_length, width)
