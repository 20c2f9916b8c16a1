"""A second synthesised sound data set, written as WAV files in the ESC-50 layout.

Independent of :mod:`multivic.data.builtin.sounds` by construction: ten other classes
(modulated and composite sounds rather than steady tones, single chirps and noise bands),
22.05 kHz instead of 8 kHz, clips of 0.5-0.9 s (each its own length) instead of 2 s, and
coloured background noise (pink or brown, sometimes with mains hum) at levels set in dB
instead of white noise at a fixed scale. Every class keeps its energy below 3.5 kHz, so it
stays what it is when a recipe resamples to 8 kHz.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import soundfile

SOUNDS22K_CLASSES: tuple[str, ...] = (
    "vibrato",
    "tremolo",
    "siren",
    "birdsong",
    "dripping",
    "buzz",
    "knocking",
    "noise_sweep",
    "pulsing_noise",
    "double_whistle",
)


def _tone(freq: np.ndarray, rate: int) -> np.ndarray:
    """A sine whose instantaneous frequency is ``freq`` [Hz, per sample]."""
    return np.sin(2 * math.pi * np.cumsum(freq) / rate)


def _bandpass(x: np.ndarray, rate: int, low: float, high: float) -> np.ndarray:
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    spectrum[(freqs < low) | (freqs > high)] = 0
    return np.fft.irfft(spectrum, len(x))


def _burst(rate: int, freq: float, decay_s: float, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.sin(2 * math.pi * freq * t) * np.exp(-t / decay_s)


def _place(x: np.ndarray, event: np.ndarray, at: int) -> None:
    end = min(len(x), at + len(event))
    if at < end:
        x[at:end] += event[: end - at]


def _event(kind: str, n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / rate
    if kind == "vibrato":  # a steady pitch wobbling in frequency at 5-9 Hz
        f0, depth, speed = rng.uniform(400, 900), rng.uniform(0.03, 0.08), rng.uniform(5, 9)
        return _tone(f0 * (1 + depth * np.sin(2 * math.pi * speed * t)), rate)
    if kind == "tremolo":  # a steady pitch wobbling in loudness at 6-14 Hz
        f0, speed = rng.uniform(500, 1400), rng.uniform(6, 14)
        return np.sin(2 * math.pi * f0 * t) * (0.5 + 0.5 * np.sin(2 * math.pi * speed * t)) ** 2
    if kind == "siren":  # two pitches alternating every 80-160 ms
        lo, step, half = rng.uniform(450, 800), rng.uniform(1.25, 1.5), rng.uniform(0.08, 0.16)
        high = (t // half) % 2 == 1
        return _tone(np.where(high, lo * step, lo), rate) * (0.8 + 0.2 * np.sin(2 * math.pi * 3 * t))
    if kind == "birdsong":  # a run of 25-50 ms up-chirps near 2-3.4 kHz
        x = np.zeros(n)
        at = int(rng.integers(0, rate // 40))
        while at < n:
            m = int(rate * rng.uniform(0.025, 0.05))
            tt = np.arange(m) / rate
            f0 = rng.uniform(1900, 2500)
            chirp = _tone(f0 + (rng.uniform(600, 900)) * tt / tt[-1], rate) * np.hanning(m)
            _place(x, chirp, at)
            at += m + int(rate * rng.uniform(0.02, 0.06))
        return x
    if kind == "dripping":  # sparse short blips whose pitch rises as they decay
        x = np.zeros(n)
        for _ in range(int(rng.integers(2, 5))):
            m = int(rate * 0.06)
            tt = np.arange(m) / rate
            f0 = rng.uniform(700, 1300)
            blip = _tone(f0 * (1 + 8 * tt), rate) * np.exp(-tt / 0.012)
            _place(x, blip, int(rng.integers(0, max(1, n - m // 2))))
        return x
    if kind == "buzz":  # a low sawtooth, rich in harmonics, band-limited to 3.4 kHz
        f0 = rng.uniform(70, 160)
        phase = (f0 * t + rng.random()) % 1.0
        return _bandpass(2 * phase - 1, rate, 20, 3400)
    if kind == "knocking":  # 2-5 regular low damped thuds
        x = np.zeros(n)
        count, freq = int(rng.integers(2, 6)), rng.uniform(90, 220)
        gap = n // (count + 1)
        for k in range(count):
            thud = _burst(rate, freq, rng.uniform(0.015, 0.03), 0.12)
            thud[: int(rate * 0.05)] += 0.3 * _burst(rate, freq * 2.7, 0.008, 0.05)
            _place(x, thud, gap // 2 + k * gap + int(rng.integers(-rate // 200, rate // 200 + 1)))
        return x
    if kind == "noise_sweep":  # a narrow noise band whose centre sweeps over 300-3000 Hz
        noise = rng.standard_normal(n)
        lo, hi = rng.uniform(300, 600), rng.uniform(2200, 3000)
        if rng.random() < 0.5:
            lo, hi = hi, lo
        frames = 8
        x = np.zeros(n)
        for k in range(frames):  # overlapping windowed segments, each band-passed at its own centre
            centre = lo + (hi - lo) * k / (frames - 1)
            a = k * n // frames
            seg = noise[max(0, a - n // (2 * frames)) : a + n // frames + n // (2 * frames)]
            seg = _bandpass(seg, rate, centre * 0.85, centre * 1.15) * np.hanning(len(seg))
            _place(x, seg, max(0, a - n // (2 * frames)))
        return x / (np.abs(x).max() + 1e-9)
    if kind == "pulsing_noise":  # broadband noise switched on and off at 3-8 Hz
        speed = rng.uniform(3, 8)
        gate = (np.sin(2 * math.pi * speed * t + rng.uniform(0, 2 * math.pi)) > 0).astype(float)
        gate = np.convolve(gate, np.ones(rate // 200) / (rate // 200), mode="same")
        x = _bandpass(rng.standard_normal(n), rate, 100, 3400) * gate
        return x / (np.abs(x).max() + 1e-9)
    if kind == "double_whistle":  # two 120-200 ms falling whistles with a gap
        x = np.zeros(n)
        m = int(rate * rng.uniform(0.12, 0.2))
        tt = np.arange(m) / rate
        f0, f1 = rng.uniform(1500, 2200), rng.uniform(700, 1000)
        whistle = _tone(f0 + (f1 - f0) * tt / tt[-1], rate) * np.hanning(m)
        start = int(rng.integers(0, max(1, n - 2 * m - rate // 20)))
        _place(x, whistle, start)
        _place(x, whistle, start + m + int(rate * rng.uniform(0.03, 0.08)))
        return x
    raise ValueError(f"unknown sound class {kind!r}; known: {', '.join(SOUNDS22K_CLASSES)}")


def _background(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Pink or brown noise of unit peak, sometimes with 50/60 Hz hum and its harmonics."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / rate)
    power = 1.0 if rng.random() < 0.5 else 2.0  # 1/f (pink) or 1/f² (brown) power
    spectrum /= np.maximum(freqs, 20.0) ** (power / 2)
    x = np.fft.irfft(spectrum, n)
    x /= np.abs(x).max() + 1e-9
    if rng.random() < 0.3:
        mains, t = rng.choice([50.0, 60.0]), np.arange(n) / rate
        x += 0.5 * sum(np.sin(2 * math.pi * k * mains * t) / k for k in (1, 2, 3))
    return x / (np.abs(x).max() + 1e-9)


def synthesise_clip(kind: str, rng: np.random.Generator, rate: int, seconds: float) -> np.ndarray:
    """One clip of ``seconds`` at ``rate``: the event (peak -24 to -3 dBFS) at a random onset,
    over background noise 15-40 dB below it."""
    n = int(round(rate * seconds))
    length = int(n * rng.uniform(0.6, 0.95))
    onset = int(rng.integers(0, n - length + 1))
    event = _event(kind, length, rate, rng)
    event /= np.abs(event).max() + 1e-9
    fade = min(length // 2, int(0.005 * rate))
    ramp = np.linspace(0, 1, fade) if fade > 0 else np.zeros(0)
    event[:fade] *= ramp
    event[length - fade :] *= ramp[::-1]
    peak = 10 ** (rng.uniform(-24, -3) / 20)
    clip = _background(n, rate, rng) * peak * 10 ** (-rng.uniform(15, 40) / 20)
    clip[onset : onset + length] += event * peak
    return np.clip(clip, -1, 1).astype(np.float32)


def write_sounds22k_dataset(
    root: str | Path,
    clips_per_class: int = 50,
    sample_rate: int = 22050,
    seconds: tuple[float, float] = (0.5, 0.9),
    seed: int = 0,
) -> Path:
    """Write ``root/audio/*.wav`` (16-bit) and ``root/meta/esc50.csv``: folds 1-5 in turn,
    each clip ``seconds[0]``-``seconds[1]`` long (drawn per clip)."""
    root = Path(root)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    rows = []
    for target, kind in enumerate(SOUNDS22K_CLASSES):
        rng = np.random.default_rng([seed, target, 22050])
        for i in range(clips_per_class):
            fold = i % 5 + 1
            name = f"{fold}-{22000 + target * 1000 + i}-A-{target}.wav"
            clip = synthesise_clip(kind, rng, sample_rate, float(rng.uniform(*seconds)))
            soundfile.write(root / "audio" / name, clip, sample_rate, subtype="PCM_16")
            rows.append(
                {
                    "filename": name,
                    "fold": fold,
                    "target": target,
                    "category": kind,
                    "esc10": False,
                    "src_file": 22000 + target * 1000 + i,
                    "take": "A",
                }
            )
    with (root / "meta" / "esc50.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root
