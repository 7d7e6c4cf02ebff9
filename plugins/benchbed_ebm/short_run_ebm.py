"""Data-space EBM learned with short-run MCMC, "short_run_ebm" (Nijkamp, Hill, Zhu, Wu, NeurIPS 2019,
"Learning non-convergent non-persistent short-run MCMC toward energy-based model"; and Nijkamp, Hill,
Han, Zhu, Wu, AAAI 2020, "On the anatomy of MCMC-based maximum likelihood learning of energy-based
models", arXiv 1903.12370).

Model: p_theta(x) ∝ exp(f_theta(x)) on the working scale (images in [-1, 1], vectors standardised),
f a scalar network (:mod:`benchbed_ebm.data_energy`).  Each iteration (official
``enijkamp/short_run/train_cifar10_minimal.py``):

1. positives: a data batch perturbed by N(0, data_noise^2) (official 0.03);
2. negatives: ``K = n_steps`` Langevin steps from ``x_0``,

       x_{k+1} = x_k + a grad_x f(x_k) + sigma eps_k,   eps_k ~ N(0, I),   a = s^2 / 2      (1)

   with ``x_0 ~ U[-init_scale, init_scale]^D`` (``init="noise"``, non-persistent; official K = 100,
   a = 1, sigma = 0.01) or ``x_0`` drawn from a bank of chains that were themselves started from that
   noise and are written back after every update (``init="persistent"``, the anatomy paper's
   persistent initialisation; one bank row per draw, rows picked at random as ``sample_image_set``);
3. loss ``-(mean f(x_data) - mean f(x_K))``, one Adam step (official lr 1e-4, betas (0.9, 0.999)).

The anatomy paper's regimes are parameter settings, one suite line each: non-convergent short-run
(``init="noise"``, K = 100-150, sigma = 0.01) and convergent persistent learning (``init="persistent"``,
K = 500, smaller sigma).

**The chains come from the suite's sampler axis** (role ``"data"``).  Update (1) is not
temperature-consistent for f (the noise is far smaller than Langevin's ``s`` for drift ``s^2/2``), but it is
exactly the Langevin update with step ``sigma`` on the tempered log-density

    log pi_T(x) = f(x) / T,     T = sigma^2 / (2 a),                                    (2)

since ``(sigma^2/2) grad f / T = a grad f``: the anatomy code's reading, whose SGD variant rescales the
loss by ``2 / eps^2`` for this reason.  So the model hands every sampler (2) with the defaults
``n_steps = K`` and ``step_size = sigma``; with the built-in ``langevin`` sampler at those defaults the chain
is update (1), with ``hmc`` it is Metropolis-corrected HMC targeting pi_T (its own step adaptation).  A
suite that overrides the sampler's ``step_size`` changes drift and noise together on the same pi_T.  The
built-in samplers act on any tensor shape (``[B, C, H, W]`` included): their transitions only use
per-chain reductions.  No special "official" code path is needed.

Diagnostic (anatomy paper, Section 3): the energy difference with U = -f the energy,

    d_t = mean U(x_data) - mean U(x_K) = -(mean f(x_data) - mean f(x_K)),

the anatomy paper's sign (the quantity its ``train_data.py`` minimises and records as ``d_s_t``; our loss
equals it, without the SGD-only ``2 / eps^2`` factor).  ``d_t < 0``: the samples have higher energy than the
data.  Convergent learning needs d_t to oscillate around 0.  Every step returns ``d_t`` (so it lands in
the training history), ``f_data``, ``f_samples`` and, when the sampler reports it, ``grad_norm``: the
mean ``|grad_x f|`` at the last chain state (the anatomy paper's r_t averages it over the whole path).

The chain as a generator (the NeurIPS'19 paper): x = M_theta(z), z = x_0 the initial noise.

* ``sample(n)``: the chain from fresh noise, ``sample_steps`` steps (0: K).
* ``infer(x)``: the initial noise whose chain output matches x,
  ``z* = argmin_z |x - M_theta(z)|^2``, by ``infer_steps`` Adam steps (lr ``infer_lr``) from
  ``z ~ U[-init_scale, init_scale]^D``, z clamped to that box after each step.  M_theta is update (1)
  with its noise term set to zero (a deterministic map of z, so the objective has one value per z;
  sigma = 0.01 is small next to the drift) and always the model's own differentiable implementation of
  (1), whatever the suite's sampler (the samplers return detached chains).  Cost: ``infer_steps`` x K
  forward and double-backward passes, so the default is small.
* ``reconstruct(x)`` = M_theta(infer(x)).
* ``anomaly_score(x)`` = -f(x) = U(x), the energy (log Z does not depend on x).

Deviations from the official code:
* Networks scaled for CPU: the official conv tower with n_f = 32 by default (official 64) and as many
  stride-2 layers as the image side allows (8x8 digits: one); an MLP for vector data.
* The persistent bank has ``bank_size`` rows (the anatomy image code keeps one per training image, its
  toy code 10 000).

Engine option ``fused`` (default on; the same chains up to floating-point rounding, bit for bit for the
MLP of vector data): the sampler gets (2) as a log-density with ``value_and_grad``
(:class:`_TemperedTarget`) whose gradient is a hand-written reverse pass through the energy network, the
operations autograd would run minus its bookkeeping, and minus the last conv layer's work: its output is
one number per example, so its input gradient is its weight times 1/T, and its forward is needed only
for the value on the last step; the conv weights are used in the channels-last layout (faster oneDNN
kernels, sums in another order).  ``fused=False`` is the reference, one autograd pass per step.  The cost
that remains is the conv arithmetic itself: the 4x4 stride-2 layer's forward and input gradient on 8x8
digits are most of a step, and they run near the core's peak floating-point rate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from annotated_types import Ge, Gt, Interval
from torch import nn

from benchbed.blocks.chains import frozen
from benchbed.blocks.fused import is_dense_stack, jet
from benchbed.blocks.scaling import DataScale
from benchbed.blocks.transitions import dynamics_mode
from benchbed.contracts import Batch, Sampler, SetupContext
from benchbed.model import LatentModel
from benchbed_ebm.data_energy import ScalarNet, energy_net

Init = Literal["noise", "persistent"]


class ShortRunEBM(LatentModel):
    """Data-space EBM ``p(x) ∝ exp f(x)`` whose short-run chain from noise is the generator.

    Latent codes are the chains' initial states, shaped like the data: ``[B, *D]``.

    Args:
        n_steps: K, chain steps per training iteration (official 100; the sampler's ``n_steps`` default).
        drift: a = s^2 / 2, the coefficient of ``grad f`` in update (1) (official 1).
        noise: sigma, the noise std of update (1) (official 0.01; the sampler's ``step_size`` default).
        init: ``"noise"`` (non-persistent) or ``"persistent"`` (bank of chains).
        init_scale: the initial noise is ``U[-init_scale, init_scale]`` on the working scale.
        bank_size: rows of the persistent bank (``init="persistent"`` only).
        data_noise: std of the Gaussian perturbation of the positives (official 0.03).
        lr, beta1, beta2: Adam (official 1e-4, 0.9, 0.999).
        n_f: width of the first conv layer (images).
        hidden: width of the MLP (vectors, and images with ``arch="mlp"``).
        arch: ``"conv"`` (the conv tower for images; ``"auto"`` is the same) or ``"mlp"`` (an MLP on the pixels).
        sample_steps: chain steps of :meth:`sample` (0: ``n_steps``).
        infer_steps, infer_lr: Adam steps and learning rate of :meth:`infer`.
    """

    capabilities = frozenset({"sample", "infer", "reconstruct", "anomaly_score"})
    bank: torch.Tensor

    def __init__(
        self,
        *,
        n_steps: Annotated[int, Gt(0)] = 100,
        drift: Annotated[float, Gt(0)] = 1.0,
        noise: Annotated[float, Gt(0)] = 0.01,
        init: Init = "noise",
        init_scale: Annotated[float, Gt(0)] = 1.0,
        bank_size: Annotated[int, Gt(0)] = 10000,
        data_noise: Annotated[float, Ge(0)] = 0.03,
        lr: Annotated[float, Gt(0)] = 1e-4,
        beta1: Annotated[float, Interval(ge=0, lt=1)] = 0.9,
        beta2: Annotated[float, Interval(ge=0, lt=1)] = 0.999,
        n_f: Annotated[int, Gt(0)] = 32,
        hidden: Annotated[int, Gt(0)] = 128,
        arch: Literal["auto", "mlp", "conv"] = "auto",
        sample_steps: Annotated[int, Ge(0)] = 0,
        infer_steps: Annotated[int, Ge(0)] = 20,
        infer_lr: Annotated[float, Gt(0)] = 0.05,
    ) -> None:
        super().__init__()
        if init not in ("noise", "persistent"):
            raise ValueError(f"model 'short_run_ebm': parameter 'init' must be 'noise' or 'persistent', got {init!r}")
        self.n_steps, self.drift, self.noise = n_steps, drift, noise
        self.init, self.init_scale, self.bank_size = init, init_scale, bank_size
        self.data_noise = data_noise
        self.lr, self.beta1, self.beta2 = lr, beta1, beta2
        self.n_f, self.hidden, self.arch = n_f, hidden, arch
        self.sample_steps, self.infer_steps, self.infer_lr = sample_steps, infer_steps, infer_lr

    @property
    def temperature(self) -> float:
        """T = sigma^2 / (2 a) of the tempered target (2)."""
        return self.noise**2 / (2.0 * self.drift)

    def setup(self, ctx: SetupContext) -> None:
        if ctx.sampler is None:
            raise ValueError("model 'short_run_ebm': needs a sampler provider (ModelSpec uses_sampler=True)")
        self.shape = tuple(ctx.info.shape)
        self.scale = DataScale(ctx.info, train=ctx.train)
        self.energy = energy_net(ctx.info, n_f=self.n_f, hidden=self.hidden,
                                 conv=None if self.arch == "auto" else self.arch == "conv")
        self.fused = ctx.engine.fused is not False
        self.sampler: Sampler = ctx.sampler("data", n_steps=self.n_steps, step_size=self.noise)
        rows = self.bank_size if self.init == "persistent" else 0
        self.register_buffer("bank", self._noise(rows, torch.device("cpu")))
        self.to(ctx.device)
        self.device = ctx.device
        self.optimizers = {
            "energy": torch.optim.Adam(self.energy.parameters(), lr=self.lr, betas=(self.beta1, self.beta2)),
        }

    # ------------------------------------------------------------------ pieces
    def _noise(self, n: int, device: torch.device | None = None) -> torch.Tensor:
        """``U[-init_scale, init_scale]`` draws ``[n, *D]`` (working scale)."""
        u = torch.rand(n, *self.shape, device=device if device is not None else self.device)
        return self.init_scale * (2.0 * u - 1.0)

    def f(self, x_m: torch.Tensor) -> torch.Tensor:
        """The negative energy ``f(x_m)``: ``[B, *D] -> [B]`` (working scale)."""
        out: torch.Tensor = self.energy(x_m)
        return out

    def tempered_log_density(self, x_m: torch.Tensor) -> torch.Tensor:
        """``f(x_m) / T`` ``[B]``, eq. (2): the log-density the sampler runs on."""
        return self.f(x_m) / self.temperature

    def _chains(self, x0: torch.Tensor, n_steps: int = 0) -> tuple[torch.Tensor, dict[str, float]]:
        """The suite sampler's chains from ``x0`` ``[B, *D]`` on (2), the energy frozen; ``n_steps > 0``
        overrides the sampler's step count for this call.  Works under ``no_grad``."""
        overrides = {"n_steps": n_steps} if n_steps > 0 else {}
        target = _TemperedTarget.build(self.energy, self.temperature) if self.fused else None
        with frozen(self.energy), torch.enable_grad():
            result = self.sampler.sample(target or self.tempered_log_density, x0.detach(), **overrides)
        return result.z.detach(), result.diagnostics

    # ------------------------------------------------------------------ training
    def train_step(self, batch: Batch, step: int) -> Mapping[str, float]:
        x_m = self.scale.to_model(batch.x)
        x_pos = x_m + self.data_noise * torch.randn_like(x_m)
        n = x_m.shape[0]
        if self.init == "persistent":
            size = self.bank.shape[0]
            # Distinct rows when the bank is large enough (the anatomy code's randperm).
            rows = (torch.randperm(size, device=self.device)[:n] if size >= n
                    else torch.randint(0, size, (n,), device=self.device))
            x_neg, diag = self._chains(self.bank[rows])
            self.bank[rows] = x_neg
        else:
            x_neg, diag = self._chains(self._noise(n))
        f_data, f_samples = self.f(x_pos).mean(), self.f(x_neg).mean()
        loss = f_samples - f_data  # -(mean f(data) - mean f(samples)) = d_t (anatomy sign, U = -f)
        opt = self.optimizers["energy"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        out = {"d_t": loss.item(), "f_data": f_data.item(), "f_samples": f_samples.item()}
        grad_norm = diag.get("grad_norm")
        if grad_norm is not None and grad_norm == grad_norm:  # the sampler's |grad log pi_T|, times T
            out["grad_norm"] = float(grad_norm) * self.temperature
        if "acceptance_rate" in diag and diag["acceptance_rate"] == diag["acceptance_rate"]:
            out["acceptance_rate"] = float(diag["acceptance_rate"])
        return out

    # ------------------------------------------------------------------ the chain as a generator
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """M_theta(z): update (1) with the noise term dropped, ``sample_steps`` (0: K) steps from ``z`` ``[B, *D]``,
        differentiable in ``z`` (``create_graph``: second derivatives of f flow back).  Needs grad mode."""
        x = z
        for _ in range(self.sample_steps or self.n_steps):
            (grad,) = torch.autograd.grad(self.f(x).sum(), x, create_graph=True)
            x = x + self.drift * grad
        return x

    def sample(self, n: int) -> torch.Tensor:
        """``[n, *D]``: the suite sampler's chain on (2) from fresh ``U[-init_scale, init_scale]`` noise,
        ``sample_steps`` steps (0: K), mapped to the data scale."""
        x, _ = self._chains(self._noise(n), self.sample_steps)
        return self.scale.to_data(x)

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """Initial noise ``[B, *D]`` whose noise-free chain M_theta reproduces ``x``: ``infer_steps`` Adam
        steps on ``sum_b |x_b - M_theta(z_b)|^2`` (working scale) from uniform noise."""
        with dynamics_mode(), frozen(self.energy):
            target = self.scale.to_model(x).detach().clone()
            z = self._noise(target.shape[0]).requires_grad_(True)
            opt = torch.optim.Adam([z], lr=self.infer_lr)
            for _ in range(self.infer_steps):
                x_hat = self.generate(z)
                loss = ((x_hat - target) ** 2).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    z.clamp_(-self.init_scale, self.init_scale)
            return z.detach()

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``M_theta(infer(x))`` on the data scale ``[B, *D]``."""
        z = self.infer(x)
        with dynamics_mode(), frozen(self.energy):
            x_hat = self.generate(z.clone().requires_grad_(True)).detach()
        return self.scale.to_data(x_hat)

    def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
        """The energy ``U(x) = -f(x)`` ``[B]``; higher = more anomalous."""
        return -self.f(self.scale.to_model(x))


# ---------------------------------------------------------------------------------------------------- fused


#: ``(x, need_value, v) -> (f(x) [B] or None, v * grad_x f(x) [B, *D])`` with ``v`` a scalar.
_ValueAndGrad = Callable[[torch.Tensor, bool, torch.Tensor], tuple[torch.Tensor | None, torch.Tensor]]


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    """A channels-last copy of ``t`` [N, C, H, W] with channels-last strides even where C = 1 (where
    ``contiguous(memory_format=...)`` keeps the default strides and oneDNN would then mix layouts)."""
    out = torch.empty_like(t, memory_format=torch.channels_last)
    return out.copy_(t)


def _conv_tower_pass(trunk: nn.Sequential) -> _ValueAndGrad | None:
    """The hand-written pass of a conv tower (:func:`benchbed_ebm.data_energy.conv_energy`): Conv2d and
    LeakyReLU layers ending in a Conv2d to one channel whose kernel covers its whole input (one number per
    example); ``None`` for anything else.

    The reverse pass calls the kernels autograd's backward calls (``convolution_backward`` for the input
    only, ``leaky_relu_backward``); the last layer's input gradient, a single product per element, is
    ``v * weight``.  The weights are taken in the channels-last layout (a copy per pass builder, i.e. per
    chain run, while the network is frozen), which oneDNN computes about 10% faster on CPU than
    autograd's default layout; the sums are then taken in another order, so values and gradients agree
    with autograd's to floating-point rounding (not bit for bit).
    """
    layers = list(trunk)
    if not layers or not all(isinstance(m, (nn.Conv2d, nn.LeakyReLU)) for m in layers):
        return None
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    if any(c.groups != 1 or c.padding_mode != "zeros" or isinstance(c.padding, str) for c in convs):
        return None
    last = layers[-1]
    if not isinstance(last, nn.Conv2d) or last.out_channels != 1 or last.padding != (0, 0):
        return None
    aten = torch.ops.aten
    body: list[nn.Conv2d | nn.LeakyReLU] = [m for m in layers[:-1] if isinstance(m, (nn.Conv2d, nn.LeakyReLU))]
    with torch.no_grad():
        weight = {id(c): _channels_last(c.weight) for c in convs}
    last_weight = weight[id(last)]

    def run(x: torch.Tensor, need_value: bool, v: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        tape: list[tuple[nn.Conv2d | nn.LeakyReLU, torch.Tensor]] = []
        h = _channels_last(x)
        for m in body:
            out = (F.conv2d(h, weight[id(m)], m.bias, m.stride, m.padding, m.dilation) if isinstance(m, nn.Conv2d)
                   else F.leaky_relu(h, m.negative_slope))
            tape.append((m, h))
            h = out
        if tuple(h.shape[-2:]) != tuple(last.kernel_size):
            raise ValueError("the last conv layer does not cover its input")
        value = F.conv2d(h, last_weight, last.bias, last.stride, 0, last.dilation).reshape(x.shape[0]) \
            if need_value else None
        g = (v * last_weight).expand(h.shape)
        if body and isinstance(body[-1], nn.Conv2d):  # leaky_relu_backward makes a dense tensor of it itself
            g = g.contiguous(memory_format=torch.channels_last)
        for m, inp in reversed(tape):
            if isinstance(m, nn.Conv2d):
                g = aten.convolution_backward(g, inp, weight[id(m)], None, list(m.stride), list(m.padding),
                                              list(m.dilation), False, [0, 0], 1, [True, False, False])[0]
            else:
                g = aten.leaky_relu_backward(g, inp, m.negative_slope, False)
        return value, g

    return run


def _dense_pass(trunk: nn.Module) -> _ValueAndGrad:
    """The hand-written pass of an MLP trunk (:func:`benchbed.blocks.fused.jet`) on flattened inputs."""
    mlp = jet(trunk)

    def run(x: torch.Tensor, need_value: bool, v: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        out, tape = mlp.forward(x.reshape(x.shape[0], -1), True)
        assert out is not None
        g = mlp.vjp(tape, v.expand(out.shape))
        return (out.reshape(x.shape[0]) if need_value else None), g.reshape(x.shape)

    return run


class _TemperedTarget:
    """The tempered log-density (2), f(x) / T, with a hand-written gradient
    (:class:`benchbed.contracts.GradLogDensity`; build it with :meth:`build`).

    Calling it is autograd's f(x) / T.  :meth:`value_and_grad` seeds the reverse pass with 1/T, as
    autograd's backward of ``(f / T).sum()`` does: through an MLP the same numbers bit for bit, through
    the conv tower the same to rounding (its channels-last kernels sum in another order).
    """

    def __init__(self, energy: ScalarNet, temperature: float, run: _ValueAndGrad) -> None:
        self.energy, self.temperature, self.run = energy, temperature, run

    @classmethod
    def build(cls, energy: ScalarNet, temperature: float) -> _TemperedTarget | None:
        """The target for ``energy`` (a :class:`ScalarNet` with a conv tower or an MLP trunk), ``None`` when
        the network has another form (the caller then uses the autograd log-density)."""
        trunk = energy.trunk
        if isinstance(trunk, nn.Sequential) and not energy.flatten:
            run = _conv_tower_pass(trunk)
        elif energy.flatten and is_dense_stack(trunk):
            run = _dense_pass(trunk)
        else:
            run = None
        return None if run is None else cls(energy, temperature, run)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.energy(x) / self.temperature

    def value_and_grad(self, x: torch.Tensor, *, value: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``(f(x) / T or None, grad_x f(x) / T)``: ([B] or None, [B, *D]), detached."""
        with torch.no_grad():
            inv_t = torch.ones((), dtype=x.dtype, device=x.device) / self.temperature
            f, grad = self.run(x, value, inv_t)
            return (None if f is None else f / self.temperature), grad
