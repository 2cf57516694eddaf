"""Image augmentation for SAC from pixels: DrQ's random shift (Kostrikov, Yarats and Fergus
2021), applied on the device to every sampled batch."""

from __future__ import annotations

import torch
from torch import Tensor


def random_shift(images: Tensor, pad: int) -> Tensor:
    """Each image of (B, C, H, W) shifted by its own random offset of up to `pad` pixels in
    each direction: DrQ's pad-and-crop, the image padded by repeating its border pixels and
    cropped back to H x W at a uniform integer offset in [0, 2 pad]^2. Offsets come from
    torch's generator on the images' device; the dtype is kept (uint8 frames stay uint8)."""
    if pad == 0:
        return images
    b, c, h, w = images.shape
    offsets = torch.randint(0, 2 * pad + 1, (2, b, 1), device=images.device)
    # Row i of the crop is row offset + i - pad of the image, clamped into it: the same pixel
    # as in the border-padded image, without building that image.
    rows = (offsets[0] + torch.arange(h, device=images.device) - pad).clamp_(0, h - 1)
    cols = (offsets[1] + torch.arange(w, device=images.device) - pad).clamp_(0, w - 1)
    x = images.gather(2, rows.view(b, 1, h, 1).expand(b, c, h, w))
    return x.gather(3, cols.view(b, 1, 1, w).expand(b, c, h, w))
