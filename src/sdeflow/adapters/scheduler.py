"""Any sdeflow solver behind diffusers' scheduler interface: :class:`DiffusersScheduler`.

A diffusers pipeline drives its own loop::

    scheduler.set_timesteps(steps)
    x = randn(...) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        out = unet(scheduler.scale_model_input(x, t), t).sample
        x = scheduler.step(out, t, x).prev_sample

:class:`DiffusersScheduler` answers each ``step`` by handing the network's output to an
:class:`~sdeflow.stepper.Stepper` (the one sampling loop, :func:`sdeflow.sample`, paused at each
model call) and returning the state of the next model call (the sample, after the last one). So the
samples are exactly those of ``sdeflow.sample`` with the same solver, grid and seed. ``timesteps``
holds the DDPM index ``model_index(t)`` of every model call (fractional between table entries; a
two-call solver such as Heun lists two per step, as diffusers' Heun scheduler does).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

from .._utils import check_int, expand_to
from ..grids.base import Explicit, TimeGrid
from ..models.parameterization import to_x0_eps
from ..processes.vp import DiscreteVP
from ..sample import MAX_STEPS, sample
from ..solvers.base import Solver, get as get_solver
from ..stepper import Stepper
from .diffusers import (
    PREDICTION_TYPES,
    alphas_cumprod_from_config,
    grid_from_timesteps,
    network_time,
    process_from_scheduler,
    time_input_from_config,
)

__all__ = ["DiffusersScheduler", "SchedulerOutput"]

_CONFIG_KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "prediction_type",
                "timestep_type")


class SchedulerOutput:
    """What :meth:`DiffusersScheduler.step` returns (as diffusers' ``SchedulerOutput``).

    ``prev_sample``: the state at which the network is called next (the final sample after the last
    call); ``pred_original_sample``: the x0 estimate of this call, computed when first read. Indexing
    as diffusers' outputs allow: ``out[0]`` and ``out["prev_sample"]`` are ``prev_sample``.
    """

    def __init__(self, prev_sample: torch.Tensor, x0: Callable[[], torch.Tensor] | None = None) -> None:
        self.prev_sample = prev_sample
        self._x0 = x0
        self._x0_value: torch.Tensor | None = None

    @property
    def pred_original_sample(self) -> torch.Tensor | None:
        if self._x0_value is None and self._x0 is not None:
            self._x0_value = self._x0()
        return self._x0_value

    def __getitem__(self, key: int | str) -> torch.Tensor | None:
        if key in (0, "prev_sample"):
            return self.prev_sample
        if key in (1, "pred_original_sample"):
            return self.pred_original_sample
        raise KeyError(key)

    def to_tuple(self) -> tuple[torch.Tensor, ...]:
        return (self.prev_sample,)


class _Config(dict):
    """A read-only config with attribute access, like diffusers' ``FrozenDict``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class DiffusersScheduler:
    """A diffusers-compatible scheduler running an sdeflow solver (``set_timesteps``, ``timesteps``,
    ``init_noise_sigma``, ``scale_model_input``, ``step(...).prev_sample``, ``order``, ``add_noise``).

    Args:
        solver_name: a registered solver (``sdeflow.solvers.available()``) or a configured
            :class:`~sdeflow.solvers.Solver`; default ``unipc``.
        num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas: the DDPM table, as in
            diffusers' configs (``linear``, ``scaled_linear``, ``squaredcos_cap_v2``); or use
            :meth:`from_scheduler` to take a diffusers scheduler's own table exactly.
        prediction_type: ``epsilon``, ``sample`` or ``v_prediction`` (what the network predicts).
        timestep_type: ``discrete`` (the network is given DDPM indices) or ``continuous`` (with
            ``v_prediction``: ``log(sigma)/4``, as diffusers' Euler scheduler).
        grid: an sdeflow grid (a :class:`~sdeflow.grids.TimeGrid` or its name); default: the solver's
            default grid in :func:`sdeflow.sample`. ``set_timesteps(timesteps=...)`` takes diffusers'
            integer timesteps instead.
        seed: per-sample seeds of the Brownian path of a stochastic solver (an int ``s`` means
            ``s, s+1, ...``). Without it, a seed is drawn from the ``generator`` given to :meth:`step`,
            or else from torch's global generator, as diffusers' own schedulers do.
        **solver_options: the solver's options (``order=3``, ``eta=1.0``, ``solver_type="midpoint"``...).

    The state is the process's own (the network's input): ``init_noise_sigma = sqrt(alpha^2 + sigma^2)``
    at the first time (1 on a VP table) and :meth:`scale_model_input` returns its input.
    """

    def __init__(
        self,
        solver_name: str | Solver = "unipc",
        *,
        num_train_timesteps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: Sequence[float] | None = None,
        prediction_type: str = "epsilon",
        timestep_type: str = "discrete",
        grid: TimeGrid | str | None = None,
        seed: int | Sequence[int] | None = None,
        _alphas_cumprod: torch.Tensor | None = None,
        **solver_options: Any,
    ) -> None:
        check_int(num_train_timesteps, "num_train_timesteps", minimum=2)
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {list(PREDICTION_TYPES)}; got {prediction_type!r}")
        if grid is not None and not isinstance(grid, (TimeGrid, str)):
            raise TypeError(f"grid must be an sdeflow TimeGrid or a grid name; got {type(grid).__name__} "
                            "(explicit diffusers timesteps go to set_timesteps(timesteps=...))")
        self.solver = get_solver(solver_name, **solver_options)
        if getattr(self.solver, "adaptive", False):
            raise ValueError(f"solver {self.solver.name!r} chooses its steps from the model's outputs; a diffusers "
                             "loop needs its timesteps in advance: pick a fixed-step solver")
        self.config = _Config(
            solver_name=self.solver.name, solver_options=self.solver.options(), num_train_timesteps=num_train_timesteps,
            beta_start=beta_start, beta_end=beta_end, beta_schedule=beta_schedule, trained_betas=trained_betas,
            prediction_type=prediction_type, timestep_type=timestep_type,
        )
        if timestep_type not in ("discrete", "continuous"):
            raise ValueError(f"timestep_type must be 'discrete' or 'continuous'; got {timestep_type!r}")
        self.time_input = time_input_from_config(self.config)
        table = _alphas_cumprod if _alphas_cumprod is not None else alphas_cumprod_from_config(self.config)
        if table.numel() != num_train_timesteps:
            raise ValueError(f"num_train_timesteps={num_train_timesteps} does not match the table of {table.numel()} entries")
        self.process = DiscreteVP(table)
        self.prediction = PREDICTION_TYPES[prediction_type]
        self.grid = grid
        self.seed = seed
        self.order = int(self.solver.calls_per_step)
        self.num_inference_steps: int | None = None
        self.timesteps = torch.empty(0, dtype=torch.float64)
        self._times: list[float] = []
        self._x0_maps: list[tuple[float, float]] = []
        self._ts: torch.Tensor | None = None
        self._stepper: Stepper | None = None
        self._last: torch.Tensor | None = None
        self._index = 0

    # ------------------------------------------------------------------ construction from diffusers
    @classmethod
    def from_scheduler(cls, scheduler: Any, solver_name: str | Solver = "unipc", **kwargs: Any) -> "DiffusersScheduler":
        """The same table and prediction type as a diffusers scheduler (its ``alphas_cumprod`` as it is)."""
        process, _ = process_from_scheduler(scheduler)
        config = dict(getattr(scheduler, "config", {}))
        options = {k: config[k] for k in _CONFIG_KEYS if k in config}
        options.update(kwargs)
        options["num_train_timesteps"] = process.N
        return cls(solver_name, _alphas_cumprod=process.alphas_cumprod, **options)

    @classmethod
    def from_config(cls, config: Any, solver_name: str | Solver | None = None, **kwargs: Any) -> "DiffusersScheduler":
        """From a diffusers scheduler config (its table keys and ``prediction_type``; others ignored, as diffusers does)."""
        config = dict(getattr(config, "config", config))
        options = {k: config[k] for k in _CONFIG_KEYS if k in config}
        options.update(kwargs)
        name = solver_name if solver_name is not None else config.get("solver_name", "unipc")
        if solver_name is None and isinstance(config.get("solver_options"), dict):
            options = {**config["solver_options"], **options}
        return cls(name, **options)

    # ------------------------------------------------------------------ diffusers' interface
    def __len__(self) -> int:
        return int(self.config.num_train_timesteps)

    @property
    def init_noise_sigma(self) -> float:
        """The standard deviation of the starting noise: ``sqrt(alpha^2 + sigma^2)`` at the first time."""
        t0 = float(self._ts[0]) if self._ts is not None else self.process.T
        return math.hypot(float(self.process.alpha(t0)), float(self.process.sigma(t0)))

    def scale_model_input(self, sample: torch.Tensor, timestep: Any = None) -> torch.Tensor:
        """The network's input at ``timestep``: the state itself (the process's state is the network's)."""
        return sample

    def set_timesteps(self, num_inference_steps: int | None = None, device: str | torch.device | None = None,
                      timesteps: Sequence[int] | torch.Tensor | None = None, **unused: Any) -> None:
        """Fix the grid: ``num_inference_steps`` steps of the grid (or diffusers' integer ``timesteps``,
        then the grid is ``[time_from_index(timesteps), 0]``), and list the model calls in :attr:`timesteps`."""
        if (num_inference_steps is None) == (timesteps is None):
            raise ValueError("give either num_inference_steps or timesteps")
        if timesteps is not None:
            try:
                grid: Any = Explicit(grid_from_timesteps(self.process, timesteps))
            except (TypeError, ValueError) as err:
                raise type(err)(f"timesteps must be strictly decreasing DDPM indices in [0, {self.process.N - 1}] "
                                f"(diffusers' integer timesteps): {err}") from None
            steps = None
        else:
            check_int(num_inference_steps, "num_inference_steps")
            if num_inference_steps > MAX_STEPS:
                raise ValueError(f"num_inference_steps={num_inference_steps} exceeds {MAX_STEPS}")
            grid, steps = self.grid, num_inference_steps
        times: list[float] = []

        def record(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # a dry run: the call times only
            times.append(float(t.reshape(-1)[0]))
            return torch.zeros_like(x)

        probe = torch.zeros(1, 1, dtype=torch.float64)
        run = sample(record, self.process, probe, prediction=self.prediction, solver=self.solver, steps=steps,
                     grid=grid, seed=0 if self.solver.stochastic else None, check_finite=False)
        self.close()
        self._ts, self._times = run.ts, times
        # x0_hat = cx x + co out at each call (the hub's conversion is linear): once per schedule, floats.
        tt = torch.tensor(times, dtype=torch.float64)
        one, zero = torch.ones(len(times), 1, dtype=torch.float64), torch.zeros(len(times), 1, dtype=torch.float64)
        cx = to_x0_eps(self.prediction, zero, one, tt, self.process)[0].reshape(-1).tolist()
        co = to_x0_eps(self.prediction, one, zero, tt, self.process)[0].reshape(-1).tolist()
        self._x0_maps = list(zip(cx, co))
        self.num_inference_steps = len(run.ts) - 1
        index_dtype = torch.float32 if device is not None and torch.device(device).type == "mps" else torch.float64
        self.timesteps = network_time(self.process, tt, self.time_input).to(device=device, dtype=index_dtype)

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor,
             generator: torch.Generator | None = None, return_dict: bool = True, **unused: Any):
        """Hand the network's output at ``timestep`` to the solver; returns the next model input as ``prev_sample``."""
        if self._ts is None:
            raise RuntimeError("call set_timesteps(...) before step(...)")
        if not isinstance(model_output, torch.Tensor) or not isinstance(sample, torch.Tensor):
            raise TypeError("model_output and sample must be torch.Tensors")
        if self._index >= len(self._times):
            raise RuntimeError(f"all {len(self._times)} model calls of this schedule were answered; call set_timesteps again")
        expected = float(self.timesteps[self._index])
        given = float(torch.as_tensor(timestep).reshape(-1)[0])
        if abs(given - expected) > 1e-4 * max(1.0, abs(expected)):
            raise ValueError(f"timestep {given:g} is not the next of this schedule ({expected:g}, call {self._index}); "
                             "iterate over scheduler.timesteps in order")
        if model_output.shape[1:] != sample.shape[1:] and model_output.shape[1] == 2 * sample.shape[1]:
            model_output = model_output[:, : sample.shape[1]]  # learned variance: the mean's channels only
        state_dtype = sample.dtype if sample.dtype in (torch.float32, torch.float64) else torch.float32
        if self._stepper is None:
            if self._index != 0:
                raise RuntimeError("the solver was stopped mid-run; call set_timesteps again")
            self._stepper = Stepper(self.process, sample.to(state_dtype), prediction=self.prediction, solver=self.solver,
                                    grid=self._ts, **self._seed_options(sample.shape[0], generator))
        elif self._last is not None and sample is not self._last and not torch.equal(sample.to(state_dtype), self._last):
            raise ValueError("sample is not the prev_sample this scheduler returned: the solver keeps its own state and "
                             "multistep history, so a pipeline that edits the latents between steps cannot use it")
        x_in, _ = self._stepper.request
        out = model_output.to(device=x_in.device, dtype=x_in.dtype)
        cx, co = self._x0_maps[self._index]
        self._stepper.step(out)
        self._index += 1
        if self._stepper.done:
            prev = self._stepper.result.samples
            self._stepper, self._last = None, None
        else:
            prev = self._stepper.request[0]
            self._last = prev
        prev_sample = prev.to(sample.dtype)
        if not return_dict:
            return (prev_sample,)
        return SchedulerOutput(prev_sample, lambda: (out * co + x_in * cx).to(sample.dtype))

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: Any) -> torch.Tensor:
        """``alpha(t) x0 + sigma(t) noise`` at the network timesteps ``timesteps`` (DDPM indices: ``t =
        time_from_index``; continuous time: the ``t`` of noise level ``exp(4 timestep)``), as diffusers'."""
        given = torch.as_tensor(timesteps).detach().cpu().to(torch.float64)
        if self.time_input == "log_sigma":  # timesteps are log(rho)/4
            t = self.process.t_from_noise_level(torch.exp(4.0 * given))
        else:
            t = self.process.time_from_index(given)
        if t.ndim == 0:
            t = t.expand(original_samples.shape[0])
        t = t.to(original_samples.device)
        alpha = expand_to(self.process.alpha(t), original_samples)
        sigma = expand_to(self.process.sigma(t), original_samples)
        return (alpha * original_samples + sigma * noise).to(original_samples.dtype)

    def close(self) -> None:
        """End an unfinished run (its paused sampling loop stops); ``set_timesteps`` does it too."""
        if self._stepper is not None:
            self._stepper.close()
        self._stepper, self._last, self._index = None, None, 0

    def _seed_options(self, batch: int, generator: torch.Generator | None) -> dict[str, Any]:
        if not self.solver.stochastic:
            return {}
        if self.seed is not None:
            return {"seed": self.seed}
        # As diffusers' schedulers: the pipeline's generator, else torch's global generator.
        if isinstance(generator, list):
            generator = generator[0]
        return {"seed": int(torch.randint(0, 2**62, (1,), generator=generator))}

    def __repr__(self) -> str:
        return (f"DiffusersScheduler({self.solver!r}, prediction_type={self.config.prediction_type!r}, "
                f"num_train_timesteps={self.config.num_train_timesteps}, steps={self.num_inference_steps})")
