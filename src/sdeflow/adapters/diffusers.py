"""diffusers models as sdeflow models: ``from_diffusers(unet_or_pipeline, scheduler) -> (model, process)``.

A diffusers DDPM-family scheduler holds the table ``alphas_cumprod[n]``, ``n = 0..N-1`` (Ho et al.
2020, ``alpha_bar``), and its networks are called at the integer index ``n`` (diffusers' "timestep").
sdeflow serves that table exactly as :class:`~sdeflow.processes.DiscreteVP` (entry ``n`` at time
``t = (n + 1)/N``, ``log alpha`` linear in ``t`` between entries, Lu et al. 2022, appendix D), and
the model calls the network at ``process.model_index(t) = N t - 1`` (fractional between entries);
``process.time_from_index(timesteps)`` is the inverse, so a diffusers schedule ``timesteps`` is the
sdeflow grid ``[time_from_index(timesteps), 0]``. diffusers is imported by nobody here: the objects
are duck-typed (``.config``, ``.alphas_cumprod``, ``.sample``).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..processes.vp import DiscreteVP

__all__ = ["DiffusersModel", "from_diffusers", "grid_from_timesteps", "noise_grid_from_timesteps", "process_from_scheduler", "network_time",
           "time_input_from_config", "PREDICTION_TYPES", "TIME_INPUTS"]

TIME_INPUTS = ("index", "log_sigma")
"""What a diffusers network is given as its timestep: the DDPM index ``model_index(t) = N t - 1`` (discrete
time, every DDPM-family scheduler) or ``log(rho)/4`` with ``rho = sigma/alpha`` (diffusers' ``timestep_type=
"continuous"`` for v-prediction, the EDM noise conditioning ``c_noise`` of Karras et al. 2022, table 1)."""

PREDICTION_TYPES = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}
"""diffusers' ``prediction_type`` -> sdeflow's prediction kind."""


def _config(obj: Any) -> dict[str, Any]:
    config = getattr(obj, "config", obj)
    if isinstance(config, dict):
        return dict(config)
    raise TypeError(f"scheduler must be a diffusers scheduler (with a .config) or its config dict; got {type(obj).__name__}")


def prediction_from_config(config: dict[str, Any]) -> str:
    """sdeflow's prediction kind of a diffusers ``prediction_type`` (default ``epsilon``)."""
    kind = config.get("prediction_type", "epsilon")
    if kind not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type {kind!r} of the scheduler is not supported; expected one of {list(PREDICTION_TYPES)}")
    return PREDICTION_TYPES[kind]


def time_input_from_config(config: dict[str, Any]) -> str:
    """``log_sigma`` where diffusers feeds its network ``log(sigma)/4`` (``timestep_type="continuous"`` with
    ``prediction_type="v_prediction"``, as diffusers' Euler scheduler honours it), else ``index``."""
    continuous = config.get("timestep_type", "discrete") == "continuous"
    return "log_sigma" if continuous and config.get("prediction_type", "epsilon") == "v_prediction" else "index"


def network_time(process: DiscreteVP, t: torch.Tensor, time_input: str = "index") -> torch.Tensor:
    """The timestep a diffusers network is given at sdeflow times ``t`` (float64): see :data:`TIME_INPUTS`."""
    if time_input == "index":
        return process.model_index(t)
    if time_input == "log_sigma":
        return 0.25 * torch.log(process.noise_level(t))
    raise ValueError(f"time_input must be one of {list(TIME_INPUTS)}; got {time_input!r}")


def process_from_scheduler(scheduler: Any) -> tuple[DiscreteVP, str]:
    """``(DiscreteVP, prediction)`` of a diffusers DDPM-family scheduler (its ``alphas_cumprod`` and config).

    The table is read as it is (diffusers computes it in float32: those values, widened to float64);
    a config dict without the table is rebuilt by :func:`alphas_cumprod_from_config`.
    """
    if isinstance(scheduler, DiscreteVP):
        raise TypeError("scheduler must be a diffusers scheduler or its config; a DiscreteVP is already a process")
    process = getattr(scheduler, "process", None)
    if isinstance(process, DiscreteVP):  # sdeflow's own DiffusersScheduler
        return process, scheduler.prediction
    config = _config(scheduler)
    table = getattr(scheduler, "alphas_cumprod", None)
    if table is None:
        table = alphas_cumprod_from_config(config)
    table = torch.as_tensor(table).detach().to("cpu", torch.float64).reshape(-1)
    n = config.get("num_train_timesteps", table.numel())
    if int(n) != table.numel():
        raise ValueError(f"the scheduler's num_train_timesteps={n} does not match its table of {table.numel()} entries")
    return DiscreteVP(table), prediction_from_config(config)


def alphas_cumprod_from_config(config: dict[str, Any]) -> torch.Tensor:
    """The DDPM table of a diffusers config (float64): ``trained_betas``, or ``beta_schedule`` ``linear``
    (Ho et al. 2020), ``scaled_linear`` (Stable Diffusion: square of linear in ``sqrt beta``) or
    ``squaredcos_cap_v2`` (Nichol & Dhariwal 2021, betas capped at 0.999)."""
    n = int(config.get("num_train_timesteps", 1000))
    start, end = float(config.get("beta_start", 1e-4)), float(config.get("beta_end", 0.02))
    schedule = config.get("beta_schedule", "linear")
    if config.get("trained_betas") is not None:
        betas = torch.as_tensor(config["trained_betas"], dtype=torch.float64)
    elif schedule == "linear":
        betas = torch.linspace(start, end, n, dtype=torch.float64)
    elif schedule == "scaled_linear":
        betas = torch.linspace(start**0.5, end**0.5, n, dtype=torch.float64) ** 2
    elif schedule == "squaredcos_cap_v2":
        s = torch.arange(n + 1, dtype=torch.float64) / n
        abar = torch.cos((s + 0.008) / 1.008 * torch.pi / 2) ** 2
        betas = torch.clamp(1 - abar[1:] / abar[:-1], max=0.999)
    else:
        raise ValueError(f"beta_schedule {schedule!r} is not supported; expected 'linear', 'scaled_linear', "
                         "'squaredcos_cap_v2' or trained_betas")
    return torch.cumprod(1.0 - betas, 0)


class DiffusersModel:
    """A diffusers network as an sdeflow model ``(x, t) -> out`` of kind :attr:`prediction` on :attr:`process`.

    The network is called as ``net(x, process.model_index(t), **conditioning).sample`` (or at ``log(rho)/4``
    where ``time_input="log_sigma"``, diffusers' continuous time, :data:`TIME_INPUTS`) in its own dtype
    and device (``x`` is cast there and the output cast back to ``x``'s dtype and device: reduced
    precision for the network only, DESIGN.md). A learned-variance network (``out_channels = 2 *
    in_channels``, Nichol & Dhariwal 2021) has its variance channels dropped. Conditioning
    (``class_labels``, ``encoder_hidden_states``, ``added_cond_kwargs``...) is bound with :meth:`bind`
    or passed per call.
    """

    def __init__(self, net: Any, process: DiscreteVP, prediction: str, conditioning: dict[str, Any] | None = None,
                 time_input: str = "index") -> None:
        if time_input not in TIME_INPUTS:
            raise ValueError(f"time_input must be one of {list(TIME_INPUTS)}; got {time_input!r}")
        self.net = net
        self.process = process
        self.prediction = prediction
        self.time_input = time_input
        self.conditioning = dict(conditioning or {})
        config = getattr(net, "config", {}) or {}
        in_ch, out_ch = config.get("in_channels"), config.get("out_channels")
        self.learned_variance = in_ch is not None and out_ch == 2 * in_ch

    def bind(self, **conditioning: Any) -> "DiffusersModel":
        """A copy that passes ``conditioning`` (added to the bound one) to every network call."""
        return DiffusersModel(self.net, self.process, self.prediction, {**self.conditioning, **conditioning}, self.time_input)

    def _net_dtype_device(self, x: torch.Tensor) -> tuple[torch.dtype, torch.device]:
        dtype, device = getattr(self.net, "dtype", None), getattr(self.net, "device", None)
        if dtype is None or device is None:
            param = next(iter(self.net.parameters()), None) if hasattr(self.net, "parameters") else None
            dtype = param.dtype if param is not None else x.dtype
            device = param.device if param is not None else x.device
        return dtype, device

    def __call__(self, x: torch.Tensor, t: torch.Tensor | float, **conditioning: Any) -> torch.Tensor:
        dtype, device = self._net_dtype_device(x)
        index = network_time(self.process, torch.as_tensor(t, dtype=torch.float64, device=x.device), self.time_input)
        if index.ndim == 0:
            index = index.expand(x.shape[0])
        out = self.net(x.to(device=device, dtype=dtype), index.to(device), **{**self.conditioning, **conditioning})
        out = getattr(out, "sample", out[0] if isinstance(out, tuple) else out)
        if self.learned_variance and out.shape[1] == 2 * x.shape[1]:
            out = out[:, : x.shape[1]]
        return out.to(device=x.device, dtype=x.dtype)

    def __repr__(self) -> str:
        return (f"DiffusersModel({type(self.net).__name__}, prediction={self.prediction!r}, {self.process!r}, "
                f"conditioning={sorted(self.conditioning)})")


def from_diffusers(model_or_pipeline: Any, scheduler: Any = None, **conditioning: Any) -> tuple[DiffusersModel, DiscreteVP]:
    """A diffusers network (or a pipeline holding one) as ``(model, process)`` for :func:`sdeflow.sample`.

    Args:
        model_or_pipeline: a ``UNet2DModel``, ``UNet2DConditionModel`` or any diffusers network
            ``net(sample, timestep, ...) -> output.sample``; or a pipeline with ``.unet`` (or
            ``.transformer``) and ``.scheduler``.
        scheduler: the scheduler the network was trained with (any DDPM-family scheduler: its
            ``alphas_cumprod``, ``num_train_timesteps`` and ``prediction_type``), or its config dict;
            default: the pipeline's.
        **conditioning: keyword arguments bound to every network call (``class_labels=...``,
            ``encoder_hidden_states=...``); or bind later with ``model.bind(...)``.

    Returns:
        ``(model, process)``: a :class:`DiffusersModel` (``model.prediction`` is ``eps``, ``x0`` or ``v``
        from ``prediction_type``; its timestep input the DDPM index, or ``log(sigma)/4`` for
        ``timestep_type="continuous"`` v-prediction) and the :class:`~sdeflow.processes.DiscreteVP` of the table.
        diffusers' DDIM is then ``sdeflow.sample(model, process, x, solver="ddim",
        grid=grid_from_timesteps(process, scheduler.timesteps))`` (docs/adapters.md).
    """
    net = model_or_pipeline
    for attr in ("unet", "transformer"):
        inner = getattr(model_or_pipeline, attr, None)
        if inner is not None and callable(inner):
            net = inner
            if scheduler is None:
                scheduler = getattr(model_or_pipeline, "scheduler", None)
            break
    if not callable(net):
        raise TypeError(f"model_or_pipeline must be a diffusers network or a pipeline with .unet; got {type(net).__name__}")
    if scheduler is None:
        raise ValueError("scheduler is required with a bare network: pass the scheduler (or its config) it was trained with, "
                         "e.g. from_diffusers(unet, DDPMScheduler.from_pretrained(repo, subfolder='scheduler'))")
    process, prediction = process_from_scheduler(scheduler)
    time_input = getattr(scheduler, "time_input", None) or time_input_from_config(_config(scheduler))
    return DiffusersModel(net, process, prediction, conditioning, time_input), process


def grid_from_timesteps(process: DiscreteVP, timesteps: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """The sdeflow grid of a diffusers schedule that ends at the data: ``[time_from_index(timesteps), 0]``."""
    return torch.cat([process.time_from_index(timesteps).reshape(-1).cpu(), torch.zeros(1, dtype=torch.float64)])


def noise_grid_from_timesteps(process: DiscreteVP, timesteps: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """The EDM-view grid of a diffusers schedule: the noise levels ``sigma/alpha`` of its timesteps, then 0.

    For diffusers' Euler, Heun and LMS schedulers, which run k-diffusion's samplers on ``y = x/alpha``;
    a timestep listed twice in a row (Heun's second stage) is one grid point.
    """
    steps = torch.unique_consecutive(torch.as_tensor(timesteps).double().reshape(-1))
    return torch.cat([process.noise_level(process.time_from_index(steps)).reshape(-1).cpu(), torch.zeros(1, dtype=torch.float64)])
