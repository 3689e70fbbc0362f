"""Truncated BPTT carries the state between batches, padding never changes a loss, and the
padding share of an epoch is measured on the batches training really saw."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from rnnlab.config import ConfigError, HardwareConfig, ModelConfig, RunConfig, TrackingConfig
from rnnlab.data import SequenceBatch, TaskSpec, cache
from rnnlab.data.language_model import PtbWordConfig
from rnnlab.data.tagging import ConllTaggingConfig, ConllTaggingDataModule
from rnnlab.data.text_classification import (
    TextClassificationConfig,
    UserTextClassificationDataModule,
)
from rnnlab.models import build_model
from rnnlab.training.data_logging import PaddingFraction
from rnnlab.training.lm_module import LanguageModelModule
from rnnlab.training.objectives import loss_fn, valid_pairs

VOCAB = 11
LM_SPEC = TaskSpec(
    head="many_to_many",
    loss="cross_entropy",
    input_kind="tokens",
    input_size=VOCAB,
    output_size=VOCAB,
    metrics=("perplexity",),
    stateful=True,
)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(tmp_path / "cache"))


def _run_config(**model: object) -> RunConfig:
    task = PtbWordConfig(tied_embeddings=bool(model.pop("tied", False)))
    return RunConfig(
        model=ModelConfig(name="lstm", cell="lstm", hidden_size=8, **model),
        task=task,
        hardware=HardwareConfig(name="cpu"),
        tracking=TrackingConfig(name="local"),
    )


def _lm(**model: object) -> LanguageModelModule:
    torch.manual_seed(0)
    cfg = _run_config(**model)
    return LanguageModelModule(cfg, LM_SPEC, build_model(cfg.model, LM_SPEC))


def _window(seed: int, rows: int = 3, steps: int = 5) -> SequenceBatch:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, VOCAB, (rows, steps + 1), generator=gen)
    return SequenceBatch(x[:, :-1], x[:, 1:], torch.full((rows,), steps))


# --- truncated BPTT ------------------------------------------------------------------------


def test_the_state_that_ends_one_batch_starts_the_next_with_its_graph_cut() -> None:
    module = _lm()
    first, second = _window(1), _window(2)
    module._shared_step(first, module.train_metrics)
    carried = module.carried["train"]
    assert carried is not None and all(t.grad_fn is None for t in carried[0])

    loss = module._shared_step(second, module.train_metrics)
    out = module.net(second.inputs, second.lengths, carried)
    expected = loss_fn(
        LM_SPEC, *valid_pairs(LM_SPEC, out.predictions, second.targets, second.lengths)
    )
    fresh = module.net(second.inputs, second.lengths, None)
    from_zeros = loss_fn(
        LM_SPEC, *valid_pairs(LM_SPEC, fresh.predictions, second.targets, second.lengths)
    )
    torch.testing.assert_close(loss, expected)
    assert not torch.isclose(loss, from_zeros)
    # The gradient stops at the batch boundary: it reaches the weights, not the old batch.
    loss.backward()
    assert module.net.encoder.weight.grad is not None


def test_each_split_keeps_its_own_state_and_every_epoch_starts_from_zeros() -> None:
    module = _lm()
    module._shared_step(_window(1), module.train_metrics)
    train_state = module.carried["train"]
    module.on_validation_epoch_start()
    module._shared_step(_window(3), module.val_metrics)
    assert module.carried["train"] is train_state  # validation left training's state alone
    assert module.carried["val"] is not None
    module.on_train_epoch_start()
    assert module.carried["train"] is None
    module.on_test_epoch_start()
    assert module.carried["test"] is None


def test_a_window_with_another_number_of_rows_starts_from_zeros() -> None:
    module = _lm()
    module._shared_step(_window(1, rows=3), module.train_metrics)
    module._shared_step(_window(2, rows=2), module.train_metrics)  # no shape error
    assert module.carried["train"][0][0].shape[1] == 2


def test_tied_embeddings_share_one_matrix_between_input_and_output() -> None:
    module = _lm(tied=True)
    assert module.net.head.weight is module.net.encoder.weight
    names = [n for n, _ in module.named_parameters()]
    assert sum("weight" in n and ("head" in n or "encoder" in n) for n in names) == 1


def test_tying_with_mismatched_sizes_or_a_bidirectional_lm_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"needs model\.embedding_dim equal to"):
        _lm(tied=True, embedding_dim=4)
    with pytest.raises(ConfigError, match=r"model\.bidirectional=true"):
        _lm(bidirectional=True)


# --- masking through the real loaders ------------------------------------------------------


def _texts(tmp_path: Path) -> Path:
    gen = torch.Generator().manual_seed(0)
    lines = ["text,label"]
    for i in range(90):
        n = int(torch.randint(1, 30, (1,), generator=gen))
        lines.append(f"{' '.join(f'w{(i * j) % 17}' for j in range(n))},{'ab'[i % 2]}")
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _tagged(tmp_path: Path) -> Path:
    gen = torch.Generator().manual_seed(1)
    blocks = []
    for i in range(80):
        n = int(torch.randint(1, 25, (1,), generator=gen))
        blocks.append("\n".join(f"w{(i + j) % 13} T{(i * j) % 4}" for j in range(n)))
    path = tmp_path / "t.conll"
    path.write_text("\n\n".join(blocks) + "\n")
    return path


def _summed_loss(dm, net, split: str) -> float:
    """Sum of per-target losses over a split, whatever the batches look like."""
    spec = dm.spec
    total = 0.0
    loader = dm.val_dataloader() if split == "val" else dm.test_dataloader()
    with torch.no_grad():
        for batch in loader:
            preds = net(batch.inputs, batch.lengths).predictions
            p, t = valid_pairs(spec, preds, batch.targets, batch.lengths)
            total += float(loss_fn(spec, p, t)) * len(t)
    return total


@pytest.mark.parametrize("pack", [False, True])
@pytest.mark.parametrize("task", ["text", "tags"])
def test_bucketed_or_padded_to_the_longest_the_loss_over_a_split_is_the_same(
    tmp_path: Path, task: str, pack: bool
) -> None:
    if task == "text":
        path = str(_texts(tmp_path))
        modules = [
            UserTextClassificationDataModule(
                TextClassificationConfig(path=path, min_freq=1, bucketing=b), 16, 0
            )
            for b in (True, False)
        ]
    else:
        path = str(_tagged(tmp_path))
        modules = [
            ConllTaggingDataModule(ConllTaggingConfig(path=path, min_freq=1, bucketing=b), 16, 0)
            for b in (True, False)
        ]
    bucketed, plain = modules
    torch.manual_seed(0)
    model = ModelConfig(name="gru", cell="gru", hidden_size=8, pack_sequences=pack)
    net = build_model(model, bucketed.spec).eval()
    assert _summed_loss(bucketed, net, "test") == pytest.approx(_summed_loss(plain, net, "test"))


# --- padding share -------------------------------------------------------------------------


def test_padding_fraction_is_measured_over_the_epochs_batches() -> None:
    callback = PaddingFraction()
    trainer = SimpleNamespace(loggers=[], current_epoch=0, callback_metrics={})
    module = SimpleNamespace()
    callback.on_train_epoch_start(trainer, module)
    for lengths in ([4, 4], [1, 3]):
        steps = max(lengths)
        batch = SequenceBatch(torch.zeros(2, steps), torch.zeros(2), torch.tensor(lengths))
        callback.on_train_batch_end(trainer, module, None, batch, 0)
    callback.on_train_epoch_end(trainer, module)
    assert float(trainer.callback_metrics["train/padding_fraction"]) == pytest.approx(1 - 12 / 14)
    callback.on_train_epoch_start(trainer, module)
    assert callback.value is None
