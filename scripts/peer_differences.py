"""The one-off comparisons of docs/peers.md: sdeflow's solvers against the k-diffusion samplers and diffusers
schedulers that no test in tests/adapters covers, on the tests' own setups (float64, 10 steps).

Usage: ``python scripts/peer_differences.py`` (k-diffusion's ``sampling.py`` and diffusers, both test
dependencies; a few seconds). It prints one line per row of docs/peers.md with the largest difference:

* k-diffusion: a random EDM-preconditioned MLP denoiser on states of 16 x 4, started at noise level 80,
  10 Karras steps (the grid of tests/adapters/test_k_diffusion.py); the largest absolute difference.
* diffusers: the tiny random ``UNet2DModel`` of tests/adapters/test_diffusers.py with its tables widened to
  float64, 10 steps; "relative" is the largest difference over the largest value of diffusers' result.
"""

from __future__ import annotations

import torch

import sdeflow
from sdeflow.adapters import from_diffusers, from_k_diffusion, grid_from_timesteps, load_k_diffusion_sampling, noise_grid_from_timesteps, to_k_diffusion

STEPS = 10


def k_diffusion_rows() -> list[tuple[str, float]]:
    K = load_k_diffusion_sampling()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(5, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4)).double()

    def D(x, sigma):  # EDM preconditioning around a random MLP: any arithmetic difference shows
        c = (1.0 / (1.0 + sigma**2).sqrt())[:, None]
        with torch.no_grad():
            return x * c**2 + sigma[:, None] * c * net(torch.cat([x * c, sigma.log()[:, None] / 4], 1))

    model, process = from_k_diffusion(D, sigma_min=0.002, sigma_max=80.0)
    x = 80.0 * torch.randn(16, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    sigmas = K.get_sigmas_karras(STEPS, 0.002, 80.0).double()
    cases = [  # (row, k-diffusion sampler, its options, sdeflow solver, its options)
        ("sample_euler_ancestral(eta=0) vs euler_ancestral", "euler_ancestral", {"eta": 0.0}, "euler_ancestral", {"eta": 0.0}),
        ("sample_heun vs edm (s_churn=0)", "heun", {}, "edm", {}),
        ("sample_lms(order=2) vs lms, order=2", "lms", {"order": 2}, "lms", {"order": 2}),
        ("sample_dpmpp_2s_ancestral(eta=0) vs dpm_solver_pp_2s", "dpmpp_2s_ancestral", {"eta": 0.0}, "dpm_solver_pp_2s", {}),
        ("sample_dpmpp_2m_sde(eta=0, heun) vs dpm_solver_pp_2m", "dpmpp_2m_sde", {"eta": 0.0, "solver_type": "heun"},
         "dpm_solver_pp_2m", {"solver_type": "heun"}),
        ("sample_dpmpp_2m_sde(eta=0, midpoint) vs dpm_solver_pp_2m", "dpmpp_2m_sde", {"eta": 0.0, "solver_type": "midpoint"},
         "dpm_solver_pp_2m", {"solver_type": "midpoint"}),
        ("sample_dpm_2 vs midpoint (differs)", "dpm_2", {}, "midpoint", {}),
        ("sample_dpmpp_3m_sde(eta=0) vs dpm_solver_pp_3m (differs)", "dpmpp_3m_sde", {"eta": 0.0}, "dpm_solver_pp_3m", {}),
    ]
    rows = []
    for row, name, options, solver, solver_options in cases:
        with torch.random.fork_rng():  # k-diffusion draws (zero-weighted) noise from the global generator
            torch.manual_seed(0)
            ref = getattr(K, f"sample_{name}")(D, x.clone(), sigmas, disable=True, **options)
        out = sdeflow.sample(model, process, x, solver=solver, grid=sigmas, **solver_options).samples
        rows.append((row, float((out - ref).abs().max())))
    return rows


def diffusers_rows() -> list[tuple[str, float]]:
    import diffusers

    diffusers.utils.logging.set_verbosity_error()
    from diffusers import (DDIMScheduler, DEISMultistepScheduler, DPMSolverMultistepScheduler, DPMSolverSinglestepScheduler,
                           EulerDiscreteScheduler, HeunDiscreteScheduler, LMSDiscreteScheduler, UNet2DModel,
                           UniPCMultistepScheduler)

    with torch.random.fork_rng():
        torch.manual_seed(0)
        unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
                           down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                           norm_num_groups=4).double().eval()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def scheduler_of(cls, steps=STEPS, **options):
        scheduler = cls(**options)
        scheduler.alphas_cumprod = scheduler.alphas_cumprod.double()
        if hasattr(scheduler, "final_alpha_cumprod"):
            scheduler.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
        scheduler.set_timesteps(steps)
        return scheduler

    def loop(scheduler, y):
        for t in scheduler.timesteps:
            with torch.no_grad():
                y = scheduler.step(unet(scheduler.scale_model_input(y, t), t).sample, t, y).prev_sample
        return y

    def relative(out, ref):
        return float((out - ref).abs().max() / ref.abs().max())

    def vp_row(row, cls, options, solver, solver_options, steps=STEPS):
        scheduler = scheduler_of(cls, steps, **options)
        ref = loop(scheduler, x.clone())
        model, process = from_diffusers(unet, scheduler)
        with torch.no_grad():
            out = sdeflow.sample(model, process, x, solver=solver, grid=grid_from_timesteps(process, scheduler.timesteps),
                                 **solver_options).samples
        return row, relative(out, ref)

    def edm_row(row, cls, options, solver):  # k-diffusion-style schedulers run on the EDM view y = x / alpha
        scheduler = scheduler_of(cls, **options)
        y = x * scheduler.init_noise_sigma
        ref = loop(scheduler, y.clone())
        model, process = from_diffusers(unet, scheduler)
        edm_model, edm = from_k_diffusion(to_k_diffusion(model, process))
        grid = noise_grid_from_timesteps(process, scheduler.timesteps)
        with torch.no_grad():
            out = sdeflow.sample(edm_model, edm, y, solver=solver, grid=grid).samples
        return row, relative(out, ref)

    return [
        vp_row("DDIMScheduler(trailing) vs ddim", DDIMScheduler, {"clip_sample": False, "timestep_spacing": "trailing"}, "ddim", {}),
        vp_row("DDIMScheduler(linspace) vs ddim (differs)", DDIMScheduler, {"clip_sample": False, "timestep_spacing": "linspace"},
               "ddim", {}),
        vp_row("DPMSolverMultistepScheduler(solver_order=3) vs dpm_solver_pp_3m (differs), 10 steps", DPMSolverMultistepScheduler,
               {"solver_order": 3}, "dpm_solver_pp_3m", {"solver_type": "midpoint"}),
        vp_row("DPMSolverMultistepScheduler(solver_order=3) vs dpm_solver_pp_3m (differs), 20 steps", DPMSolverMultistepScheduler,
               {"solver_order": 3}, "dpm_solver_pp_3m", {"solver_type": "midpoint"}, steps=20),
        vp_row("DPMSolverSinglestepScheduler(solver_order=2) vs dpm_solver_pp_2s (differs)", DPMSolverSinglestepScheduler,
               {"solver_order": 2}, "dpm_solver_pp_2s", {}),
        vp_row("UniPCMultistepScheduler(solver_order=2, bh2) vs unipc (differs)", UniPCMultistepScheduler,
               {"solver_order": 2, "solver_type": "bh2"}, "unipc", {"order": 2, "variant": "bh2"}),
        vp_row("UniPCMultistepScheduler(solver_order=3, bh2) vs unipc (differs)", UniPCMultistepScheduler,
               {"solver_order": 3, "solver_type": "bh2"}, "unipc", {"order": 3, "variant": "bh2"}),
        vp_row("DEISMultistepScheduler(solver_order=3) vs deis (differs)", DEISMultistepScheduler, {"solver_order": 3},
               "deis", {"order": 3}),
        edm_row("EulerDiscreteScheduler(linspace) vs euler", EulerDiscreteScheduler, {"timestep_spacing": "linspace"}, "euler"),
        edm_row("HeunDiscreteScheduler(trailing) vs heun", HeunDiscreteScheduler, {"timestep_spacing": "trailing"}, "heun"),
        edm_row("HeunDiscreteScheduler(linspace) vs heun", HeunDiscreteScheduler, {"timestep_spacing": "linspace"}, "heun"),
        edm_row("LMSDiscreteScheduler(trailing) vs lms", LMSDiscreteScheduler, {"timestep_spacing": "trailing"}, "lms"),
        edm_row("LMSDiscreteScheduler(linspace) vs lms", LMSDiscreteScheduler, {"timestep_spacing": "linspace"}, "lms"),
    ]


def main() -> int:
    torch.set_num_threads(1)
    print("k-diffusion (largest absolute difference):")
    for row, diff in k_diffusion_rows():
        print(f"  {row}: {diff:.1e}")
    print("diffusers (largest difference relative to the largest value):")
    for row, diff in diffusers_rows():
        print(f"  {row}: {diff:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
