"""One process of the multi-process fit tests (run by torch.distributed.run, or alone).

    python fit_worker.py OUT_DIR EPOCHS N_SAMPLES [checkpoint_every_steps]

Trains the float64 VICReg toy without batch norm (per-process BN statistics would differ from a
single process's by design) and, on the main process, saves the final weights to OUT_DIR/final.pt.
"""

import sys
from pathlib import Path

import torch

from multivic import Branch, Expander, JointEmbedding
from multivic.objectives import VICRegLoss
from multivic.run_dir import RunDir
from multivic.train import fit
from tests.helpers.toy import Linear, PairsOfVectors, adamw, settings


def model() -> JointEmbedding:
    torch.manual_seed(0)
    branch = Branch("vec", Linear(), Expander(8, "16"))  # one Linear: no batch norm
    return JointEmbedding(branch, branch, loss=VICRegLoss()).double()


def main(out: Path, epochs: int, n: int, every: int) -> None:
    m = model()
    result = fit(
        m,
        PairsOfVectors(n, dtype=torch.float64),
        RunDir(out),
        [adamw(m)],
        settings(epochs=epochs, checkpoint_every_steps=every, keep_checkpoints=10),
    )
    if result.accelerator.is_main_process:
        torch.save({k: v.cpu() for k, v in result.model.state_dict().items()}, out / "final.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 0)
