"""The evaluation protocols a data format can name: classification and retrieval.

Each takes the run's data (:class:`~multivic.data.formats.DataSetup`), the trained branches by name
(each with its input pipeline, ``branch.preprocess``), a device and :class:`EvalSettings`, and
returns an :class:`~multivic.evaluation.result.EvalResult`: flat metrics, and the arrays and
examples the report draws (each branch's spectra and per-dimension std on the evaluation split).
A format says which applies (``DataFormat.protocol``); new protocols are added to :data:`PROTOCOLS`.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils.data import Dataset

from multivic.branch import Branch
from multivic.collapse import branch_collapse
from multivic.data.formats import DataFormat, DataSetup, LabelledViews
from multivic.errors import ConfigError, RunDirError
from multivic.evaluation.classification import evaluate_classification
from multivic.evaluation.embed import Embedded, embed_dataset
from multivic.evaluation.examples import retrieval_examples
from multivic.evaluation.result import EvalResult
from multivic.evaluation.retrieval import retrieval_recall, retrieval_recall_folds
from multivic.modalities import Transformed, identity

logger = logging.getLogger("multivic")

# The VSE++ 1K protocol: with 5000 test items, also the mean over 5 folds of 1000.
ONE_K_PROTOCOL_ITEMS = 5000


@dataclass(frozen=True)
class EvalSettings:
    """How the protocols evaluate; built from the recipe's ``eval`` section (the schema holds
    the defaults: :func:`multivic.build.build_eval_settings`).

    Attributes: the ``eval.*`` keys of the same names; ``num_workers`` (data.num_workers),
    ``seed``; ``skip_unreadable``: classification splits drop an unreadable sample (warned about
    with its path) instead of stopping, off under data.strict (retrieval sets need every item and
    always stop); ``gamma``: the variance term's target std, for std_below_gamma.
    """

    batch_size: int
    num_workers: int
    knn_k: int
    knn_temperature: float
    linear_epochs: int
    linear_lr: float
    linear_weight_decay: float
    max_train_samples: int | None
    seed: int
    cross_validate: bool
    retrieval_space: str
    skip_unreadable: bool
    gamma: float


Splits = tuple[Dataset, Dataset]  # train and val sample dicts of one held-out fold


def _read_splits(data: DataSetup, fmt: DataFormat) -> Splits:
    """The train and val samples of ``fmt``: read once, probed by every branch."""
    return fmt.split("train", data.modalities), fmt.split("val", data.modalities)


def _probe(branch: Branch, splits: Splits, device: torch.device, s: EvalSettings) -> EvalResult:
    modality, pipeline = branch.modality, branch.preprocess
    view = pipeline.eval_view()
    train, val = (LabelledViews(samples, modality, view) for samples in splits)
    return evaluate_classification(
        branch,
        train,
        val,
        len(train.classes),
        device,
        batch_size=s.batch_size,
        num_workers=s.num_workers,
        knn_k=s.knn_k,
        knn_temperature=s.knn_temperature,
        linear_epochs=s.linear_epochs,
        linear_lr=s.linear_lr,
        linear_weight_decay=s.linear_weight_decay,
        max_train_samples=s.max_train_samples,
        seed=s.seed,
        collate=pipeline.collate(),
        skip_unreadable=s.skip_unreadable,
        gamma=s.gamma,
    )


def classification(data: DataSetup, branches: dict[str, Branch], device: torch.device, s: EvalSettings) -> EvalResult:
    """Linear probe, k-NN and collapse statistics of each branch on the format's val split.

    With ``cross_validate`` on fold-based data, also the mean over every fold held out in turn,
    as ``<branch>/linear_top1_cv5_seen`` and ``<branch>/knn_top1_cv5_seen``: "seen" because
    pretraining used every fold but the recipe's test fold, so the other folds' clips were in
    the encoder's training data. The headline numbers are the test fold's, unseen in pretraining.
    """
    fmt = data.format
    test_fold = fmt.options().get("test_fold")  # an option of the formats that have folds
    other_folds = [k for k in fmt.folds if k != test_fold] if s.cross_validate else []
    main_splits = _read_splits(data, fmt)
    fold_splits = {k: _read_splits(data, dataclasses.replace(fmt, test_fold=k)) for k in other_folds}
    result = EvalResult()
    for name, branch in branches.items():
        main = _probe(branch, main_splits, device, s)
        result.update(main)
        if not other_folds:
            continue
        runs = [main.metrics] + [_probe(branch, fold_splits[k], device, s).metrics for k in other_folds]
        for metric in ("linear_top1", "knn_top1"):
            result.metrics[f"{name}/{metric}_cv5_seen"] = sum(r[f"{name}/{metric}"] for r in runs) / len(runs)
    if other_folds:
        logger.warning(
            "cross-validation (*_cv5_seen) probes folds the encoder was pretrained on; "
            "only the test fold %s (the plain metrics) is unseen in pretraining",
            test_fold,
        )
    return result


def _embed_items(branch: Branch, items, device: torch.device, s: EvalSettings) -> Embedded:
    pipeline = branch.preprocess
    dataset = Transformed(items, identity, pipeline.eval_view())
    return embed_dataset(
        branch, dataset, device, collate=pipeline.collate(), batch_size=s.batch_size, num_workers=s.num_workers
    )


def retrieval(data: DataSetup, branches: dict[str, Branch], device: torch.device, s: EvalSettings) -> EvalResult:
    """Cross-modal retrieval R@1/5/10, rsum and median ranks (VSE++ protocol) on the format's
    retrieval set, plus the 1K protocol (``1k/`` keys) when it has 5000 items of the first kind;
    each branch's collapse statistics on its side of the set; a few queries and their top items."""
    rs = data.format.retrieval_set(data.modalities)
    (mod_a, items_a), (mod_b, items_b) = rs.first, rs.second
    by_modality = {b.modality: b for b in branches.values()}
    if mod_a not in by_modality or mod_b not in by_modality:
        raise RunDirError(f"retrieval needs a {mod_a} branch and a {mod_b} branch; exported: {', '.join(branches)}")
    branch_a, branch_b = by_modality[mod_a], by_modality[mod_b]
    if s.retrieval_space == "representation" and branch_a.representation_dim != branch_b.representation_dim:
        raise ConfigError(
            f"eval.retrieval_space=representation needs encoders of one width; {branch_a.name} gives "
            f"{branch_a.representation_dim}, {branch_b.name} {branch_b.representation_dim}: use embedding"
        )
    out_a = _embed_items(branch_a, items_a, device, s)
    out_b = _embed_items(branch_b, items_b, device, s)
    space = "embeddings" if s.retrieval_space == "embedding" else "representations"
    emb_a, emb_b = getattr(out_a, space), getattr(out_b, space)
    result = EvalResult(retrieval_recall(emb_a, emb_b, rs.second_to_first))
    if len(items_a) == ONE_K_PROTOCOL_ITEMS:
        result.metrics.update(retrieval_recall_folds(emb_a, emb_b, rs.second_to_first, folds=5))
    for branch, out in ((branch_a, out_a), (branch_b, out_b)):
        result.update(EvalResult(*branch_collapse(branch.name, out.embeddings, out.representations, s.gamma)))
    result.examples = retrieval_examples(emb_a, emb_b, rs.second_to_first, (mod_a, items_a), (mod_b, items_b))
    return result


# Files measured by the unlabelled protocol when eval.max_train_samples leaves it open: the
# collapse statistics need a few thousand rows, not a whole data set.
UNLABELLED_SAMPLES = 4096


def unlabelled(data: DataSetup, branches: dict[str, Branch], device: torch.device, s: EvalSettings) -> EvalResult:
    """Data without labels: no probes (said once), but each branch's collapse statistics and
    spectra on up to ``eval.max_train_samples`` (default 4096) of the training files, evenly
    spaced, so metrics.json and the report still say whether the run collapsed."""
    samples = data.format.split("train", data.modalities)
    limit = min(len(samples), s.max_train_samples or UNLABELLED_SAMPLES)  # type: ignore[arg-type]
    step = max(1, len(samples) // max(1, limit))  # type: ignore[arg-type]
    chosen = list(range(0, len(samples), step))[:limit]  # type: ignore[arg-type]
    logger.info(
        "the data has no labels: the linear and k-NN probes are skipped (a labelled val split, e.g. "
        "data.format=image_folder, gives them); collapse statistics on %d training files",
        len(chosen),
    )
    result = EvalResult()
    for name, branch in branches.items():
        items = _SampleItems(samples, chosen, branch.modality)
        out = _embed_items(branch, items, device, s)
        result.update(EvalResult(*branch_collapse(name, out.embeddings, out.representations, s.gamma)))
    return result


class _SampleItems(Dataset):
    """The ``modality`` items of some samples of a split, by position."""

    def __init__(self, samples: Dataset, indices: list[int], modality: str) -> None:
        self.samples, self.indices, self.modality = samples, indices, modality

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> object:
        return self.samples[self.indices[index]][self.modality]


Protocol = Callable[[DataSetup, "dict[str, Branch]", torch.device, EvalSettings], EvalResult]
PROTOCOLS: dict[str, Protocol] = {"classification": classification, "retrieval": retrieval, "unlabelled": unlabelled}


def protocol_named(name: str) -> Protocol:
    """The evaluation protocol ``name`` (a data format's, or a shard index's); a one-line error
    naming the known ones for any other."""
    if name not in PROTOCOLS:
        raise ConfigError(f"no evaluation protocol {name!r}; known: {', '.join(sorted(PROTOCOLS))}")
    return PROTOCOLS[name]
