"""Training: :func:`fit` runs the one loop (loop.py); the modules beside it build its parts.

    loop.py               fit: prepare, autocast, backward, step, log, checkpoint
    settings.py           TrainSettings, the scalar settings of a run
    optimizers.py         the run's optimisers as one (one GradScaler update per step)
    schedule.py           warm-up + cosine per optimiser, counted in the steps that run
    checkpoint.py         atomic checkpoints, LATEST, resume
    background_writer.py  a checkpoint's files written on a thread while training goes on
    progress.py           progress bar and history.csv
    trackers.py           TensorBoard, W&B, MLflow, ... through Accelerate
    collapse_alarm.py     a logged step whose embeddings look collapsed
    divergence.py         non-finite losses and gradients: stop or skip
    faults.py             unreadable samples, counted and judged
    preemption.py         SIGTERM / SIGUSR1: checkpoint after this step and exit

The loader (epoch order, per-sample augmentation seeds) is :mod:`multivic.data.loader`.
"""

from multivic.train.checkpoint import save_checkpoint
from multivic.train.loop import FitResult, fit
from multivic.train.settings import TrainSettings

__all__ = ["FitResult", "TrainSettings", "fit", "save_checkpoint"]
