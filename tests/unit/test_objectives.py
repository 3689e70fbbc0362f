"""Losses and metrics see valid steps only: padding a batch further never changes them."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from tests.unit._specs import ADDING, SERIES

from rnnlab.config import ModelConfig
from rnnlab.data import IGNORE_INDEX, TaskSpec
from rnnlab.models import build_model
from rnnlab.training.objectives import EpochMetrics, loss_fn, step_mask, valid_pairs

CLASSES = 5
TAGGING = TaskSpec(
    head="many_to_many",
    loss="cross_entropy",
    input_kind="real",
    input_size=3,
    output_size=CLASSES,
    metrics=("accuracy", "macro_f1", "perplexity", "bpc"),
)
LENGTHS = torch.tensor([6, 2, 4, 1])


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _many_to_many_batch(spec: TaskSpec, steps: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions and targets whose steps past each length are already padding."""
    g = _gen()
    preds = torch.randn(len(LENGTHS), steps, spec.output_size, generator=g)
    mask = step_mask(LENGTHS, steps, torch.device("cpu"))
    if spec.loss == "cross_entropy":
        targets = torch.randint(0, CLASSES, (len(LENGTHS), steps), generator=g)
        return preds, targets.masked_fill(~mask, IGNORE_INDEX)
    targets = torch.randn(len(LENGTHS), steps, spec.output_size, generator=g)
    return preds, targets * mask[..., None]


def _pad_further(
    spec: TaskSpec, preds: torch.Tensor, targets: torch.Tensor, extra: int, garbage: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Append `extra` steps: huge garbage predictions, and targets that are wrong on purpose.

    With `garbage`, even the padded *targets* are valid-looking values (not IGNORE_INDEX or
    zero), so only the true lengths can keep them out of the loss.
    """
    g = _gen(1)
    b = preds.shape[0]
    pad_preds = 1e3 * torch.randn(b, extra, preds.shape[2], generator=g)
    if spec.loss == "cross_entropy":
        pad_t = (
            torch.randint(0, CLASSES, (b, extra), generator=g)
            if garbage
            else torch.full((b, extra), IGNORE_INDEX)
        )
    else:
        pad_t = (
            1e3 * torch.randn(b, extra, targets.shape[2], generator=g)
            if garbage
            else torch.zeros(b, extra, targets.shape[2])
        )
    return torch.cat([preds, pad_preds], 1), torch.cat([targets, pad_t], 1)


def _loss_and_metrics(spec: TaskSpec, preds, targets, lengths) -> tuple[float, dict[str, float]]:
    p, t = valid_pairs(spec, preds, targets, lengths)
    loss = loss_fn(spec, p, t)
    metrics = EpochMetrics(spec)
    metrics.update(loss, p, t)
    return float(loss), metrics.compute("val")


@pytest.mark.parametrize("spec", [TAGGING, SERIES], ids=["cross_entropy", "mse"])
@pytest.mark.parametrize("garbage", [False, True], ids=["pad_values", "garbage_targets"])
def test_padding_a_many_to_many_batch_further_never_changes_loss_or_metrics(
    spec: TaskSpec, garbage: bool
) -> None:
    preds, targets = _many_to_many_batch(spec)
    loss, metrics = _loss_and_metrics(spec, preds, targets, LENGTHS)
    padded_preds, padded_targets = _pad_further(spec, preds, targets, extra=7, garbage=garbage)
    loss2, metrics2 = _loss_and_metrics(spec, padded_preds, padded_targets, LENGTHS)
    assert loss2 == loss
    assert metrics2 == metrics
    assert set(metrics) == {"val/loss", *(f"val/{m}" for m in spec.metrics)}


def test_many_to_many_loss_is_the_mean_over_valid_steps_only() -> None:
    preds, targets = _many_to_many_batch(TAGGING)
    rows = [
        F.cross_entropy(preds[i, :n], targets[i, :n], reduction="sum")
        for i, n in enumerate(LENGTHS)
    ]
    expected = torch.stack(rows).sum() / LENGTHS.sum()
    loss, _ = _loss_and_metrics(TAGGING, preds, targets, LENGTHS)
    assert loss == pytest.approx(float(expected), rel=1e-6)


def test_ignore_index_inside_the_true_length_is_also_left_out() -> None:
    preds, targets = _many_to_many_batch(TAGGING)
    targets[0, 0] = IGNORE_INDEX  # e.g. an unlabelled token in a tagging task
    _, t = valid_pairs(TAGGING, preds, targets, LENGTHS)
    assert len(t) == int(LENGTHS.sum()) - 1
    assert (t != IGNORE_INDEX).all()


def test_cross_entropy_metrics_derived_from_loss_are_perplexity_and_bits_per_char() -> None:
    preds, targets = _many_to_many_batch(TAGGING)
    loss, metrics = _loss_and_metrics(TAGGING, preds, targets, LENGTHS)
    assert metrics["val/perplexity"] == pytest.approx(math.exp(loss))
    assert metrics["val/bpc"] == pytest.approx(loss / math.log(2))


@pytest.mark.parametrize("target_shape", [(4, 1), (4,)], ids=["B_by_1", "B"])
def test_many_to_one_mse_compares_one_prediction_per_sequence(target_shape) -> None:
    preds = torch.tensor([[0.5], [1.0], [1.5], [2.0]])
    targets = torch.tensor([1.0, 1.0, 1.0, 1.0]).reshape(target_shape)
    loss, metrics = _loss_and_metrics(ADDING, preds, targets, LENGTHS)
    expected = (0.25 + 0.0 + 0.25 + 1.0) / 4
    assert loss == pytest.approx(expected)
    assert metrics["val/mse"] == pytest.approx(expected)


def test_always_predicting_one_on_the_adding_problem_scores_the_0167_baseline() -> None:
    from rnnlab.data import adding_problem

    _, targets = adding_problem(20000, 10, _gen())
    loss, _ = _loss_and_metrics(ADDING, torch.ones_like(targets), targets, torch.full((20000,), 10))
    assert loss == pytest.approx(1 / 6, abs=0.005)


def test_epoch_loss_weights_each_batch_by_its_valid_targets() -> None:
    preds, targets = _many_to_many_batch(TAGGING)
    whole, _ = _loss_and_metrics(TAGGING, preds, targets, LENGTHS)
    metrics = EpochMetrics(TAGGING)
    for rows in (slice(0, 1), slice(1, 4)):  # 6 valid steps, then 7
        p, t = valid_pairs(TAGGING, preds[rows], targets[rows], LENGTHS[rows])
        metrics.update(loss_fn(TAGGING, p, t), p, t)
    assert metrics.compute("train")["train/loss"] == pytest.approx(whole, rel=1e-6)


def test_loss_is_computed_in_fp32_under_bf16_predictions() -> None:
    preds, targets = _many_to_many_batch(SERIES)
    p, t = valid_pairs(SERIES, preds.bfloat16(), targets, LENGTHS)
    assert loss_fn(SERIES, p, t).dtype == torch.float32


# --- through the network: what a trained model is scored on ---------------------------------


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("spec", [TAGGING, ADDING], ids=["many_to_many", "many_to_one"])
def test_padding_a_batch_further_never_changes_the_networks_loss(
    cell: str, bidirectional: bool, spec: TaskSpec
) -> None:
    torch.manual_seed(0)
    net = build_model(
        ModelConfig(name=cell, cell=cell, hidden_size=8, bidirectional=bidirectional), spec
    ).eval()
    g = _gen(2)
    inputs = torch.randn(len(LENGTHS), 6, spec.input_size, generator=g)
    inputs = inputs * step_mask(LENGTHS, 6, torch.device("cpu"))[..., None]
    if spec.head == "many_to_one":
        targets = torch.randn(len(LENGTHS), 1, generator=g)
        padded_targets = targets
    else:
        _, targets = _many_to_many_batch(spec)
        padded_targets = torch.cat([targets, torch.full((len(LENGTHS), 5), IGNORE_INDEX)], 1)
    padded_inputs = torch.cat([inputs, 1e2 * torch.randn(len(LENGTHS), 5, spec.input_size)], 1)
    with torch.no_grad():
        loss, metrics = _loss_and_metrics(spec, net(inputs, LENGTHS).predictions, targets, LENGTHS)
        loss2, metrics2 = _loss_and_metrics(
            spec, net(padded_inputs, LENGTHS).predictions, padded_targets, LENGTHS
        )
    assert loss2 == pytest.approx(loss, rel=1e-5, abs=1e-6)
    assert metrics2 == pytest.approx(metrics, rel=1e-5, abs=1e-6)


def test_mse_read_from_the_loss_equals_torchmetrics_mse_over_uneven_batches() -> None:
    import torchmetrics

    preds, targets = _many_to_many_batch(SERIES)
    metrics, reference = EpochMetrics(SERIES), torchmetrics.MeanSquaredError()
    for rows in (slice(0, 1), slice(1, 3), slice(3, 4)):
        p, t = valid_pairs(SERIES, preds[rows], targets[rows], LENGTHS[rows])
        metrics.update(loss_fn(SERIES, p, t), p, t)
        reference.update(p, t)
    assert "mse" not in metrics.metrics  # not accumulated twice
    assert metrics.compute("val")["val/mse"] == pytest.approx(float(reference.compute()), rel=1e-6)


def test_a_nan_loss_stays_in_the_epoch_mean_rather_than_being_dropped() -> None:
    preds, targets = _many_to_many_batch(SERIES)
    p, t = valid_pairs(SERIES, preds, targets, LENGTHS)
    metrics = EpochMetrics(SERIES)
    metrics.update(loss_fn(SERIES, p, t), p, t)
    metrics.update(torch.tensor(float("nan")), p, t)
    assert math.isnan(metrics.compute("val")["val/loss"])


@pytest.mark.parametrize("host_sum", [False, True], ids=["tensor_loss", "loss_value"])
def test_an_unpadded_mse_batch_counts_every_step_in_the_epoch_mean(host_sum: bool) -> None:
    """Unpadded MSE batches keep their (B, T, O) shape through `valid_pairs`; each still
    weighs in the epoch's loss and MAE by its steps, not by its sequences."""
    g = _gen(3)
    full = (torch.randn(2, 6, 2, generator=g), torch.randn(2, 6, 2, generator=g))
    short = (torch.randn(3, 6, 2, generator=g), torch.randn(3, 6, 2, generator=g))
    short_lengths = torch.tensor([1, 2, 1])
    metrics = EpochMetrics(SERIES)
    squared, absolute, steps = 0.0, 0.0, 0
    for (preds, targets), lengths in ((full, torch.tensor([6, 6])), (short, short_lengths)):
        p, t = valid_pairs(SERIES, preds, targets, lengths)
        loss = loss_fn(SERIES, p, t)
        metrics.update(loss, p, t, loss_value=float(loss) if host_sum else None)
        mask = step_mask(lengths, 6, torch.device("cpu"))
        squared += float(((preds - targets) ** 2)[mask].sum())
        absolute += float((preds - targets).abs()[mask].sum())
        steps += int(mask.sum())
    assert valid_pairs(SERIES, *full, torch.tensor([6, 6]))[0].shape == (2, 6, 2)
    out = metrics.compute("train")
    assert out["train/loss"] == pytest.approx(squared / (steps * 2), rel=1e-6)
    assert out["train/mae"] == pytest.approx(absolute / (steps * 2), rel=1e-6)
