"""Length generalisation: test images resampled to other lengths, and their config checks."""

from __future__ import annotations

import pytest
import torch

from rnnlab.config import ConfigError, validate_run_config
from rnnlab.data import DigitsConfig, DigitsDataModule
from rnnlab.data.image_sequences import check_image_eval_lengths, images_as_sequences


def test_rows_resize_height_only_and_keep_the_features_per_step() -> None:
    images = torch.rand(5, 8, 8)
    seqs = images_as_sequences(images, "rows", 16)
    assert seqs.shape == (5, 16, 8)
    # Doubling the height repeats each row's content: the mean of the image is kept.
    assert torch.allclose(seqs.mean(dim=(1, 2)), images.mean(dim=(1, 2)), atol=1e-5)


def test_pixels_resize_to_a_square_read_pixel_by_pixel() -> None:
    images = torch.zeros(2, 8, 8)
    images[:, :4, :] = 1.0  # top half white
    seqs = images_as_sequences(images, "pixels", 16)
    assert seqs.shape == (2, 16, 1)
    # 4x4 read row by row: the top row white, the bottom row black, greys fading between.
    rows = seqs[0, :, 0].reshape(4, 4)
    assert torch.allclose(rows[0], torch.ones(4)) and torch.allclose(rows[3], torch.zeros(4))
    assert (rows[1] >= rows[2]).all() and (rows[:, 0].diff() <= 0).all()
    same = images_as_sequences(images, "pixels", 64)
    assert torch.allclose(same.reshape(2, 8, 8), images)


def test_image_eval_lengths_are_checked_with_a_reason() -> None:
    assert check_image_eval_lengths([36, 100], "pixels", permute=False) == [36, 100]
    assert check_image_eval_lengths([5, 12], "rows", permute=False) == [5, 12]
    with pytest.raises(ValueError, match="not squares"):
        check_image_eval_lengths([50], "pixels", permute=False)
    with pytest.raises(ValueError, match="permute=false"):
        check_image_eval_lengths([100], "pixels", permute=True)
    with pytest.raises(ValueError, match=">= 2"):
        check_image_eval_lengths([1], "rows", permute=False)
    assert check_image_eval_lengths([], "pixels", permute=True) == []


def test_bad_eval_lengths_on_an_image_task_is_one_line_naming_the_key() -> None:
    raw = {"task": {"name": "pixel_mnist", "order": "pixels", "eval_lengths": [50]}}
    with pytest.raises(ConfigError, match=r"^task\.eval_lengths \[50\] are not squares") as err:
        validate_run_config(raw)
    assert "\n" not in str(err.value)


def test_digits_eval_dataloader_reads_the_test_images_at_the_asked_length() -> None:
    dm = DigitsDataModule(DigitsConfig(order="pixels"), batch_size=1000, seed=0)
    native = next(iter(dm.test_dataloader()))
    at_64 = next(iter(dm.eval_dataloader(64)))
    assert torch.allclose(at_64.inputs, native.inputs) and torch.equal(
        at_64.targets, native.targets
    )
    at_100 = next(iter(dm.eval_dataloader(100)))
    assert at_100.inputs.shape == (len(native.targets), 100, 1)
    assert dm.native_length == 64
