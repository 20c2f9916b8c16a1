"""Labelled audio on disk: the ESC-50 layout and a generic folder + CSV.

ESC-50: ``root/audio/*.wav`` and ``root/meta/esc50.csv`` with columns filename, fold, target,
category. Generic: ``root/<csv>`` with columns ``file`` (relative to root) and ``label``, and
optionally ``fold`` (1-5) or a source column naming the recording each clip was cut from
(``src_file`` as ESC-50 names it, else ``source``; looked for in that order). Folds come from
``fold`` when present. Otherwise, with a source column, whole sources are dealt to folds 1-5
so that all clips of one recording share a fold (largest source first, each to the fold with
the fewest clips so far, ties to the lower fold; a blank source counts as its own recording).
With neither, files take folds 1-5 in turn, in CSV order, and a warning says so: clips of one
recording may then sit in both train and val. The split ``val`` is the test fold, ``train``
the other folds.
"""

from __future__ import annotations

import io
import logging
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
from torch.utils.data import Dataset

from multivic.errors import DataError
from multivic.files import MAX_INDEX_BYTES, inside_folder, read_file_bytes
from multivic.modalities.waveform import audio_frames, load_mono

logger = logging.getLogger("multivic")

ESC50_COLUMNS = ("filename", "fold", "target", "category")
CSV_COLUMNS = ("file", "label")
SOURCE_COLUMNS = ("src_file", "source")  # looked for in this order; ESC-50 calls it src_file
N_FOLDS = 5
FOLDS = tuple(range(1, N_FOLDS + 1))

# CSVs already warned about (the train and val splits each read the CSV: warn once, not twice).
_warned_ungrouped: set[Path] = set()


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    fix = "point data.meta_csv at the data set's table of files and labels"
    data = read_file_bytes(path, fix, MAX_INDEX_BYTES, DataError)
    try:
        table = pd.read_csv(io.BytesIO(data))
    except Exception as exc:
        raise DataError(f"cannot read meta CSV {path}: {str(exc).splitlines()[0]}") from None
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise DataError(
            f"meta CSV {path} lacks column(s) {', '.join(missing)} (it has: {', '.join(map(str, table.columns))})"
        )
    _check_filled(table, [c for c in required if c != "fold"], path)  # an empty fold: _check_folds says so
    _check_unique(table, required[0], path)
    return table


def _check_filled(table: pd.DataFrame, columns: Sequence[str], path: Path) -> None:
    """A DataError naming the first row with an empty cell in ``columns`` (an empty file name would
    be read as the file "nan", an empty label as a class of its own or a crash)."""
    for column in columns:
        empty = table[column].isna() | (table[column].astype(str).str.strip() == "")
        if empty.any():
            row = int(empty.to_numpy().argmax())
            raise DataError(f"meta CSV {path}, row {row + 2}: its {column} is empty: fill it in or remove the row")


def _check_unique(table: pd.DataFrame, column: str, path: Path) -> None:
    """A DataError naming the rows that list one clip twice: it would be read twice per epoch, or
    sit in both the train and the val split (its own test)."""
    names = table[column].astype(str).str.strip()
    repeated = names.duplicated()
    if repeated.any():
        row = int(repeated.to_numpy().argmax())
        first = int((names == names.iloc[row]).to_numpy().argmax())
        raise DataError(
            f"meta CSV {path}, row {row + 2}: {column} {names.iloc[row][:80]!r} is listed again (row {first + 2} "
            "too): list each clip once"
        )


def _check_targets(table: pd.DataFrame, source: Path) -> pd.DataFrame:
    """``table`` with ESC-50's ``target`` column as integers; a DataError naming the first row
    whose target is not one (text, 1e30, a fraction)."""
    numbers = [_fold_number(v) for v in table["target"]]
    for row, (value, number) in enumerate(zip(table["target"], numbers)):
        if number is None or abs(number) >= 1 << 31:
            raise DataError(
                f"meta CSV {source}, row {row + 2} ({table['filename'].iloc[row]}): target {str(value)[:40]!r} is "
                "not a class number: correct the target column"
            )
    return table.assign(target=numbers)


class LabelledAudio(Dataset):
    """Items ``(transform(waveform [T]), label)`` of mono clips resampled to ``sample_rate``.

    Every file's header is read up front: an unreadable or empty file is a DataError naming
    it; a file shorter than ``min_samples`` (at its own rate, after conversion) is skipped,
    and the skips are counted in one warning.
    """

    def __init__(
        self,
        files: list[tuple[Path, int]],
        classes: list[str],
        sample_rate: int,
        transform: Callable | None = None,
        min_seconds: float = 0.0,
    ) -> None:
        if sample_rate <= 0:
            raise DataError(f"sample rate must be > 0; got {sample_rate}")
        kept, short = [], []
        for path, label in files:
            if not path.is_file():
                raise DataError(f"audio file {path} listed in the meta CSV does not exist")
            frames, rate = audio_frames(path)
            if frames == 0:
                raise DataError(f"audio file {path} is empty (0 samples)")
            if frames / rate < min_seconds:
                short.append(path)
                continue
            kept.append((path, label))
        if short:
            logger.warning("skipped %d clips shorter than %.3f s, e.g. %s", len(short), min_seconds, short[0])
        if not kept:
            raise DataError("no usable audio clips in this split")
        self.files = kept
        self.classes = classes
        self.targets = [label for _, label in kept]
        self.sample_rate = sample_rate
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def path(self, index: int) -> Path:
        return self.files[index][0]

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, label = self.files[index]
        wave = load_mono(path, self.sample_rate)
        return (self.transform(wave) if self.transform else wave), label


def _fold_number(value: Any) -> int | None:
    """The integer a fold cell holds (3, "3", 3.0, "3.0"); None when it holds no integer."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) and number == int(number) else None


def _check_folds(table: pd.DataFrame, allowed: Sequence[int], clip_column: str, source: Path) -> pd.DataFrame:
    """``table`` with its ``fold`` column as integers, each one of ``allowed``; a DataError
    naming the first row that is not (a fold outside them would silently become training data)."""
    numbers = [_fold_number(v) for v in table["fold"]]
    for row, (value, number) in enumerate(zip(table["fold"], numbers), start=1):
        if number is None or number not in allowed:
            raise DataError(
                f"meta CSV {source}, row {row} ({table[clip_column].iloc[row - 1]}): fold {_shown(value, number)} is "
                f"not one of the folds {', '.join(map(str, allowed))}: correct the fold column"
            )
    return table.assign(fold=numbers)


def _shown(value: Any, number: int | None) -> str:
    if pd.isna(value):
        return "empty"
    if number is not None:
        return str(number)
    return repr(value) if isinstance(value, str) else str(value)


def _split(table: pd.DataFrame, split: str, test_fold: int, source: Path) -> pd.DataFrame:
    folds = sorted(int(f) for f in table["fold"].unique())
    if test_fold not in folds:
        raise DataError(f"test fold {test_fold} is not among the folds {folds} of {source}: set data.test_fold")
    chosen = table[table["fold"] == test_fold] if split == "val" else table[table["fold"] != test_fold]
    if chosen.empty:
        raise DataError(f"the {split} split of {source} is empty (test fold {test_fold})")
    return chosen


def esc50_files(
    root: Path, split: str, test_fold: int, folds: Sequence[int] = FOLDS
) -> tuple[list[tuple[Path, int]], list[str]]:
    """(path, label) pairs and class names of an ESC-50 folder's ``split``; every row's fold
    must be one of ``folds`` (the format's)."""
    meta = root / "meta" / "esc50.csv"
    table = _check_targets(_check_folds(_read_csv(meta, ESC50_COLUMNS), folds, "filename", meta), meta)
    classes_by_target = dict(zip(table["target"].astype(int), table["category"].astype(str)))
    classes = [classes_by_target[t] for t in sorted(classes_by_target)]
    index = {t: i for i, t in enumerate(sorted(classes_by_target))}
    chosen = _split(table, split, test_fold, meta)
    audio = root / "audio"
    return [
        (inside_folder(audio, str(f), f"{meta} row {n + 2} (filename)"), index[int(t)])
        for n, f, t in zip(chosen.index, chosen["filename"], chosen["target"])
    ], classes


def _folds_by_source(sources: pd.Series) -> list[int]:
    """Fold 1-5 of each row such that rows with the same source share a fold.

    Greedy balancing by clip count: sources go largest first (ties in order of first
    appearance), each to the fold holding the fewest clips so far (ties to the lower fold).
    Deterministic for a given CSV, and close to equal folds even when sources differ in size,
    which plain round-robin over sources would not give. A blank source is its own group,
    since nothing says which recording the clip came from.
    """
    keys: list[Any] = [("row", i) if pd.isna(s) else s for i, s in enumerate(sources)]
    groups: dict[Any, list[int]] = {}
    for row, key in enumerate(keys):
        groups.setdefault(key, []).append(row)
    sizes = [0] * N_FOLDS
    fold_of_row = [0] * len(keys)
    # sorted() is stable, so equal-size groups keep their first-appearance order.
    for rows in sorted(groups.values(), key=len, reverse=True):
        fold = min(range(N_FOLDS), key=lambda f: sizes[f])
        sizes[fold] += len(rows)
        for row in rows:
            fold_of_row[row] = fold + 1
    return fold_of_row


def csv_audio_files(
    root: Path, csv_name: str, split: str, test_fold: int, folds: Sequence[int] = FOLDS
) -> tuple[list[tuple[Path, int]], list[str]]:
    """(path, label) pairs and class names of a generic folder + CSV's ``split``.

    Folds come from the ``fold`` column, each one of ``folds`` (the format's); without it from
    the first source column of ``SOURCE_COLUMNS`` present (whole recordings per fold, see ``_folds_by_source``); without
    either, rows take folds 1-5 in turn, with a warning that clips of one recording may then
    be split between train and val.
    """
    meta = root / csv_name
    table = _read_csv(meta, CSV_COLUMNS)
    if "fold" in table.columns:
        table = _check_folds(table, folds, "file", meta)
    else:
        source = next((c for c in SOURCE_COLUMNS if c in table.columns), None)
        if source is not None:
            # Clips cut from one recording are near-duplicates: keeping them in one fold stops
            # the val split from scoring clips whose siblings were trained on.
            table = table.assign(fold=_folds_by_source(table[source]))
        else:
            if meta not in _warned_ungrouped:
                _warned_ungrouped.add(meta)
                logger.warning(
                    "%s has no fold or source column: files take folds 1-%d in turn, so clips cut from the same "
                    "recording may land in different folds (train and val); add a 'fold' column, or a '%s' column "
                    "naming each clip's recording",
                    meta,
                    N_FOLDS,
                    SOURCE_COLUMNS[0],
                )
            table = table.assign(fold=[i % N_FOLDS + 1 for i in range(len(table))])
    classes = sorted(table["label"].astype(str).unique())
    index = {c: i for i, c in enumerate(classes)}
    chosen = _split(table, split, test_fold, meta)
    return [
        (inside_folder(root, str(f), f"{meta} row {n + 2} (file)"), index[str(c)])
        for n, f, c in zip(chosen.index, chosen["file"], chosen["label"])
    ], classes
