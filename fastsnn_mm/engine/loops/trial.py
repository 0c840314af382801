"""Try a change, judge it, keep it or go back: the one rule every stage of
fine-tuning follows, so that the SNN never leaves a stage scoring worse on
its judge than it came in.

A :class:`Trial` remembers the values of the tensors a stage may change
(weights, and thresholds where a stage tunes them) when it begins.
:func:`keep_or_revert` then asks the judge: the task metric on the judging
batches where there is one (kept unless it fell), else a held-out score
(kept unless it rose).
"""
import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch


def snapshot(tensors):
    """Detached copies of ``tensors``, to go back to with :func:`restore`."""
    return [t.detach().clone() for t in tensors]


@torch.no_grad()
def restore(tensors, values):
    for t, v in zip(tensors, values):
        t.copy_(v)


class Trial:
    """The tensors a stage may change, and their values before it."""

    def __init__(self, tensors):
        self.tensors = list(tensors)
        self.saved = snapshot(self.tensors)

    def revert(self):
        """Back to the values the trial began with."""
        restore(self.tensors, self.saved)

    def current(self):
        """A copy of the values now (e.g. the best candidate so far)."""
        return snapshot(self.tensors)

    def put(self, values):
        restore(self.tensors, values)

    def changed_names(self, model):
        """Names of ``model``'s parameters on trial that differ from their
        value before it."""
        index = {id(t): i for i, t in enumerate(self.tensors)}
        return [n for n, p in model.named_parameters() if id(p) in index
                and not torch.equal(p.detach(), self.saved[index[id(p)]])]


@dataclass
class Verdict:
    """What the judge said about a trial."""

    kept: bool
    #: 'task metric' or 'held-out score' when reverted, else None
    reverted_by: Optional[str] = None
    metric_before: Optional[float] = None
    metric_after: Optional[float] = None


def keep_or_revert(trial: Trial, progress, measure: Optional[Callable],
                   score_before=None, score_after=None,
                   must_gain=False) -> Verdict:
    """Keep ``trial``'s change or revert it.

    With ``measure`` (the task metric on the judging batches) and a metric
    on record in ``progress``: kept when the metric did not fall, and then
    recorded as the metric now. Otherwise, when held-out scores are given
    (lower is better): kept unless ``score_after > score_before``. A NaN
    metric or score (weights blown up) counts as harm. With
    neither: kept. ``must_gain``: kept only if the change helped: the
    metric rose, or stayed while the score fell (no metric: the score
    fell).
    """
    before = progress.metric
    score_fell = score_before is not None and score_after < score_before
    if measure is not None and before is not None:
        after = measure()
        # a judge that measured NaN (weights blown up) saw harm
        worse = math.isnan(after) or (
            not (after > before or (after == before and score_fell))
            if must_gain else after < before)
        if worse:
            trial.revert()
            return Verdict(False, 'task metric', before, after)
        progress.metric = after
        return Verdict(True, None, before, after)
    if score_before is not None and (
            not score_after <= score_before or (must_gain and not score_fell)):
        trial.revert()
        return Verdict(False, 'held-out score', before, before)
    return Verdict(True, None, before, before)


def whole_model_row(label, index, lr, before, after, verdict: Verdict,
                    changed):
    """The report row of a stage that tunes all weights at once (joint,
    task loss): the shape of a layer group's row, with no per-layer
    mismatch, so the report and the resume path read every stage alike."""
    return dict(layer=label, index=index, lr=lr,
                tried=[dict(lr=lr, loss=after, mismatch=None)],
                loss_before=before,
                loss_after=after if verdict.kept else before,
                mismatch_before=None, mismatch_after=None,
                metric_before=verdict.metric_before,
                metric_after=verdict.metric_after,
                reverted=not verdict.kept, reverted_by=verdict.reverted_by,
                changed=changed)
