"""Losses of Sec. II-C on the output penalties y (N, 10): a mean over the patterns, or with
`per_pattern=True` one loss per pattern (evaluation sums those exactly, repro.train.evaluate).

Eq. 8 (maximum likelihood):  E = y_D, the penalty of the correct class.
Eq. 9 (MAP):                 E = y_D + log(e^-j + sum_i e^-y_i), j > 0; the log-sum-exp is taken over
                             the 11 terms (-j, -y_0 ... -y_9) at once, so it never overflows.
Cross-entropy (modern head): softmax over the logits -y; eq. 9 without its e^-j term.
"""
import torch
import torch.nn.functional as F


def ml_loss(y, labels, per_pattern=False):
    loss = y.gather(1, labels.view(-1, 1)).squeeze(1)
    return loss if per_pattern else loss.mean()


def map_loss(y, labels, j, per_pattern=False):
    competitors = torch.cat([y.new_full((y.shape[0], 1), j), y], dim=1)
    loss = y.gather(1, labels.view(-1, 1)).squeeze(1) + torch.logsumexp(-competitors, dim=1)
    return loss if per_pattern else loss.mean()


def ce_loss(y, labels, per_pattern=False):
    return F.cross_entropy(-y, labels, reduction="none" if per_pattern else "mean")


def make_loss(config):
    """The config's loss as fn(y, labels, per_pattern=False)."""
    if config.loss == "ml":
        return ml_loss
    if config.loss == "ce":
        return ce_loss
    j = float(config.j)
    return lambda y, labels, per_pattern=False: map_loss(y, labels, j, per_pattern)
