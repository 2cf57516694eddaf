"""Networks: an MLP, the tanh-squashed Gaussian actor (and its gSDE variant), N critics as
one batched module, and the convolutional encoder of image observations.
Architecture only: sac.kernels holds the CPU kernel swapped in where it pays."""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Normal

from sac.losses import PIXELS, STATE

_LOG2 = math.log(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def mlp(
    in_dim: int, hidden_sizes: list[int], out_dim: int, batch_norm: bool = False
) -> nn.Sequential:
    """ReLU MLP with a linear output layer; `batch_norm` puts batch renormalisation before every
    linear layer (input included), as CrossQ's actor does (Bhatt et al. 2024)."""
    layers: list[nn.Module] = []
    last = in_dim
    for h in [*hidden_sizes, out_dim]:
        if batch_norm:
            layers.append(BatchRenorm(last))
        layers += [nn.Linear(last, h), nn.ReLU(inplace=True)]
        last = h
    return nn.Sequential(*layers[:-1])


class BatchRenorm(nn.Module):
    """Batch renormalisation (Ioffe 2017) over the batch dimension, for (B, F) inputs or, with
    `num` > 0, (num, B, F) ensemble inputs with statistics and affine parameters per member.

    In training mode it normalises with the batch's statistics and updates running ones; after
    `warmup` training batches it corrects towards the running statistics with the clipped
    factors r and d (which carry no gradient). Before that it is plain batch normalisation. In
    eval mode it uses the running statistics. Defaults follow CrossQ (Bhatt et al. 2024):
    momentum 0.01, eps 1e-3, r_max 3, d_max 5, 100k warm-up batches.
    """

    def __init__(
        self,
        features: int,
        num: int = 0,
        momentum: float = 0.01,
        eps: float = 1e-3,
        warmup: int = 100_000,
        r_max: float = 3.0,
        d_max: float = 5.0,
    ) -> None:
        super().__init__()
        shape = (num, 1, features) if num > 0 else (features,)
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape))
        self.register_buffer("running_mean", torch.zeros(shape))
        self.register_buffer("running_var", torch.ones(shape))
        self.register_buffer("num_batches", torch.zeros((), dtype=torch.long))
        self.batch_dim = 1 if num > 0 else 0
        self.momentum, self.eps, self.warmup = momentum, eps, warmup
        self.r_max, self.d_max = r_max, d_max

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            x_hat = (x - self.running_mean) * torch.rsqrt(self.running_var + self.eps)
            return x_hat * self.weight + self.bias
        var, mean = torch.var_mean(x, dim=self.batch_dim, keepdim=self.batch_dim == 1, correction=0)
        std = (var + self.eps).sqrt()
        x_hat = (x - mean) / std
        with torch.no_grad():
            running_std = (self.running_var + self.eps).sqrt()
            # Before the warm-up ends r = 1 and d = 0: plain batch norm. Selected on the device
            # (no host sync on the step count).
            on = (self.num_batches >= self.warmup).to(x.dtype)
            r = 1.0 + on * ((std / running_std).clamp(1 / self.r_max, self.r_max) - 1.0)
            d = on * ((mean - self.running_mean) / running_std).clamp(-self.d_max, self.d_max)
            n = x.shape[self.batch_dim]
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * (n / max(n - 1, 1)), self.momentum)  # unbiased, as BN
            self.num_batches += 1
        return (x_hat * r + d) * self.weight + self.bias


def squashed_log_prob(u: Tensor, eps: Tensor, log_std: Tensor) -> Tensor:
    """log pi(tanh(u)) for u = mu + std * eps, summed over action dimensions.

    The Gaussian part is log N(u; mu, std) = -eps^2 / 2 - log std - log(2 pi) / 2, since
    (u - mu) / std is eps: written with eps it needs no division or square of std, and its
    gradient is the same (the first term's total derivative through u, mu and std is zero).
    Change of variables for a = tanh(u): log pi(a) = log N(u) - sum log(1 - tanh(u)^2), with
    log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2u)), which stays finite where tanh(u)
    rounds to +-1 (SAC paper, appendix C; the stable form is from TensorFlow Probability).
    """
    log_det = 2.0 * (_LOG2 - u - F.softplus(-2.0 * u))
    return (-0.5 * eps.pow(2) - log_std - _HALF_LOG_2PI - log_det).sum(-1)


class SquashedGaussianActor(nn.Module):
    """pi(a|s) = tanh(N(mu(s), std(s))), acting in [-1, 1]^dim(A). `net` maps observations to
    [mu, unbounded log std] (B, 2 dim(A)): an MLP of `hidden_sizes` unless one is given."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_sizes: list[int],
        log_std_min: float = -5.0,
        log_std_max: float = 2.0,
        batch_norm: bool = False,
        net: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.net = net if net is not None else mlp(obs_dim, hidden_sizes, 2 * act_dim, batch_norm)
        self.log_std_min = log_std_min
        self.log_std_max = log_std_max

    def mean_log_std(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """mu(s) and log std(s) of the Gaussian before squashing."""
        mu, raw_log_std = self.net(obs).chunk(2, dim=-1)
        # Soft bound instead of a hard clamp, so log_std keeps a gradient near its limits.
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (
            torch.tanh(raw_log_std) + 1.0
        )
        return mu, log_std

    def distribution(self, obs: Tensor) -> Normal:
        """The Gaussian before squashing, as a torch distribution."""
        mu, log_std = self.mean_log_std(obs)
        return Normal(mu, log_std.exp(), validate_args=False)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Sample a ~ pi(.|s) with the reparameterisation trick; return (a, log pi(a|s)).

        u = mu + std * eps with eps drawn outside the graph (what `Normal.rsample()` does, and
        the same draw), so gradients of a loss on `a` reach the actor's parameters. Sampling
        u itself (`Normal.sample()`) would make `a` a constant to autograd and cut them.
        """
        u, eps, log_std = self._draw(obs)
        return torch.tanh(u), squashed_log_prob(u, eps, log_std)

    def sample_action(self, obs: Tensor) -> Tensor:
        """a ~ pi(.|s) alone, the same draw as `forward`'s: acting needs no log-prob."""
        return torch.tanh(self._draw(obs)[0])

    def _draw(self, obs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """u = mu(s) + std(s) * eps, the noise eps and log std(s)."""
        mu, log_std = self.mean_log_std(obs)
        eps = torch.randn_like(mu)
        return mu + eps * log_std.exp(), eps, log_std

    def deterministic(self, obs: Tensor) -> Tensor:
        """The evaluation action tanh(mu(s)); the std half of the output is not needed."""
        return torch.tanh(self.net(obs).chunk(2, dim=-1)[0])


class GSDEActor(nn.Module):
    """gSDE (Raffin et al. 2022, "Smooth Exploration for Robotic Reinforcement Learning"; SB3's
    `use_sde`): pi(a|s) = tanh(N(mu(s), sigma(s)^2)) with sigma_j(s)^2 = sum_i z_i(s)^2 S_ij^2,
    where z(s) are the last hidden layer's features (detached, so exploration does not shape
    them) and S = exp(log_std) a learned (features x actions) matrix.

    Exploring, the noise is z(s) @ theta with a matrix theta ~ N(0, S^2) held fixed between
    `reset_noise` calls (one per env): the same state gives the same action, so exploration is
    smooth in time. The losses sample the same distribution per sample (u = mu + sigma(s) * eps,
    which z(s) @ theta is for a fresh theta), where SB3 draws one theta per gradient step.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_sizes: list[int],
        log_std_init: float = -3.0,
        batch_norm: bool = False,
        clip_mean: float = 2.0,
    ) -> None:
        super().__init__()
        features = hidden_sizes[-1]
        self.trunk = nn.Sequential(
            mlp(obs_dim, hidden_sizes[:-1], features, batch_norm), nn.ReLU(inplace=True)
        )
        self.mu = nn.Linear(features, act_dim)
        self.log_std = nn.Parameter(torch.full((features, act_dim), float(log_std_init)))
        # SB3's bound on the mean before tanh (its clip_mean): keeps the squashed Gaussian away
        # from saturation, where gSDE's small variances would give huge log-probabilities.
        self.clip_mean = clip_mean
        # One theta per env, (envs, features, actions); not saved with the weights (its size
        # is the number of envs) but in the agent's state.
        self.register_buffer("noise", torch.zeros(0, features, act_dim), persistent=False)

    def mean_log_std(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """mu(s) and log sigma(s) of the Gaussian before squashing."""
        mu, log_std, _ = self._params(obs)
        return mu, log_std

    def _params(self, obs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        z = self.trunk(obs)
        mu = self.mu(z).clamp(-self.clip_mean, self.clip_mean)
        z = z.detach()
        variance = z.pow(2) @ (2.0 * self.log_std).exp()
        # + 1e-6 as SB3: a state whose features are all zero still has a finite log-prob
        return mu, 0.5 * torch.log(variance + 1e-6), z

    def distribution(self, obs: Tensor) -> Normal:
        """The Gaussian before squashing, as a torch distribution."""
        mu, log_std = self.mean_log_std(obs)
        return Normal(mu, log_std.exp(), validate_args=False)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """a ~ pi(.|s) by the reparameterisation trick, and log pi(a|s) (see the class)."""
        mu, log_std, _ = self._params(obs)
        eps = torch.randn_like(mu)
        u = mu + eps * log_std.exp()
        return torch.tanh(u), squashed_log_prob(u, eps, log_std)

    def reset_noise(self, envs: int, which: Tensor | None = None) -> None:
        """Draw new exploration matrices theta ~ N(0, S^2): for all `envs` envs, or only for
        those where the bool mask `which` is set (their episodes ended)."""
        std = self.log_std.detach().exp()
        if self.noise.shape[0] != envs:
            self.noise = torch.zeros(envs, *std.shape, device=std.device)
            which = None
        fresh = torch.randn(envs, *std.shape, device=std.device) * std
        if which is None:
            self.noise = fresh
        else:
            self.noise = torch.where(which.view(-1, 1, 1).to(std.device), fresh, self.noise)

    def sample_action(self, obs: Tensor) -> Tensor:
        """Exploring: tanh(mu(s) + z(s) @ theta), row i with env i's theta (drawn at first use,
        and whenever the batch is not one row per env)."""
        mu, _, z = self._params(obs)
        if self.noise.shape[0] != obs.shape[0]:
            self.reset_noise(obs.shape[0])
        return torch.tanh(mu + torch.bmm(z.unsqueeze(1), self.noise).squeeze(1))

    def deterministic(self, obs: Tensor) -> Tensor:
        """The evaluation action tanh(mu(s))."""
        return torch.tanh(self.mu(self.trunk(obs)).clamp(-self.clip_mean, self.clip_mean))


class EnsembleLinear(nn.Module):
    """N independent linear layers applied as one batched matmul: (N, B, in) -> (N, B, out)."""

    def __init__(self, num: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(num, 1, out_dim))
        # Same distribution as nn.Linear's default init, per member.
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleCritic(nn.Module):
    """N Q-functions Q_i(s, a) evaluated together; forward returns shape (N, B).

    `norm` adds per-member normalisation to the hidden layers: "layer" is LayerNorm after each
    hidden linear layer (Ball et al. 2023; with `dropout` > 0 it is DroQ's Linear -> Dropout ->
    LayerNorm -> ReLU, Hiraoka et al. 2022); "batch" is batch renormalisation before every
    linear layer, CrossQ's critic (Bhatt et al. 2024).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_sizes: list[int],
        num: int = 2,
        norm: str = "none",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if num < 1:
            raise ValueError(f"num_critics must be >= 1, got {num}")
        if norm not in ("none", "layer", "batch"):
            raise ValueError(f"critic norm must be none, layer or batch, got {norm!r}")
        self.num = num
        dims = [obs_dim + act_dim, *hidden_sizes, 1]
        pairs = list(itertools.pairwise(dims))
        # Kept as `layers` (state-dict keys layers.N) so plain critics load from older checkpoints.
        self.layers = nn.ModuleList(EnsembleLinear(num, d_in, d_out) for d_in, d_out in pairs)
        self.batch_norms = nn.ModuleList(
            BatchRenorm(d_in, num) for d_in, _ in pairs if norm == "batch"
        )
        self.layer_norms = nn.ModuleList(
            EnsembleLayerNorm(num, d_out) for _, d_out in pairs[:-1] if norm == "layer"
        )
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        # In place: baddbmm, dropout and the norm keep no output for their backward pass.
        self.activation = nn.ReLU(inplace=True)

    def forward(self, obs: Tensor, act: Tensor) -> Tensor:
        x = torch.cat([obs, act], dim=-1).expand(self.num, -1, -1)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if self.batch_norms:
                x = self.batch_norms[i](x)
            x = layer(x)
            if i < last:
                if self.dropout is not None:
                    x = self.dropout(x)
                if self.layer_norms:
                    x = self.layer_norms[i](x)
                x = self.activation(x)
        return x.squeeze(-1)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the features of (N, B, F) inputs, with an affine map per member."""

    def __init__(self, num: int, features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num, 1, features))
        self.bias = nn.Parameter(torch.zeros(num, 1, features))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x = F.layer_norm(x, x.shape[-1:], eps=self.eps)
        return torch.addcmul(self.bias, x, self.weight)


class PixelEncoder(nn.Module):
    """The convolutional encoder of SAC-AE and DrQ (Yarats et al. 2021; Kostrikov, Yarats and
    Fergus 2021): uint8 images (B, C, H, W), C the stacked frames' channels, scaled to [0, 1],
    through `layers` 3x3 convolutions of `filters` channels (stride 2, then 1) with ReLUs, to
    flat features (B, out_dim). 84x84 inputs give 35x35 maps. Critics and actor each put a
    FeatureHead of their own on it (DrQ)."""

    def __init__(self, obs_shape: tuple[int, int, int], filters: int = 32, layers: int = 4) -> None:
        super().__init__()
        channels, height, width = obs_shape
        convs: list[nn.Module] = []
        for i in range(layers):
            convs += [nn.Conv2d(channels if i == 0 else filters, filters, 3, 2 if i == 0 else 1)]
            convs += [nn.ReLU(inplace=True)]
        self.convs = nn.Sequential(*convs)
        h, w = conv_output_size(height, width, layers)
        self.out_dim = filters * h * w

    def forward(self, obs: Tensor) -> Tensor:
        # one float copy of the batch, scaled in place (a float input is never changed)
        return self.convs(obs.to(torch.float32, copy=True).div_(255.0)).flatten(1)


def conv_output_size(height: int, width: int, layers: int) -> tuple[int, int]:
    """The (height, width) of PixelEncoder's last feature map: a 3x3 convolution of stride 2,
    then `layers` - 1 of stride 1, none padded; 0 or less where the image is too small."""

    def size(n: int) -> int:
        return (n - 3) // 2 + 1 - 2 * (layers - 1)

    return size(height), size(width)


def encode(encoder: nn.Module, obs: Tensor | dict[str, Tensor]) -> Tensor:
    """The encoder's output of images, (B, out_dim); of frames beside the state (a dict
    {PIXELS: frames, STATE: states}), the state concatenated after it (FeatureHead passes it
    through to the MLPs)."""
    if not isinstance(obs, dict):
        return encoder(obs)
    return torch.cat([encoder(obs[PIXELS]), obs[STATE]], -1)


class FeatureHead(nn.Sequential):
    """DrQ's head on the convolutional features: linear, LayerNorm, tanh. Its input may carry
    a state vector after the `in_dim` convolutional features (frames beside the state), which
    passes through unchanged beside the head's `features` outputs."""

    def __init__(self, in_dim: int, features: int) -> None:
        super().__init__(nn.Linear(in_dim, features), nn.LayerNorm(features), nn.Tanh())
        self.in_dim = in_dim

    def forward(self, x: Tensor) -> Tensor:
        head = super().forward(x[..., : self.in_dim])
        if x.shape[-1] == self.in_dim:
            return head
        return torch.cat([head, x[..., self.in_dim :]], -1)


class EncodedCritic(nn.Module):
    """The critics of image observations: a PixelEncoder and a feature head shared by the N
    critics (an EnsembleCritic on the head's output, and the state where it is observed
    beside the frames). The critic loss trains the encoder; `heads` takes `features` as they
    are (the actor loss passes them detached)."""

    def __init__(self, encoder: PixelEncoder, features: int, critics: EnsembleCritic) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = FeatureHead(encoder.out_dim, features)
        self.critics = critics

    def forward(self, obs: Tensor | dict[str, Tensor], act: Tensor) -> Tensor:
        return self.heads(self.features(obs), act)

    def features(self, obs: Tensor | dict[str, Tensor]) -> Tensor:
        """`encode(self.encoder, obs)`."""
        return encode(self.encoder, obs)

    def heads(self, features: Tensor, act: Tensor) -> Tensor:
        """Q_i, (N, B), of `features` (see `features`)."""
        return self.critics(self.head(features), act)
