"""Per-sample costs behind docs/scaling.md, measured on this machine (one thread each).

    uv run python benchmarks/capacity.py            # about a minute on an idle core

- decode: a COCO-sized JPEG (640×480, quality 90, ~100-200 KB) from bytes to an RGB image;
- augment: the paper's image view (random resized crop to 224, flip, colour jitter, grayscale,
  blur, solarisation: multivic's image train view) of the decoded image, to a normalised tensor;
- read from a shard: a sample of a local tar shard through webdataset (bytes only);
- tokenise: one caption with the word tokenizer, padded to 48 tokens;
- forward + backward per sample of a ResNet-50 at 224 (batch 8) and of the VSE++ GRU
  (batch 64, 300-d words, 1024-d hidden), float32 on the CPU: what a core would do, for
  scale only (the plan uses published GPU throughputs for the model).

Each figure is the median over --repeats timings (CPU time of this process) of a loop, divided
by the samples in it.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402


def timed(fn, per: int, repeats: int) -> float:
    """CPU seconds per sample: median over ``repeats`` calls of ``fn`` (which handles ``per``
    samples). CPU time of this (single-threaded) process, not wall time, so that other
    processes sharing the cores do not inflate it."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times) / per


def coco_like_jpeg(seed: int = 0) -> bytes:
    """A 640×480 JPEG with smooth structure and texture, about the size of a COCO image."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:480, 0:640] / 80.0
    base = np.stack([np.sin(x + c) * np.cos(y * (1 + c / 3)) for c in range(3)], -1) * 90 + 128
    img = np.clip(base + rng.normal(0, 18, base.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)
    from multivic.modalities import create_modality

    jpeg = coco_like_jpeg()
    rows = []
    decode = timed(lambda: [Image.open(io.BytesIO(jpeg)).convert("RGB") for _ in range(20)], 20, args.repeats)
    rows.append(("decode JPEG 640×480", decode, f"{len(jpeg) / 1024:.0f} KB"))
    image = Image.open(io.BytesIO(jpeg)).convert("RGB")
    modality = create_modality("image", {"image_size": 224})
    for name, view in (
        ("augment, view 1 (blur p 1.0)", {}),
        ("augment, view 2 (blur 0.1, solarise 0.2)", {"blur_p": 0.1, "solarize_p": 0.2}),
    ):
        transform = modality.train_view(**view)
        rows.append((name, timed(lambda: [transform(image) for _ in range(20)], 20, args.repeats), "224 px"))

    from webdataset import TarWriter

    from multivic.data.formats.webdataset import read_raw_samples

    with tempfile.TemporaryDirectory() as tmp:
        shard = str(Path(tmp) / "s.tar")
        with TarWriter(shard, encoder=False) as w:
            for i in range(200):
                w.write({"__key__": f"{i:06d}", "jpg": jpeg, "json": b'{"captions": ["a cat on a mat"]}'})
        rows.append(
            (
                "read from a local shard",
                timed(lambda: list(read_raw_samples(shard, [])), 200, args.repeats),
                "bytes only",
            )
        )

    text = create_modality("text", {"max_caption_tokens": 48, "min_word_count": 1})
    text.fit(["a man riding a wave on top of a surfboard"] * 10)
    collate = text.collate()
    captions = ["a man riding a wave on top of a surfboard"] * 64
    rows.append(("tokenise a caption", timed(lambda: collate(captions), 64, args.repeats), "word, 48 tokens"))

    from multivic.registry import create_encoder

    for name, kw, batch, make in (
        ("resnet50", {}, 8, lambda b: torch.randn(b, 3, 224, 224)),
        (
            "gru",
            {"vocab_size": 10000, "embed_dim": 300, "hidden_dim": 1024},
            64,
            lambda b: {
                "input_ids": torch.randint(1, 10000, (b, 12)),
                "attention_mask": torch.ones(b, 12, dtype=torch.long),
            },
        ),
    ):
        net = create_encoder(name, **kw)
        x = make(batch)

        def step() -> None:
            net.zero_grad(set_to_none=True)
            net(x).sum().backward()

        rows.append(
            (
                f"forward + backward, {name} (CPU, 1 thread)",
                timed(step, batch, max(2, args.repeats // 2)),
                f"batch {batch}",
            )
        )
    print("| per sample, this machine (1 thread) | time | note |")
    print("|---|---:|---|")
    for name, seconds, note in rows:
        print(f"| {name} | {seconds * 1e3:.2f} ms | {note} |")


if __name__ == "__main__":
    main()
