"""Truncated BPTT for language models: carry the hidden state across contiguous batches.

Lightning 2 removed `truncated_bptt_steps`, so the module does it (DESIGN.md): the loaders of a
stateful task (`TaskSpec.stateful`) serve windows of one long stream in order, row r of
batch k+1 continuing row r of batch k. The state that ends batch k starts batch k+1 with its
graph cut (Zaremba et al. 2014), so gradients flow back `bptt` steps at most while the model
still sees the whole text. Each split keeps its own state, and each starts from zeros at
every epoch: validating in the middle of training leaves the training state alone.
"""

from __future__ import annotations

from torch import Tensor, nn

from rnnlab.config import ConfigError, RunConfig
from rnnlab.data.base import SequenceBatch, TaskSpec
from rnnlab.models.recurrent import HiddenState, RecurrentNet
from rnnlab.training.module import SequenceModule
from rnnlab.training.objectives import loss_fn, valid_pairs


def tie_embeddings(net: nn.Module) -> None:
    """Use the input embedding as the output layer's weights (Press & Wolf 2017)."""
    encoder, head = getattr(net, "encoder", None), getattr(net, "head", None)
    if not isinstance(encoder, nn.Embedding) or not isinstance(head, nn.Linear):
        raise ConfigError("task.tied_embeddings=true needs a token embedding and a linear head")
    if encoder.weight.shape != head.weight.shape:
        raise ConfigError(
            f"task.tied_embeddings=true needs model.embedding_dim equal to the recurrent "
            f"output size {head.in_features} (model.hidden_size, unidirectional); "
            f"got an embedding of size {encoder.embedding_dim}"
        )
    head.weight = encoder.weight


class LanguageModelModule(SequenceModule):
    """`SequenceModule` whose hidden state flows, detached, from one batch into the next."""

    def __init__(self, cfg: RunConfig, spec: TaskSpec, net: nn.Module) -> None:
        if cfg.model.bidirectional:
            raise ConfigError(
                "model.bidirectional=true: a language model's backward direction would read "
                "the very tokens it predicts; use a unidirectional model"
            )
        if getattr(cfg.task, "tied_embeddings", False):
            tie_embeddings(net)
        super().__init__(cfg, spec, net)
        self.carried: dict[str, HiddenState | None] = {"train": None, "val": None, "test": None}

    def _scored(self, batch: SequenceBatch, stage: str) -> tuple[Tensor, Tensor, Tensor]:
        inputs, targets, lengths = batch
        hidden = self.carried[stage]
        if hidden is not None and _rows(hidden) != inputs.shape[0]:
            hidden = None  # a loader with another number of rows: nothing to continue
        out = self.net(inputs, lengths, hidden)
        self.carried[stage] = RecurrentNet.detach_hidden(out.hidden)
        p, t = valid_pairs(self.spec, out.predictions, targets, lengths)
        return loss_fn(self.spec, p, t), p, t

    def reset_state(self, stage: str) -> None:
        self.carried[stage] = None

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self.reset_state("train")

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self.reset_state("val")

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self.reset_state("test")


def _rows(hidden: HiddenState) -> int:
    first = hidden[0]
    h = first[0] if isinstance(first, tuple) else first
    return int(h.shape[1])
