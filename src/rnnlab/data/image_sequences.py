"""Images read as sequences at another length, for length generalisation on the pixel tasks.

A net trained on digits read pixel by pixel (or row by row) is asked at test time to read the
same test images at another resolution: `task.eval_lengths` names sequence lengths in steps.
Read by rows, an image is resized in height only, so every step keeps its width's features
and the model's input size; read by pixels, it is resized to side x side, so each length
must be a square. A permuted pixel order is defined for one image size only, so permuted
tasks have no other lengths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def check_image_eval_lengths(lengths: Sequence[int], order: str, permute: bool) -> list[int]:
    """`lengths` if every one can be read from a resized image, else ValueError saying why."""
    if not lengths:
        return list(lengths)
    if permute:
        raise ValueError(
            "task.eval_lengths needs task.permute=false: a pixel permutation is defined for "
            "one image size only"
        )
    too_short = [n for n in lengths if n < 2]
    if too_short:
        raise ValueError(f"task.eval_lengths must all be >= 2 steps; got {too_short}")
    if order == "pixels":
        not_square = [n for n in lengths if math.isqrt(n) ** 2 != n]
        if not_square:
            raise ValueError(
                f"task.eval_lengths {not_square} are not squares: read by pixels, a length is "
                "side x side of the resized image (e.g. 36, 100, 144)"
            )
    return list(lengths)


def images_as_sequences(images: torch.Tensor, order: str, steps: int) -> torch.Tensor:
    """(N, H, W) images resized so that reading them in `order` takes `steps` steps.

    Returns (N, steps, W) for rows and (N, steps, 1) for pixels. Anti-aliased bilinear
    resampling, so shrinking an image averages its pixels instead of dropping them.
    """
    n, _, width = images.shape
    if order == "rows":
        size = (steps, width)
    else:
        side = math.isqrt(steps)
        size = (side, side)
    resized = F.interpolate(
        images[:, None].float(), size=size, mode="bilinear", align_corners=False, antialias=True
    )[:, 0]
    if order == "rows":
        return resized.contiguous()
    return resized.reshape(n, steps, 1)
