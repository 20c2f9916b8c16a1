"""What the ``multivic`` commands do; :mod:`multivic.cli` parses arguments and dispatches here.

- :mod:`~multivic.commands.train`: a recipe into a run directory (train, export, evaluate);
- :mod:`~multivic.commands.evaluate`: the evaluation protocol of a run's exported branches;
- :mod:`~multivic.commands.embed`: embeddings of a user's inputs with an exported branch;
- :mod:`~multivic.commands.compare`: one table of several runs' differing settings and metrics;
- ``multivic report`` is :func:`multivic.report.write_report` (figures and pages of a run).
"""
