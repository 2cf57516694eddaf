"""Image augmentation for SAC from pixels: DrQ's random shift (Kostrikov, Yarats and Fergus
2021), applied on the device to every sampled batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def random_shift(images: Tensor, pad: int) -> Tensor:
    """Each image of (B, C, H, W) shifted by its own random offset of up to `pad` pixels in
    each direction: padded by repeating its border pixels, then cropped back to H x W at a
    uniform integer offset in [0, 2 pad]^2 (DrQ's pad-and-crop). Float output (uint8 values
    kept as they are); offsets come from torch's generator on the images' device."""
    x = images.float()
    if pad == 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (2, b, 1), device=x.device)
    rows = (offsets[0] + torch.arange(h, device=x.device)).view(b, 1, h, 1)
    cols = (offsets[1] + torch.arange(w, device=x.device)).view(b, 1, 1, w)
    # rows then columns by gather: the same crop as indexing padded[i, :, r:r+h, c:c+w]
    x = padded.gather(2, rows.expand(b, x.shape[1], h, padded.shape[3]))
    return x.gather(3, cols.expand(b, x.shape[1], h, w))
