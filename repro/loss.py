"""Losses of Sec. II-C on the output penalties y (N, 10); every loss is a mean over the patterns.

Eq. 8 (maximum likelihood):  E = y_D, the penalty of the correct class.
Eq. 9 (MAP):                 E = y_D + log(e^-j + sum_i e^-y_i), j > 0; the log-sum-exp is taken over
                             the 11 terms (-j, -y_0 ... -y_9) at once, so it never overflows.
Cross-entropy (modern head): softmax over the logits -y; eq. 9 without its e^-j term.
"""
import torch
import torch.nn.functional as F


def ml_loss(y, labels):
    return y.gather(1, labels.view(-1, 1)).mean()


def map_loss(y, labels, j):
    competitors = torch.cat([y.new_full((y.shape[0], 1), j), y], dim=1)
    return (y.gather(1, labels.view(-1, 1)).squeeze(1) + torch.logsumexp(-competitors, dim=1)).mean()


def ce_loss(y, labels):
    return F.cross_entropy(-y, labels)


def make_loss(config):
    if config.loss == "ml":
        return ml_loss
    if config.loss == "ce":
        return ce_loss
    j = float(config.j)
    return lambda y, labels: map_loss(y, labels, j)
