"""Audio encoders: both read raw mono waveforms [B, T] (modality "waveform").

The classes are registered directly: their constructor arguments are the encoder_kwargs.

- ``resnet18_1d``: a 1-D ResNet-18 straight on the samples: a strided convolution front-end,
  four stages of two residual blocks, global average pooling.
- ``mel_resnet18``: a log-mel spectrogram computed inside the encoder (so it runs on the
  training device) feeding a one-channel 2-D ResNet-18, with SpecAugment-style masking as a
  training-time option. The spectrogram is computed in float32 with autocast off: the STFT and
  the log of small powers are not safe in half precision.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import Tensor, nn

from multivic.encoders.resnet import ResNetEncoder
from multivic.registry import register_encoder


class BasicBlock1d(nn.Module):
    """Two 3-tap convolutions with batch norm and a residual connection. [B, C, T] → [B, C', T/stride]."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm1d(out_channels)
        self.conv2 = nn.Conv1d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm1d(out_channels)
        nn.init.zeros_(self.bn2.weight)  # each block starts as the identity (zero-init residual)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv1d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm1d(out_channels)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


@register_encoder("resnet18_1d", modality="waveform")
class WaveformResNet1d(nn.Module):
    """1-D ResNet-18 over raw audio. Input [B, T] (or [B, 1, T]), output [B, 8 × width]."""

    modality = "waveform"

    def __init__(self, width: int = 64, front_kernel: int = 80, front_stride: int = 4) -> None:
        super().__init__()
        self.front = nn.Sequential(
            nn.Conv1d(1, width, front_kernel, front_stride, front_kernel // 2, bias=False),
            nn.BatchNorm1d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool1d(4),
        )
        stages, channels = [], width
        for i, out in enumerate((width, width * 2, width * 4, width * 8)):
            stride = 1 if i == 0 else 2
            stages += [BasicBlock1d(channels, out, stride), BasicBlock1d(out, out, 1)]
            channels = out
        self.stages = nn.Sequential(*stages)
        self.out_dim: int = channels
        self.min_input_samples = front_kernel

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        return self.stages(self.front(x)).mean(dim=-1)


class LogMel(nn.Module):
    """Waveform [B, T] → log-mel spectrogram [B, 1, n_mels, frames], in float32."""

    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, n_mels: int) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, power=2.0
        )

    def forward(self, wave: Tensor) -> Tensor:
        with torch.autocast(device_type=wave.device.type, enabled=False):
            spec = self.mel(wave.float())
            return torch.log(spec + 1e-6).unsqueeze(1)


@register_encoder("mel_resnet18", modality="waveform")
class MelResNet18(nn.Module):
    """Log-mel spectrogram + one-channel 2-D ResNet-18. Input [B, T], output [B, 512]."""

    modality = "waveform"

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 256,
        n_mels: int = 64,
        spec_augment: bool = False,
        freq_mask: int = 8,
        time_mask: int = 16,
    ) -> None:
        super().__init__()
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0; got {sample_rate}")
        self.frontend = LogMel(sample_rate, n_fft, hop_length, n_mels)
        # Normalises the log-mel input per frequency band with running statistics.
        self.input_norm = nn.BatchNorm2d(1)
        self.masks = (
            nn.Sequential(
                torchaudio.transforms.FrequencyMasking(freq_mask), torchaudio.transforms.TimeMasking(time_mask)
            )
            if spec_augment
            else None
        )
        self.resnet = ResNetEncoder(18, small_stem=False, zero_init_residual=True, in_channels=1)
        self.out_dim: int = self.resnet.out_dim
        self.min_input_samples = n_fft

    def forward(self, wave: Tensor) -> Tensor:
        spec = self.input_norm(self.frontend(wave))
        if self.masks is not None and self.training:
            spec = self.masks(spec)
        return self.resnet(spec)
