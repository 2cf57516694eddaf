"""SimbaV2's networks (Lee et al. 2025, "Hyperspherical Normalization for Scalable Deep
Reinforcement Learning", ICML; reference code github.com/dojeon-ai/SimbaV2,
scale_rl/agents/simbaV2/simbaV2_layer.py and simbaV2_network.py), in PyTorch.

Every feature lies on the unit hypersphere: the input gets a constant coordinate appended and
is l2-normalised, each residual block moves its input towards its MLP's output by a learned
per-feature LERP and normalises the result, and learned scalers restore the magnitudes that
normalisation removes. Every weight vector (a linear layer's weights into one output unit) is
kept on the unit sphere too: `project_` puts them back after every optimizer step.

Layers take `num` = 0 for a single network (weights (in, out)) or `num` = N for N networks
evaluated as one batched module (weights (N, in, out), outputs (N, B, ...)), the critics'.
The maths of the agent's losses is in sac/losses.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EPS = 1e-8  # as the reference code: no division by an l2 norm below it
EXPANSION = 4  # a residual block's MLP is width -> 4 width -> width
C_SHIFT = 3.0  # the constant appended to the input before its l2 projection (their c_shift)


def l2_normalize(x: Tensor, dim: int = -1) -> Tensor:
    """x / ||x||_2 along `dim`: the projection onto the unit hypersphere."""
    return x / torch.linalg.vector_norm(x, dim=dim, keepdim=True).clamp_min(EPS)


def lerp_normalize(residual: Tensor, update: Tensor, alpha: Tensor) -> Tensor:
    """l2(residual + alpha * (update - residual)): a residual block's step from its input
    towards its MLP's output, per feature by the learned alpha, back onto the sphere."""
    return l2_normalize(residual + alpha * (update - residual))


@torch.no_grad()
def project_(weights: list[Tensor]) -> None:
    """Put each weight vector (along dim -2, the inputs of one output unit) of `weights` back
    onto the unit sphere, in place: after every optimizer step, as the reference code does
    after Adam (simbaV2_update.py, l2normalize_network)."""
    for w in weights:
        w.div_(torch.linalg.vector_norm(w, dim=-2, keepdim=True).clamp_min(EPS))


def sphere_weights(net: nn.Module) -> list[Tensor]:
    """The weights `project_` keeps on the sphere: every HyperLinear's."""
    return [m.weight for m in net.modules() if isinstance(m, HyperLinear)]


def _shape(num: int, *dims: int) -> tuple[int, ...]:
    return (num, 1, *dims) if num > 0 else dims


class HyperLinear(nn.Module):
    """x @ W without bias, each output unit's weight vector on the unit sphere; initialised
    orthogonal, then projected (the reference code's HyperDense)."""

    def __init__(self, in_dim: int, out_dim: int, num: int = 0) -> None:
        super().__init__()
        w = torch.empty(max(num, 1), out_dim, in_dim)
        for member in w:
            nn.init.orthogonal_(member)
        w = l2_normalize(w.transpose(1, 2), dim=-2).contiguous()  # (num, in, out)
        self.weight = nn.Parameter(w if num > 0 else w[0])

    def forward(self, x: Tensor) -> Tensor:
        # (B, in) @ (N, in, out) broadcasts to (N, B, out): the ensemble's shared input
        return x @ self.weight

    def extra_repr(self) -> str:
        return f"weight={tuple(self.weight.shape)}"


class Scaler(nn.Module):
    """A learned per-feature scale s, starting at `init`. Stored as s * scale / init, so Adam's
    steps on it are in units of `scale` (the reference code's Scaler and forward_scaler)."""

    def __init__(self, dim: int, init: float, scale: float, num: int = 0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full(_shape(num, dim), float(scale)))
        self.factor = init / scale

    def value(self) -> Tensor:
        return self.weight * self.factor

    def forward(self, x: Tensor) -> Tensor:
        return x * self.value()

    def extra_repr(self) -> str:
        return f"dim={self.weight.shape[-1]}, factor={self.factor:.4g}"


class HyperEmbedder(nn.Module):
    """Input shift and l2 projection, then a linear embedding, a scaler and the sphere again.
    The appended constant keeps the input's magnitude once it is normalised."""

    def __init__(self, in_dim: int, width: int, scaler: float, num: int = 0) -> None:
        super().__init__()
        self.linear = HyperLinear(in_dim + 1, width, num)
        self.scaler = Scaler(width, scaler, scaler, num)

    def forward(self, x: Tensor) -> Tensor:
        x = l2_normalize(F.pad(x, (0, 1), value=C_SHIFT))
        return l2_normalize(self.scaler(self.linear(x)))


class HyperBlock(nn.Module):
    """A residual block on the sphere: an MLP (width -> 4 width -> width, ReLU, its output
    normalised) and a learned LERP from the block's input towards it, normalised."""

    def __init__(self, width: int, scaler: float, alpha: float, alpha_scale: float, num: int = 0):
        super().__init__()
        inner = EXPANSION * width
        self.up = HyperLinear(width, inner, num)
        # The inner layer is 4x wider: its scaler's init and scale are divided by sqrt(4).
        s = scaler / math.sqrt(EXPANSION)
        self.scaler = Scaler(inner, s, s, num)
        self.down = HyperLinear(inner, width, num)
        self.alpha = Scaler(width, alpha, alpha_scale, num)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.scaler(self.up(x))) + EPS  # + eps: never the zero vector
        return lerp_normalize(x, l2_normalize(self.down(h)), self.alpha.value())


class HyperTrunk(nn.Module):
    """Embedder and `blocks` residual blocks of one width, with the reference config's
    initialisations: scalers sqrt(2 / width), LERP alpha 1 / (blocks + 1) at scale
    1 / sqrt(width) (configs/agent/simbaV2.yaml)."""

    def __init__(self, in_dim: int, width: int, blocks: int, num: int = 0) -> None:
        super().__init__()
        scaler = math.sqrt(2.0 / width)
        self.embedder = HyperEmbedder(in_dim, width, scaler, num)
        self.blocks = nn.Sequential(
            *(
                HyperBlock(width, scaler, 1.0 / (blocks + 1), 1.0 / math.sqrt(width), num)
                for _ in range(blocks)
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(self.embedder(x))


class HyperHead(nn.Module):
    """The output layers: linear (width -> width), a scaler starting at 1, linear (width ->
    out) plus a bias; no nonlinearity in between, as the reference code's predictors."""

    def __init__(self, width: int, out_dim: int, num: int = 0) -> None:
        super().__init__()
        self.hidden = HyperLinear(width, width, num)
        self.scaler = Scaler(width, 1.0, 1.0, num)
        self.out = HyperLinear(width, out_dim, num)
        self.bias = nn.Parameter(torch.zeros(_shape(num, out_dim)))

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.scaler(self.hidden(x))) + self.bias


class SimbaV2ActorNet(nn.Module):
    """obs -> [mean, unbounded log std] (B, 2 act_dim): the net of a SquashedGaussianActor
    (which bounds the log std and squashes), with separate mean and log-std heads."""

    def __init__(self, obs_dim: int, act_dim: int, width: int, blocks: int) -> None:
        super().__init__()
        self.trunk = HyperTrunk(obs_dim, width, blocks)
        self.mean = HyperHead(width, act_dim)
        self.log_std = HyperHead(width, act_dim)

    def forward(self, obs: Tensor) -> Tensor:
        z = self.trunk(obs)
        return torch.cat([self.mean(z), self.log_std(z)], dim=-1)


class SimbaV2Critic(nn.Module):
    """N SimbaV2 Q-functions as one batched module; forward returns Q (N, B).

    With `bins` > 0 each is categorical over `bins` atoms evenly spaced on [-v_max, v_max]:
    Q is the mean of its distribution, and `distribution` also gives the log-probabilities
    (N, B, bins). With `bins` = 0 the head outputs Q itself.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        width: int,
        blocks: int,
        num: int = 2,
        bins: int = 0,
        v_max: float = 5.0,
    ) -> None:
        super().__init__()
        self.num, self.bins, self.v_max = num, bins, v_max
        self.trunk = HyperTrunk(obs_dim + act_dim, width, blocks, num)
        self.head = HyperHead(width, max(bins, 1), num)
        # Derived from the config, so not saved.
        self.register_buffer("support", torch.linspace(-v_max, v_max, bins), persistent=False)

    def forward(self, obs: Tensor, act: Tensor) -> Tensor:
        if self.bins:
            return self.distribution(obs, act)[0]
        return self.head(self.trunk(torch.cat([obs, act], dim=-1))).squeeze(-1)

    def distribution(self, obs: Tensor, act: Tensor) -> tuple[Tensor, Tensor]:
        """Q (N, B), the mean of each critic's distribution, and its log-probabilities
        (N, B, bins)."""
        logits = self.head(self.trunk(torch.cat([obs, act], dim=-1)))
        log_probs = F.log_softmax(logits, dim=-1)
        return (log_probs.exp() * self.support).sum(-1), log_probs
