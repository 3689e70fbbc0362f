"""Dropout on a (batch, time, features) sequence, optionally with one mask per sequence."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SequenceDropout(nn.Module):
    """Dropout for (B, T, F) sequences; `variational=True` shares one mask over all time steps.

    Standard dropout draws a fresh mask at every step, which Gal & Ghahramani 2016 ("A
    Theoretically Grounded Application of Dropout in Recurrent Neural Networks") show is not
    a consistent Bayesian approximation for RNNs and hurts them; their variational dropout
    drops the same units at every step of a sequence. The mask has shape (B, 1, F) and is
    broadcast over time.

    Only the non-recurrent connections (inputs, between layers, outputs) are masked here: a
    mask on the hidden-to-hidden path would need a Python loop over time steps and rule out
    cuDNN's fused kernels. This is the "locked dropout" of Merity et al. 2018 (AWD-LSTM).

    The module is the identity in eval mode and when p == 0.
    """

    def __init__(self, p: float, variational: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p={p}: must be in [0, 1)")
        self.p = p
        self.variational = variational

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if not self.variational:
            return F.dropout(x, self.p, training=True)
        keep = 1.0 - self.p
        mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(keep).div_(keep)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}, variational={self.variational}"
