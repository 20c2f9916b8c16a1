"""One process of the 2-process test: train one epoch on identical vectors, save what rank saw.

Run by torch.distributed.run; argv[1] is the output folder. Every sample is the same vector, so
two ranks' views of a step can only differ through the augmentations' random numbers.
"""

import sys
from pathlib import Path

import torch
from accelerate.utils import set_seed

from multivic import Branch, Expander, JointEmbedding
from multivic.build import build_train_settings
from multivic.run_dir import RunDir
from multivic.train import fit
from tests.helpers.toy import Linear, PairsOfVectors, adamw


class Recording(Linear):
    """Keeps its first input batch and its weights at that moment."""

    def __init__(self) -> None:
        super().__init__()
        self.first: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.first:
            self.first = {"view": x.detach().clone(), "weight": self.lin.weight.detach().clone()}
        return super().forward(x)


def main(out: Path) -> None:
    set_seed(0)  # as multivic.commands.train does before building the model
    encoder = Recording()
    branch = Branch("vec", encoder, Expander(8, "16-16"))
    model = JointEmbedding(branch, branch)
    built = encoder.lin.weight.detach().clone()
    settings = build_train_settings(progress=False, epochs=1, batch_size=16, num_workers=2, cpu=True)
    result = fit(model, PairsOfVectors(64, constant=True), RunDir(out / "run"), [adamw(model)], settings)
    rank = result.accelerator.process_index
    torch.save({"built": built, **encoder.first}, out / f"rank{rank}.pt")
    result.accelerator.wait_for_everyone()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
