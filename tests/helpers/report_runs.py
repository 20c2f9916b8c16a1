"""Hand-made run directories (config.yaml, history.csv, metrics.json) for the report and compare tests."""

import csv
import json
import math

import yaml

METRICS = {
    "img/linear_top1": 41.25,
    "img/knn_top1": 38.5,
    "img/std_mean": 0.4146,
    "txt/knn_top1": 12.0,
    "i2t_r1": 7.5,
    "rsum": 61.0,
}


def history_rows(steps=24, per_epoch=8, collapse_from=None, rankme=True, alarm=True):
    rows = []
    for step in range(1, steps + 1):
        std = 0.05 if collapse_from and step >= collapse_from else 0.3 + 0.02 * step
        row = {
            "step": step,
            "epoch": (step - 1) // per_epoch,
            "lr": 1e-3 * step / steps,
            "lr/head": 1e-4 * step / steps,
            "loss": 20 - 0.3 * step,
            "invariance": 0.2 / step,
            "variance": 0.7 - 0.01 * step,
            "covariance": 0.05 * step,
        }
        for side in ("a", "b"):
            row |= {
                f"{side}/std_mean": std,
                f"{side}/std_min": std / 2,
                f"{side}/std_below_gamma": 1.0 if std < 1 else 0.5,
                f"{side}/cov_offdiag_rms": 0.01 * math.sqrt(step),
            }
            if rankme:
                row[f"{side}/rankme"] = 2.0 if collapse_from and step >= collapse_from else 40.0 + step
        row |= {"skipped_steps": 0, "bad_samples": 1, "samples_per_s": 200.0 + step}
        if alarm:
            row["collapse_alarm"] = (
                "img (a): std 0.05 < 0.1; txt (b): std 0.05 < 0.1" if collapse_from and step >= collapse_from else ""
            )
        rows.append(row)
    return rows


def make_run(root, rows, metrics=METRICS, config=None):
    root.mkdir(parents=True)
    config = config or {
        "model": {
            "shared": False,
            "branch_a": {"name": "img", "encoder": "resnet18", "expander": "512-512-128"},
            "branch_b": {"name": "txt", "encoder": "text_cnn", "expander": "512-512-128"},
        },
        "loss": {"name": "vicreg", "sim_coeff": 25.0, "std_coeff": 25.0, "cov_coeff": 1.0, "gamma": 0.8},
        "optim": {"name": "adamw", "base_lr": 0.002},
        "train": {"epochs": 3, "batch_size": 64, "alarm_min_std": 0.1},
        "data": {"format": "image_folder", "builtin": "shapes"},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    with (root / "history.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if metrics is not None:
        (root / "metrics.json").write_text(json.dumps(metrics))
    return root
