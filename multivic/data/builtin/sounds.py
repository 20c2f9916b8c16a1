"""A procedurally synthesised sound data set, written as WAV files in the ESC-50 layout.

Classes differ in how energy moves in time and frequency, while level, duration, onset,
pitch within the class's range and background noise vary: steady tones in a low and a high
band, rising and falling chirps, band-limited noise, pulse trains and harmonic stacks.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile

SOUND_CLASSES: tuple[str, ...] = (
    "low_tone",
    "high_tone",
    "chirp_up",
    "chirp_down",
    "noise_band",
    "pulse_train",
    "harmonic",
)


def _event(kind: str, n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / rate
    if kind == "low_tone":
        return np.sin(2 * np.pi * rng.uniform(150, 400) * t)
    if kind == "high_tone":
        return np.sin(2 * np.pi * rng.uniform(1200, 2500) * t)
    if kind in ("chirp_up", "chirp_down"):
        f0, f1 = rng.uniform(200, 500), rng.uniform(1500, 3000)
        if kind == "chirp_down":
            f0, f1 = f1, f0
        freq = f0 + (f1 - f0) * t / max(t[-1], 1e-9)
        return np.sin(2 * np.pi * np.cumsum(freq) / rate)
    if kind == "noise_band":
        centre, width = rng.uniform(600, 2000), rng.uniform(100, 400)
        spectrum = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1 / rate)
        spectrum[np.abs(freqs - centre) > width] = 0
        x = np.fft.irfft(spectrum, n)
        return x / (np.abs(x).max() + 1e-9)
    if kind == "pulse_train":
        period = int(rate / rng.uniform(4, 12))
        x = np.zeros(n)
        click = np.hanning(max(8, rate // 400)) * rng.choice([-1, 1])
        for start in range(0, n - len(click), period):
            x[start : start + len(click)] += click
        return x
    if kind == "harmonic":
        f0 = rng.uniform(120, 300)
        return sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 7)) / 2.0
    raise ValueError(f"unknown sound class {kind!r}; known: {', '.join(SOUND_CLASSES)}")


def synthesise(kind: str, rng: np.random.Generator, rate: int, seconds: float) -> np.ndarray:
    """One clip of ``seconds`` at ``rate``: an event of random duration, onset and level over noise."""
    n = int(rate * seconds)
    clip = rng.standard_normal(n) * rng.uniform(0.002, 0.02)
    length = int(n * rng.uniform(0.35, 0.8))
    onset = int(rng.integers(0, n - length + 1))
    envelope = np.minimum(1.0, np.minimum(np.arange(length), np.arange(length)[::-1]) / (0.01 * rate))
    clip[onset : onset + length] += _event(kind, length, rate, rng) * envelope * rng.uniform(0.1, 0.6)
    return np.clip(clip, -1, 1).astype(np.float32)


def write_sounds_dataset(
    root: str | Path, clips_per_class: int = 60, sample_rate: int = 8000, seconds: float = 2.0, seed: int = 0
) -> Path:
    """Write ``root/audio/*.wav`` and ``root/meta/esc50.csv`` (folds 1-5 in turn)."""
    root = Path(root)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    rows = []
    for target, kind in enumerate(SOUND_CLASSES):
        rng = np.random.default_rng([seed, target])
        for i in range(clips_per_class):
            name = f"{i % 5 + 1}-{target:02d}{i:04d}-A-{target}.wav"
            soundfile.write(
                root / "audio" / name, synthesise(kind, rng, sample_rate, seconds), sample_rate, subtype="PCM_16"
            )
            rows.append(
                {
                    "filename": name,
                    "fold": i % 5 + 1,
                    "target": target,
                    "category": kind,
                    "esc10": False,
                    "src_file": i,
                    "take": "A",
                }
            )
    with (root / "meta" / "esc50.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root
