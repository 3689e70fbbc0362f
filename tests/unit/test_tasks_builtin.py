"""The built-in tasks generate what their papers describe, reproducibly for a seed."""

from __future__ import annotations

import math

import pytest
import torch

from rnnlab import registry
from rnnlab.cli import load_run_config
from rnnlab.config import ConfigError, TaskConfigBase, validate_run_config
from rnnlab.data import (
    AddingConfig,
    AddingDataModule,
    CopyConfig,
    CopyDataModule,
    DigitsConfig,
    DigitsDataModule,
    adding_problem,
    copy_task,
)
from rnnlab.data.digits import pixel_permutation
from rnnlab.data.task_configs import Scoring
from rnnlab.registry import task_class


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _adding(seed: int = 0, **fields: object) -> AddingDataModule:
    cfg = AddingConfig(seq_len=20, train_size=200, val_size=50, test_size=50, **fields)
    return AddingDataModule(cfg, batch_size=32, seed=seed)


def _copy(seed: int = 0, seq_len: int = 15) -> CopyDataModule:
    cfg = CopyConfig(seq_len=seq_len, train_size=100, val_size=20, test_size=20)
    return CopyDataModule(cfg, batch_size=16, seed=seed)


# --- adding -------------------------------------------------------------------------------


@pytest.mark.parametrize("seq_len", [2, 3, 50, 101])
def test_adding_has_exactly_two_markers_one_per_half(seq_len: int) -> None:
    inputs, _ = adding_problem(500, seq_len, _gen())
    markers = inputs[..., 1]
    assert inputs.shape == (500, seq_len, 2)
    assert markers.sum(1).eq(2).all()
    assert markers[:, : seq_len // 2].sum(1).eq(1).all()
    assert markers[:, seq_len // 2 :].sum(1).eq(1).all()
    assert ((markers == 0) | (markers == 1)).all()


def test_adding_target_is_the_sum_of_the_marked_values() -> None:
    inputs, targets = adding_problem(500, 30, _gen())
    values, markers = inputs[..., 0], inputs[..., 1]
    assert targets.shape == (500, 1)
    torch.testing.assert_close(targets[:, 0], (values * markers).sum(1))
    assert values.min() >= 0 and values.max() < 1


def test_adding_constant_one_predictor_scores_the_one_sixth_baseline() -> None:
    _, targets = adding_problem(100_000, 10, _gen())
    mse = float(((targets - 1.0) ** 2).mean())
    assert mse == pytest.approx(1 / 6, abs=0.005)
    assert _adding().spec.baselines["mse"] == pytest.approx(1 / 6, abs=0.001)


def test_adding_loaders_give_fixed_length_batches_with_true_lengths() -> None:
    dm = _adding()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch.inputs.shape == (32, 20, 2)
    assert batch.targets.shape == (32, 1)
    assert batch.lengths.tolist() == [20] * 32
    assert dm.describe()["train_size"] == 200
    assert sum(len(b.inputs) for b in dm.val_dataloader()) == 50


def test_spec_is_available_before_setup() -> None:
    for dm in (_adding(), _copy(), DigitsDataModule(DigitsConfig(), 8, 0)):
        assert dm.spec.input_size >= 1
    assert _adding()._splits == {}


def test_setup_twice_reuses_the_generated_data() -> None:
    dm = _adding()
    dm.setup("fit")
    train = dm.dataset("train")
    dm.setup("fit")
    dm.setup()
    assert dm.dataset("train") is train


def test_same_seed_same_data_other_seed_other_data_and_splits_differ() -> None:
    a, b, c = _adding(seed=1), _adding(seed=1), _adding(seed=2)
    for dm in (a, b, c):
        dm.setup()
    assert torch.equal(a.dataset("train").tensors[0], b.dataset("train").tensors[0])
    assert not torch.equal(a.dataset("train").tensors[0], c.dataset("train").tensors[0])
    assert not torch.equal(a.dataset("val").tensors[0], a.dataset("test").tensors[0])
    ca, cb, cc = _copy(seed=1), _copy(seed=1), _copy(seed=2)
    assert torch.equal(ca.dataset("train").tensors[0], cb.dataset("train").tensors[0])
    assert not torch.equal(ca.dataset("train").tensors[0], cc.dataset("train").tensors[0])


def test_train_batch_order_is_fixed_by_seed_and_epoch() -> None:
    first = [b.targets for b in _adding(seed=3).train_dataloader()]
    again = [b.targets for b in _adding(seed=3).train_dataloader()]
    assert all(torch.equal(x, y) for x, y in zip(first, again, strict=True))
    loader = _adding(seed=3).train_dataloader()
    loader.batch_sampler.set_epoch(1)
    assert not torch.equal(next(iter(loader)).targets, first[0])


def test_eval_dataloader_builds_other_lengths_deterministically() -> None:
    dm = _adding()
    long_batch = next(iter(dm.eval_dataloader(40)))
    assert long_batch.inputs.shape[1] == 40
    again = next(iter(_adding().eval_dataloader(40)))
    assert torch.equal(long_batch.inputs, again.inputs)
    same_len = next(iter(dm.eval_dataloader(20)))
    assert torch.equal(same_len.inputs, next(iter(dm.test_dataloader())).inputs)
    with pytest.raises(ValueError, match="eval seq_len=1"):
        dm.eval_dataloader(1)
    assert next(iter(_copy().eval_dataloader(30))).inputs.shape[1] == 50


def test_adding_config_rejects_too_short_lengths_in_one_line() -> None:
    with pytest.raises(ValueError):
        AddingConfig(seq_len=1)
    with pytest.raises(ValueError):
        AddingConfig(eval_lengths=[100, 1])
    assert AddingConfig(eval_lengths=[200, 400]).eval_lengths == [200, 400]
    raw = {"task": {"name": "adding", "seq_len": 1}}
    with pytest.raises(ConfigError, match=r"task.seq_len=1: must be >= 2"):
        validate_run_config(raw)


def test_registry_finds_the_builtin_tasks() -> None:
    assert task_class({"name": "adding"}) is AddingDataModule
    assert task_class({"name": "copy"}) is CopyDataModule
    assert task_class({"name": "digits"}) is DigitsDataModule


@pytest.mark.parametrize("name", sorted(registry.BUILTIN_TASKS))
def test_each_builtin_task_validates_with_the_schema_its_datamodule_is_built_from(
    name: str,
) -> None:
    schema = registry.task_config_class({"name": name})
    assert task_class({"name": name}).Config is schema
    assert schema().name == name  # the name a run is tagged with is the one it was chosen by
    assert isinstance(schema.scoring, Scoring)  # type: ignore[attr-defined]


class _RefusingTask(AddingDataModule):
    @classmethod
    def check(cls, cfg: TaskConfigBase) -> None:
        raise ConfigError(f"{cfg.name}: refused by the DataModule")


def test_a_registered_task_is_known_and_checked_by_its_own_datamodule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry, "_TASKS", {})
    registry.register_task("refusing")(_RefusingTask)
    assert "refusing" in registry.known_tasks() and "adding" in registry.known_tasks()
    cfg = load_run_config("train", ["task.name=refusing"]).task
    assert type(cfg) is AddingConfig  # the registered class's schema
    with pytest.raises(ConfigError, match="refused by the DataModule"):
        registry.check_task_inputs(cfg)
    registry.check_task_inputs(AddingConfig())  # the built-in one is not asked


def test_an_unknown_task_name_lists_the_builtin_and_registered_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry, "_TASKS", {"mine": _RefusingTask})
    with pytest.raises(ConfigError, match=r"task.name='nope': unknown task; valid tasks: .*"):
        validate_run_config({"task": {"name": "nope"}})
    with pytest.raises(KeyError) as err:
        registry.task_config_class({"name": "nope"})
    assert err.value.args[0].endswith(", ".join(sorted([*registry.BUILTIN_TASKS, "mine"])))


# --- copy ---------------------------------------------------------------------------------


def test_copy_layout_matches_arjovsky_et_al() -> None:
    seq_len = 12
    inputs, targets = copy_task(300, seq_len, _gen())
    total = seq_len + 20
    assert inputs.shape == targets.shape == (300, total)
    symbols = inputs[:, :10]
    assert symbols.min() >= 1 and symbols.max() <= 8
    assert inputs[:, 10 : seq_len + 9].eq(0).all()  # seq_len - 1 blanks
    assert inputs[:, seq_len + 9].eq(9).all()  # the delimiter
    assert inputs[:, seq_len + 10 :].eq(0).all()
    assert targets[:, : seq_len + 10].eq(0).all()
    assert torch.equal(targets[:, -10:], symbols)


def test_copy_with_delay_one_puts_delimiter_right_after_the_symbols() -> None:
    inputs, _ = copy_task(5, 1, _gen())
    assert inputs.shape == (5, 21)
    assert inputs[:, 10].eq(9).all()


def test_copy_batches_are_per_step_tokens_and_spec_has_memoryless_baseline() -> None:
    dm = _copy(seq_len=15)
    batch = next(iter(dm.train_dataloader()))
    assert batch.inputs.shape == batch.targets.shape == (16, 35)
    assert batch.inputs.dtype == batch.targets.dtype == torch.long
    spec = dm.spec
    assert (spec.head, spec.input_kind, spec.input_size) == ("many_to_many", "tokens", 10)
    assert spec.baselines["cross_entropy"] == pytest.approx(10 * math.log(8) / 35)
    assert dm.describe()["steps_per_sequence"] == 35


# --- digits -------------------------------------------------------------------------------


def _digits(**fields: object) -> DigitsDataModule:
    return DigitsDataModule(DigitsConfig(**fields), batch_size=64, seed=0)


def test_digits_rows_and_pixels_shapes() -> None:
    rows = _digits(order="rows")
    batch = next(iter(rows.train_dataloader()))
    assert batch.inputs.shape == (64, 8, 8) and rows.spec.input_size == 8
    assert batch.targets.shape == (64,) and batch.targets.dtype == torch.long
    assert batch.inputs.min() >= 0 and batch.inputs.max() <= 1
    pixels = _digits(order="pixels")
    assert next(iter(pixels.test_dataloader())).inputs.shape == (64, 64, 1)
    assert pixels.spec.input_size == 1


def test_digits_split_is_stratified_complete_and_deterministic() -> None:
    dm = _digits()
    sizes = dm.describe()
    assert sizes["train_size"] + sizes["val_size"] + sizes["test_size"] == 1797
    assert sizes["test_size"] == pytest.approx(0.15 * 1797, abs=2)
    val_labels = dm.dataset("val").tensors[1]
    assert torch.bincount(val_labels, minlength=10).min() >= 20
    again = _digits()
    assert torch.equal(dm.dataset("test").tensors[0], again.dataset("test").tensors[0])


def test_digits_permute_is_one_fixed_permutation_of_the_pixels() -> None:
    plain = _digits(order="pixels").dataset("train").tensors[0][:, :, 0]
    permuted = _digits(order="pixels", permute=True).dataset("train").tensors[0][:, :, 0]
    perm = pixel_permutation(0)
    assert sorted(perm.tolist()) == list(range(64)) and perm.tolist() != list(range(64))
    # Every image (same split, same order) is reordered by that one permutation.
    assert torch.equal(permuted, plain[:, perm])
    assert torch.equal(pixel_permutation(0), perm)
    assert not torch.equal(pixel_permutation(1), perm)
    rows = _digits(order="rows", permute=True).dataset("train").tensors[0]
    assert torch.equal(rows.reshape(len(rows), 64), permuted)


def test_digits_fractions_must_leave_training_data() -> None:
    with pytest.raises(ValueError, match="to leave data to train on"):
        DigitsConfig(val_fraction=0.5, test_fraction=0.45)
