"""What the ``multivic`` commands do; :mod:`multivic.cli` parses arguments and dispatches here.

    train.py              a recipe into a run directory (train, export, evaluate)
    evaluate.py           the evaluation protocol of a run's exported branches
    evaluate_backbone.py  the same protocol on any weights (torchvision, timm, lightly, ...)
    embed.py              embeddings of a user's inputs with an exported branch
    compare.py            one table of several runs' differing settings and metrics
    sweep.py              a grid of train runs in sibling run directories, then compare
    shard.py              any data format (or a built-in set) as tar shards with an index
    show_config.py        every key of a resolved recipe, its value, default and meaning (multivic config)

``multivic report`` is :func:`multivic.report.write_report` (figures and pages of a run).
"""
