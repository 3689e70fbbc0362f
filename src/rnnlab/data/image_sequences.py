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

import torch
import torch.nn.functional as F

# Which lengths an image can be read at is checked while validating the config, without torch.
from rnnlab.data.task_configs import check_image_eval_lengths as check_image_eval_lengths


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
