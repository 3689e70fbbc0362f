"""Named initialization schemes for recurrent weights, applied one gate block at a time.

PyTorch stores an LSTM's four gates (i, f, g, o), a GRU's three (r, z, n) and a plain RNN's
single transform stacked as row blocks of one matrix. Fan-based and orthogonal schemes are
only meaningful per gate: an "orthogonal" 4H x H LSTM matrix would make no single gate
orthogonal, and Xavier would see a fan_out four times too large. So each scheme is a small
function on one (hidden_size, fan_in) block, chosen by name from `INIT_SCHEMES`, and
`init_recurrent_layer` applies `init.input` to every input-to-hidden block and
`init.recurrent` to every hidden-to-hidden block.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from rnnlab.config import InitConfig

BlockInit = Callable[[torch.Tensor], None]
"""Fills one gate block (hidden_size rows x fan_in columns) in place."""


def default_(block: torch.Tensor) -> None:
    """PyTorch's own RNN init: U(-1/sqrt(H), 1/sqrt(H)) with H the hidden size (block rows).

    Kept as a named scheme so a sweep can compare against what `nn.LSTM` does out of the box.
    """
    bound = 1.0 / math.sqrt(block.shape[0])
    nn.init.uniform_(block, -bound, bound)


def xavier_uniform_(block: torch.Tensor) -> None:
    """Glorot & Bengio 2010: keep activation and gradient variance equal across a layer.

    std = sqrt(2 / (fan_in + fan_out)), with fan_out the hidden size of one gate.
    """
    nn.init.xavier_uniform_(block)


def xavier_normal_(block: torch.Tensor) -> None:
    """Glorot & Bengio 2010, Gaussian variant: std = sqrt(2 / (fan_in + fan_out))."""
    nn.init.xavier_normal_(block)


def orthogonal_(block: torch.Tensor) -> None:
    """Saxe et al. 2014: an orthogonal W_hh preserves norms, so repeated multiplication over
    time neither explodes nor vanishes in the linear regime (all singular values are 1).

    A rectangular input block gets orthonormal rows or columns, whichever fit.
    """
    nn.init.orthogonal_(block)


def identity_(block: torch.Tensor) -> None:
    """Le et al. 2015 (IRNN): W_hh = I makes a ReLU RNN copy its state forward by default,
    which lets it learn long-range dependencies. A rectangular block gets `eye_`.
    """
    nn.init.eye_(block)


def kaiming_uniform_(block: torch.Tensor) -> None:
    """He et al. 2015: variance 2 / fan_in keeps ReLU activations from shrinking layer by layer.

    Uses the ReLU gain, std = sqrt(2 / fan_in), whatever the cell's nonlinearity.
    """
    nn.init.kaiming_uniform_(block, mode="fan_in", nonlinearity="relu")


def kaiming_normal_(block: torch.Tensor) -> None:
    """He et al. 2015, Gaussian variant: std = sqrt(2 / fan_in)."""
    nn.init.kaiming_normal_(block, mode="fan_in", nonlinearity="relu")


INIT_SCHEMES: dict[str, BlockInit] = {
    "default": default_,
    "xavier_uniform": xavier_uniform_,
    "xavier_normal": xavier_normal_,
    "orthogonal": orthogonal_,
    "identity": identity_,
    "kaiming_uniform": kaiming_uniform_,
    "kaiming_normal": kaiming_normal_,
}
"""Scheme name (as in `model.init.input` / `model.init.recurrent`) to its block initializer."""

# Row block of the forget gate in PyTorch's LSTM gate order (i, f, g, o).
_LSTM_FORGET_GATE = 1


def scheme(name: str) -> BlockInit:
    """The block initializer called `name`; a one-line error lists the valid names."""
    try:
        return INIT_SCHEMES[name]
    except KeyError:
        raise ValueError(
            f"unknown init scheme {name!r}; valid schemes: {', '.join(sorted(INIT_SCHEMES))}"
        ) from None


@torch.no_grad()
def init_recurrent_layer(rnn: nn.RNNBase, init: InitConfig) -> None:
    """Initialize every weight and bias of an `nn.RNN` / `nn.LSTM` / `nn.GRU` in place.

    Weights: each gate block of W_ih gets `init.input`, each block of W_hh gets
    `init.recurrent` and is then multiplied by `init.recurrent_scale`. Both directions and
    all layers of the module are covered.

    Biases are zeroed, except that an LSTM's forget-gate slice of `bias_ih` is set to
    `init.forget_bias` (Gers et al. 2000; Jozefowicz et al. 2015). `bias_hh` stays zero, so
    the forget gate's effective bias (the sum of the two) is exactly `forget_bias`.
    """
    input_init = scheme(init.input)
    recurrent_init = scheme(init.recurrent)
    hidden = rnn.hidden_size
    is_lstm = isinstance(rnn, nn.LSTM)
    if init.forget_bias != 0.0 and not is_lstm:
        raise ValueError(
            f"model.init.forget_bias={init.forget_bias}: only an LSTM has a forget gate "
            f"(this layer is {type(rnn).__name__}); leave it at 0"
        )
    for name, param in rnn.named_parameters():
        if name.startswith("weight_ih"):
            for block in param.split(hidden, dim=0):
                input_init(block)
        elif name.startswith("weight_hh"):
            for block in param.split(hidden, dim=0):
                recurrent_init(block)
            param.mul_(init.recurrent_scale)
        elif name.startswith("bias"):
            param.zero_()
            if is_lstm and name.startswith("bias_ih"):
                start = _LSTM_FORGET_GATE * hidden
                param[start : start + hidden].fill_(init.forget_bias)
