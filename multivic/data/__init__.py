"""Data: every way a data set reaches the training loop and the evaluation, in one package.

- :mod:`multivic.data.readers`: files on disk as items (image folders, audio folders and CSVs,
  COCO captions), decoded by the modalities' own readers;
- :mod:`multivic.data.formats`: the data-format registry (``image_folder``, ``esc50``,
  ``audio_csv``, ``coco``, ``cifar10``/``stl10``, ``webdataset``, plug-ins): a data set's
  splits as sample dicts, its evaluation protocol and its built-in sets;
- :mod:`multivic.data.streaming`: which process and worker reads which shard, each epoch;
- :mod:`multivic.data.loader`: the training loader (sample order, per-sample seeds, data
  faults) over map-style splits and streams alike;
- :mod:`multivic.data.builtin`: the generated built-in data sets.

What one kind of input is (read, encode to bytes and back, views, collate) belongs to its
modality (:mod:`multivic.modalities`), which this package builds on and never the reverse.
"""
