"""What a run shows while it trains: the progress bar and the rows of history.csv."""

from __future__ import annotations

import sys
import time

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from multivic.run_dir import HistoryWriter, RunDir
from multivic.train.collapse_alarm import CollapseAlarm
from multivic.train.settings import TrainSettings
from multivic.train.trackers import log_row

_SHORT_TERMS = {"invariance": "inv", "variance": "var", "covariance": "cov"}


class StepLogger:
    """Called once per optimiser step on every process; every ``log_every`` steps and at the last
    step it averages the metrics over processes (a collective, hence on every process) and the
    main process appends a history row: step, epoch, lr (and lr/<label> per optimiser when there
    are several), the metrics, and samples per second since the previous row.
    """

    def __init__(
        self,
        accelerator: Accelerator,
        run_dir: RunDir,
        start_step: int,
        total_steps: int,
        settings: TrainSettings,
        alarm: CollapseAlarm | None = None,
    ) -> None:
        self.accelerator, self.settings, self.total_steps, self.alarm = accelerator, settings, total_steps, alarm
        self.history = None
        if accelerator.is_main_process:
            run_dir.root.mkdir(parents=True, exist_ok=True)
            self.history = HistoryWriter(run_dir.history, start_step)  # drops rows after a resumed checkpoint
        self.bar = tqdm(
            total=total_steps,
            initial=start_step,
            disable=not (settings.progress and accelerator.is_main_process),
            dynamic_ncols=True,
            mininterval=0.5 if sys.stderr.isatty() else 10.0,
            desc="train",
        )
        self.window_start, self.window_steps = time.perf_counter(), 0

    def step(
        self,
        step: int,
        epoch: int,
        lrs: dict[str, float],
        metrics: dict[str, torch.Tensor],
        counters: dict[str, int] | None = None,
    ) -> None:
        """``lrs``: the learning rate each optimiser used for this step, by label; ``metrics``:
        detached scalar tensors of this process's last micro-batch; ``counters``: run totals
        that are already the same on every process (skipped steps, bad samples)."""
        self.window_steps += 1
        self.bar.update(1)
        if not self.due(step):
            return
        names = sorted(metrics)
        values = self.accelerator.reduce(torch.stack([metrics[k].float() for k in names]), "mean")
        elapsed = time.perf_counter() - self.window_start
        rate = self.window_steps * self.settings.samples_per_step / max(elapsed, 1e-9)
        row: dict[str, float | int] = {"step": step, "epoch": epoch, "lr": next(iter(lrs.values()))}
        if len(lrs) > 1:
            row.update({f"lr/{label}": value for label, value in lrs.items()})
        row.update({k: float(v) for k, v in zip(names, values.tolist())})
        row.update(counters or {})
        row["samples_per_s"] = rate
        if self.alarm is not None:
            row["collapse_alarm"] = self.alarm.check(step, row) if self.accelerator.is_main_process else ""
        if self.history is not None:
            self.history.append(row)
            log_row(self.accelerator, row, step)
        terms = [k for k in names if k != "loss" and "/" not in k]  # per-branch statistics are "a/..."
        self.bar.set_postfix(self._postfix(epoch, row, terms), refresh=False)
        self.window_start, self.window_steps = time.perf_counter(), 0

    @staticmethod
    def _postfix(epoch: int, row: dict[str, float | int | str], terms: list[str]) -> dict[str, str]:
        """What the bar shows after a logged step: epoch, loss, the objective's unweighted
        ``terms`` (VICReg's three as inv/var/cov, another objective's by name), lr and samples/s."""
        shown = {"epoch": str(epoch + 1), "loss": f"{row['loss']:.3f}"}
        for key in terms:
            if isinstance(row.get(key), float):
                shown[_SHORT_TERMS.get(key, key)] = f"{row[key]:.3g}"
        shown["lr"] = f"{row['lr']:.2e}"
        shown["samples/s"] = f"{row['samples_per_s']:.0f}"
        return shown

    def due(self, step: int) -> bool:
        """Whether step ``step`` (1-based) gets a history row."""
        return step % self.settings.log_every == 0 or step == self.total_steps

    def close(self) -> None:
        self.bar.close()
