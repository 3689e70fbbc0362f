"""The recurrent network every task trains: encoder, a stack of RNN/LSTM/GRU layers, a head.

Each layer is its own single-layer `nn.RNN` / `nn.LSTM` / `nn.GRU` (so cuDNN's fused kernels
run on a GPU) instead of one `num_layers=N` module, so that dropout can be applied between
layers in our own (optionally variational) way and so that diagnostics can hook each layer.

Hooking a layer: `net.layers[i]` is an instance of `nn.RNN` / `nn.LSTM` / `nn.GRU` (it owns
`weight_hh_l0` etc.) and is always called as `layer(x, hx, lengths)` with `x` the *padded*
(B, T, F) input of that layer, also when sequences are packed: packing happens inside the
layer's `forward` (see `_PaddedInputMixin`). So a forward pre-hook
`net.layers[i].register_forward_pre_hook(lambda mod, args: ...)` sees the layer's input as
`args[0]`, and a forward hook sees the padded (B, T, directions * H) output as `output[0]`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnlab.config import ModelConfig
from rnnlab.data.base import TaskSpec
from rnnlab.models.dropout import SequenceDropout
from rnnlab.models.init_schemes import init_recurrent_layer

LayerState = torch.Tensor | tuple[torch.Tensor, torch.Tensor]
"""One layer's state: h for RNN/GRU, (h, c) for LSTM; each (directions, B, H)."""

HiddenState = list[LayerState]
"""The state of the whole stack, one entry per layer."""


class ModelOutput(NamedTuple):
    """predictions: (B, output_size) for many_to_one, (B, T, output_size) for many_to_many.

    hidden: the final state of each layer, to carry into the next contiguous batch
    (truncated BPTT); pass it through `RecurrentNet.detach_hidden` first. When the batch is
    packed it is each sequence's state at its true end; unpacked, the state after step T.
    """

    predictions: torch.Tensor
    hidden: HiddenState


class _PaddedInputMixin:
    """Lets a cuDNN RNN module take a padded batch plus true lengths and pack it itself.

    Packing inside the module (rather than around it) keeps the module's input a plain
    (B, T, F) tensor, which is what forward pre-hooks for diagnostics need to see.
    """

    def forward(  # type: ignore[override]
        self,
        input: torch.Tensor,
        hx: LayerState | None = None,
        lengths: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, LayerState]:
        if lengths is None:
            return super().forward(input, hx)  # type: ignore[misc]
        packed = pack_padded_sequence(input, lengths, batch_first=True, enforce_sorted=False)
        output, state = super().forward(packed, hx)  # type: ignore[misc]
        # total_length: keep the batch's T even when its longest sequence is shorter.
        output, _ = pad_packed_sequence(output, batch_first=True, total_length=input.shape[1])
        return output, state


class PaddedRNN(_PaddedInputMixin, nn.RNN):
    """`nn.RNN` that accepts `lengths` and packs internally."""


class PaddedLSTM(_PaddedInputMixin, nn.LSTM):
    """`nn.LSTM` that accepts `lengths` and packs internally."""


class PaddedGRU(_PaddedInputMixin, nn.GRU):
    """`nn.GRU` that accepts `lengths` and packs internally."""


_LAYERS: dict[str, type[nn.RNNBase]] = {"rnn": PaddedRNN, "lstm": PaddedLSTM, "gru": PaddedGRU}


class RecurrentNet(nn.Module):
    """Encoder → stack of single-layer recurrent modules → many-to-one or many-to-many head."""

    def __init__(self, cfg: ModelConfig, spec: TaskSpec) -> None:
        super().__init__()
        self.cfg = cfg
        self.spec = spec
        self.cell = cfg.cell
        self.hidden_size = cfg.hidden_size
        self.bidirectional = cfg.bidirectional
        self.num_directions = 2 if cfg.bidirectional else 1
        self.pack_sequences = cfg.pack_sequences
        self.head_kind = spec.head

        self.encoder, feature_size = self._build_encoder(cfg, spec)
        self._encodes = not isinstance(self.encoder, nn.Identity)
        self.dropout_input = SequenceDropout(cfg.dropout_input, cfg.dropout_variational)
        self.dropout = SequenceDropout(cfg.dropout, cfg.dropout_variational)

        layer_cls = _LAYERS[cfg.cell]
        extra = {"nonlinearity": cfg.nonlinearity} if cfg.cell == "rnn" else {}
        self.layers = nn.ModuleList()
        for _ in range(cfg.num_layers):
            layer = layer_cls(
                feature_size,
                cfg.hidden_size,
                num_layers=1,
                batch_first=True,
                bidirectional=cfg.bidirectional,
                **extra,
            )
            init_recurrent_layer(layer, cfg.init)
            self.layers.append(layer)
            feature_size = cfg.hidden_size * self.num_directions

        self.head = nn.Linear(feature_size, spec.output_size)

    @staticmethod
    def _build_encoder(cfg: ModelConfig, spec: TaskSpec) -> tuple[nn.Module, int]:
        if spec.input_kind == "tokens":
            dim = cfg.embedding_dim or cfg.hidden_size
            return nn.Embedding(spec.input_size, dim, padding_idx=spec.padding_idx), dim
        if cfg.embedding_dim is not None:
            return nn.Linear(spec.input_size, cfg.embedding_dim), cfg.embedding_dim
        return nn.Identity(), spec.input_size

    def forward(
        self,
        inputs: torch.Tensor,
        lengths: torch.Tensor | None = None,
        hidden: HiddenState | None = None,
    ) -> ModelOutput:
        """Run a padded batch.

        inputs: (B, T) token ids or (B, T, F) features. lengths: true lengths (CPU long
        tensor); None means every sequence fills all T steps. hidden: initial state per
        layer (as returned in `ModelOutput.hidden`), or None for zeros.
        """
        if hidden is not None and len(hidden) != len(self.layers):
            raise ValueError(
                f"hidden has {len(hidden)} layer states; this model has {len(self.layers)} layers"
            )
        pack_lengths = self._lengths_to_pack(lengths, inputs.shape[1])
        x = self._dropped(self.dropout_input, self.encoder(inputs) if self._encodes else inputs)
        final: HiddenState = []
        for i, layer in enumerate(self.layers):
            if i > 0:
                x = self._dropped(self.dropout, x)
            x, state = layer(x, None if hidden is None else hidden[i], pack_lengths)
            final.append(state)
        if self.head_kind == "many_to_one":
            last = self._last_valid_step(x, lengths)
            predictions = self.head(self._dropped(self.dropout, last.unsqueeze(1))).squeeze(1)
        else:
            predictions = self.head(self._dropped(self.dropout, x))
        return ModelOutput(predictions, final)

    def _dropped(self, dropout: SequenceDropout, x: torch.Tensor) -> torch.Tensor:
        """`dropout(x)`, without calling the module where it is the identity (p = 0, or
        evaluation): a module call per step is a measurable share of a small model's step."""
        return dropout(x) if dropout.p and self.training else x

    def _lengths_to_pack(self, lengths: torch.Tensor | None, steps: int) -> torch.Tensor | None:
        """Lengths to pack with, or None to run the padded batch as it is.

        A bidirectional layer is always packed when the batch has padding, whatever
        `pack_sequences` says: unpacked, its backward direction would start in the padding
        and carry it into every valid step. A batch without padding is never packed; it
        gives the same result faster.
        """
        if lengths is None or not (self.pack_sequences or self.bidirectional):
            return None
        lengths = lengths.to("cpu")  # pack_padded_sequence wants CPU lengths
        if bool((lengths >= steps).all()):
            return None
        return lengths

    def _last_valid_step(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """(B, T, D*H) → (B, D*H): the forward direction at each sequence's last valid step,
        and for a bidirectional net the backward direction at step 0 (where it ends)."""
        if lengths is None:
            last = x[:, -1]
        else:
            batch = torch.arange(x.shape[0], device=x.device)
            last = x[batch, lengths.to(x.device) - 1]
        if not self.bidirectional:
            return last
        h = self.hidden_size
        return torch.cat([last[:, :h], x[:, 0, h:]], dim=-1)

    @staticmethod
    def detach_hidden(hidden: HiddenState | None) -> HiddenState | None:
        """Cut the graph behind a carried state (truncated BPTT), keeping its values."""
        if hidden is None:
            return None
        return [
            tuple(t.detach() for t in state) if isinstance(state, tuple) else state.detach()
            for state in hidden
        ]


def build_model(model_cfg: ModelConfig, spec: TaskSpec) -> nn.Module:
    """The network for a model config and a task's spec, initialized per `model_cfg.init`.

    `model._target_` names a user's own class instead (interface: rnnlab.models.custom).
    """
    if model_cfg.target_:
        from rnnlab.models.custom import build_custom_model

        return build_custom_model(model_cfg, spec)
    return RecurrentNet(model_cfg, spec)
