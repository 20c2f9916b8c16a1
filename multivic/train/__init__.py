"""Training: :func:`fit` runs the one loop (loop.py); the modules beside it build its parts.

    settings.py           TrainSettings, the scalar settings of a run
    data.py               the loader: epoch order and per-sample augmentation seeds
    optimizers.py         the run's optimisers as one (one GradScaler update per step)
    schedule.py           warm-up + cosine per optimiser, counted in the steps that run
    checkpoint.py         atomic checkpoints, LATEST, resume
    background_writer.py  a checkpoint's files written on a thread while training goes on
    progress.py           progress bar and history.csv
"""

from multivic.train.checkpoint import save_checkpoint
from multivic.train.loop import FitResult, fit
from multivic.train.settings import TrainSettings

__all__ = ["FitResult", "TrainSettings", "fit", "save_checkpoint"]
