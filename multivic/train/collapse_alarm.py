"""The collapse alarm: a logged step whose embeddings look collapsed, named by branch and step.

A side is flagged when its per-dimension std (mean over dimensions, on the step's batch) falls
under ``min_std``, or its RankMe (uncentred, see multivic.collapse) under
``min_rankme_fraction`` × min(rows, width) of the batch it was computed on. The flag goes to
the log (a warning, once per side until it recovers) and to history.csv's ``collapse_alarm``.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("multivic")


class CollapseAlarm:
    def __init__(
        self, branch_names: dict[str, str], min_std: float, min_rankme_fraction: float, rows: int, width: int
    ) -> None:
        """``branch_names``: side ("a", "b") → branch name; ``rows`` × ``width``: the batch the
        statistics see (one process's rows, the embedding width)."""
        self.branch_names, self.min_std = branch_names, min_std
        self.min_rankme = min_rankme_fraction * min(rows, width)
        self.raised: set[str] = set()

    def check(self, step: int, row: dict[str, float | int | str]) -> str:
        """The alarm text of a history row ("" when none); warns when a side starts to collapse."""
        alarms = []
        for side, branch in self.branch_names.items():
            reasons = []
            std = row.get(f"{side}/std_mean")
            if isinstance(std, float) and std < self.min_std:
                reasons.append(f"std {std:.3g} < {self.min_std:g}")
            rank = row.get(f"{side}/rankme")
            if isinstance(rank, float) and rank < self.min_rankme:
                reasons.append(f"RankMe {rank:.3g} < {self.min_rankme:.3g}")
            if reasons:
                text = f"{branch} ({side}): {', '.join(reasons)}"
                alarms.append(text)
                if side not in self.raised:
                    logger.warning(
                        "collapse alarm at step %d: branch %s; the embeddings are collapsing (VICReg: raise "
                        "loss.std_coeff; other objectives: add the variance term, loss.variance_coeff; or lower the "
                        "learning rate, or check the views; objectives on normalised embeddings (infonce, vsepp) "
                        "leave their scale free: judge them by RankMe, train.alarm_min_std=0 turns the std check off)",
                        step,
                        text,
                    )
                self.raised.add(side)
            else:
                self.raised.discard(side)
        return "; ".join(alarms)
