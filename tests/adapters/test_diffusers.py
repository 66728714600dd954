"""diffusers' networks as sdeflow models and sdeflow's solvers as diffusers schedulers, checked
against diffusers' own schedulers on a tiny randomly initialized ``UNet2DModel`` (no download).

diffusers is a test dependency (the ``dev`` extra) and these tests are never skipped. Its tables are
float32; every comparison here first widens the scheduler's ``alphas_cumprod`` to float64, so both
sides compute the same mathematics in float64. DPMSolverMultistep and EulerDiscrete cast the state
to float32 inside ``step``: their loops are compared to float32 round-off, and DPM-Solver++ also in
float64 through diffusers' own update functions.
"""

import pytest
import torch

import sdeflow
from sdeflow.adapters import DiffusersScheduler, from_diffusers, from_k_diffusion, grid_from_timesteps, noise_grid_from_timesteps, to_k_diffusion
from sdeflow.processes import DiscreteVP

import diffusers  # the dev extra installs it: a missing peer is an error, never a skip

diffusers.utils.logging.set_verbosity_error()
from diffusers import (  # noqa: E402
    DDIMScheduler,
    DDPMPipeline,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    LMSDiscreteScheduler,
    UNet2DConditionModel,
    UNet2DModel,
)


def tiny_unet(dtype=torch.float64, **kw):
    with torch.random.fork_rng():  # random weights without touching the caller's global generator
        torch.manual_seed(0)
        options = dict(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4)
        options.update(kw)
        return UNet2DModel(**options).to(dtype).eval()


UNET = tiny_unet()
X = torch.randn(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def diffusers_loop(scheduler, x, unet=UNET):
    for t in scheduler.timesteps:
        with torch.no_grad():
            out = unet(scheduler.scale_model_input(x, t), t).sample
        x = scheduler.step(out, t, x).prev_sample
    return x


def widened(scheduler):
    scheduler.alphas_cumprod = scheduler.alphas_cumprod.double()
    if hasattr(scheduler, "final_alpha_cumprod"):
        scheduler.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)  # set_alpha_to_one
    return scheduler


@pytest.mark.parametrize("prediction_type,steps", [("epsilon", 10), ("epsilon", 50), ("v_prediction", 10), ("sample", 10)])
def test_ddim_through_the_adapter_equals_diffusers_ddim(prediction_type, steps):
    # diffusers' DDIM (eta = 0, default "leading" timesteps, final step to alpha_bar = 1) on the same start:
    # sdeflow's ddim on [time_from_index(timesteps), 0] agrees to 1e-6 (measured ~1e-12 on values ~500).
    scheduler = widened(DDIMScheduler(clip_sample=False, prediction_type=prediction_type))
    scheduler.set_timesteps(steps)
    ref = diffusers_loop(scheduler, X.clone())
    model, process = from_diffusers(UNET, scheduler)
    with torch.no_grad():
        out = sdeflow.sample(model, process, X, solver="ddim", grid=grid_from_timesteps(process, scheduler.timesteps)).samples
    assert float((out - ref).abs().max()) <= 1e-6


def _dpm_solver_pp_in_float64(scheduler, x):
    # diffusers' DPMSolverMultistepScheduler.step, dispatch for solver_order=2 with final_sigmas_type="zero"
    # (first order at the first and the last step), calling its own update functions on float64 sigmas.
    ac = scheduler.alphas_cumprod
    scheduler.sigmas = torch.cat([((1 - ac) / ac).sqrt()[scheduler.timesteps], torch.zeros(1, dtype=torch.float64)])
    n = len(scheduler.timesteps)
    outputs = [None, None]
    for i, t in enumerate(scheduler.timesteps):
        scheduler._step_index = i
        with torch.no_grad():
            m = scheduler.convert_model_output(UNET(x, t).sample, sample=x)
        outputs = [outputs[-1], m]
        if i in (0, n - 1):
            x = scheduler.dpm_solver_first_order_update(m, sample=x)
        else:
            x = scheduler.multistep_dpm_solver_second_order_update(outputs, sample=x)
    return x


@pytest.mark.parametrize("solver_type", ["midpoint", "heun"])
def test_dpm_solver_pp_2m_equals_diffusers_multistep(solver_type):
    # DPM-Solver++(2M), both of diffusers' solver types, 10 steps of its "linspace" timesteps:
    # (a) in float64 through diffusers' update functions: 1e-6 (measured ~7e-13 on values ~690);
    # (b) diffusers' own loop (state cast to float32 in step): 1e-5 relative to the largest value
    #     (measured ~3e-7, float32 round-off).
    scheduler = widened(DPMSolverMultistepScheduler(solver_type=solver_type))
    scheduler.set_timesteps(10)
    model, process = from_diffusers(UNET, scheduler)
    with torch.no_grad():
        out = sdeflow.sample(model, process, X, solver="dpm_solver_pp_2m", solver_type=solver_type,
                             grid=grid_from_timesteps(process, scheduler.timesteps)).samples
    ref64 = _dpm_solver_pp_in_float64(scheduler, X.clone())
    assert float((out - ref64).abs().max()) <= 1e-6
    scheduler = widened(DPMSolverMultistepScheduler(solver_type=solver_type))
    scheduler.set_timesteps(10)
    ref = diffusers_loop(scheduler, X.clone())
    assert float((out - ref).abs().max()) <= 1e-5 * float(ref.abs().max())


@pytest.mark.parametrize("cls,solver,spacing", [(EulerDiscreteScheduler, "euler", "leading"),
                                                (EulerDiscreteScheduler, "euler", "trailing"),
                                                (HeunDiscreteScheduler, "heun", "trailing"),
                                                (LMSDiscreteScheduler, "lms", "trailing")])
def test_k_style_schedulers_equal_sdeflow_on_the_edm_view(cls, solver, spacing):
    # diffusers' Euler, Heun and LMS schedulers are k-diffusion's samplers on the EDM state y = x/alpha at
    # the table's noise levels: the adapter's model seen through to_k_diffusion/from_k_diffusion, sdeflow's
    # solver of the same name on the grid of noise levels of time_from_index(timesteps) (Heun lists each
    # timestep twice), agrees with diffusers' loop to 1e-6 relative to the largest value (measured ~1e-7
    # for Euler, whose step runs in float32, ~5e-9 for Heun and LMS). Integer timesteps only ("linspace"
    # spacing interpolates sigma linearly between entries, the DiscreteVP interpolates log alpha).
    scheduler = widened(cls(timestep_spacing=spacing))
    scheduler.set_timesteps(10)
    y = X * scheduler.init_noise_sigma
    ref = diffusers_loop(scheduler, y.clone())
    model, process = from_diffusers(UNET, scheduler)
    edm_model, edm = from_k_diffusion(to_k_diffusion(model, process))
    grid = noise_grid_from_timesteps(process, scheduler.timesteps)
    with torch.no_grad():
        out = sdeflow.sample(edm_model, edm, y, solver=solver, grid=grid).samples
    assert float((out - ref).abs().max()) <= 1e-6 * float(ref.abs().max())


def test_continuous_time_v_prediction_euler():
    # timestep_type="continuous" with v-prediction: diffusers gives the network log(sigma)/4 instead of the
    # index; the adapter reads it from the config and the Euler run agrees to 1e-6 relative (measured ~1e-7).
    scheduler = widened(EulerDiscreteScheduler(timestep_type="continuous", prediction_type="v_prediction",
                                               timestep_spacing="trailing"))
    scheduler.set_timesteps(10)
    indices = EulerDiscreteScheduler(timestep_spacing="trailing")
    indices.set_timesteps(10)
    y = X * scheduler.init_noise_sigma
    ref = diffusers_loop(scheduler, y.clone())
    model, process = from_diffusers(UNET, scheduler)
    assert model.time_input == "log_sigma" and model.prediction == "v"
    edm_model, edm = from_k_diffusion(to_k_diffusion(model, process))
    levels = process.noise_level(process.time_from_index(indices.timesteps.double()))
    torch.testing.assert_close(0.25 * levels.log(), scheduler.timesteps.double(), rtol=1e-6, atol=1e-6)
    with torch.no_grad():
        out = sdeflow.sample(edm_model, edm, y, solver="euler", grid=torch.cat([levels, torch.zeros(1, dtype=torch.float64)])).samples
    assert float((out - ref).abs().max()) <= 1e-6 * float(ref.abs().max())
    ours = DiffusersScheduler.from_scheduler(scheduler, "euler")
    ours.set_timesteps(timesteps=indices.timesteps)
    torch.testing.assert_close(ours.timesteps, 0.25 * levels.log())
    noisy = ours.add_noise(X, X, ours.timesteps[:2])  # alpha x0 + sigma eps at the first two times
    t = process.time_from_index(indices.timesteps[:2].double())
    torch.testing.assert_close(noisy, X * (process.alpha(t) + process.sigma(t)).reshape(2, 1, 1, 1))


def test_pipeline_runs_sdeflow_solvers_unchanged():
    # DDPMPipeline with DiffusersScheduler end to end; its images are exactly sdeflow.sample's (float64
    # network, the pipeline's own starting noise), for a one-call, a two-call (heun, two timesteps per
    # step as diffusers' Heun lists them) and a stochastic solver (seeded).
    for name, options in (("unipc", {}), ("heun", {}), ("ddpm", {"seed": 7})):
        scheduler = DiffusersScheduler.from_scheduler(DDPMScheduler(), name, **options)
        pipe = DDPMPipeline(unet=UNET, scheduler=scheduler)
        pipe.set_progress_bar_config(disable=True)
        images = pipe(batch_size=2, num_inference_steps=5, generator=torch.Generator().manual_seed(0), output_type="np").images
        assert images.shape == (2, 8, 8, 1)
        assert len(scheduler.timesteps) == scheduler.solver.nfe(scheduler._ts) and scheduler.order == scheduler.solver.calls_per_step
        model, process = from_diffusers(UNET, scheduler)
        x = torch.randn((2, 1, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        with torch.no_grad():
            out = sdeflow.sample(model, process, x, solver=scheduler.solver, steps=5, seed=options.get("seed")).samples
        expected = (out / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
        assert abs(images - expected).max() <= 1e-12, name
    # A pipeline that edits the latents between steps is refused (the solver keeps its own state).
    scheduler = DiffusersScheduler("dpmpp_2m")
    scheduler.set_timesteps(4)
    first = scheduler.step(0.1 * X, scheduler.timesteps[0], X).prev_sample
    with pytest.raises(ValueError, match="prev_sample"):
        scheduler.step(0.1 * X, scheduler.timesteps[1], first + 1.0)
    scheduler.close()
    # A stochastic solver without seed= takes its Brownian seed from the step's generator: the same
    # generator seed gives the same samples, another seed other samples.
    def ancestral(seed):
        sched = DiffusersScheduler("ddpm")
        sched.set_timesteps(3)
        y = X
        for t in sched.timesteps:
            y = sched.step(0.1 * y, t, y, generator=torch.Generator().manual_seed(seed)).prev_sample
        return y

    assert torch.equal(ancestral(1), ancestral(1)) and not torch.equal(ancestral(1), ancestral(2))
    # from_config keeps the table, the prediction type and the solver with its options.
    again = DiffusersScheduler.from_config(DiffusersScheduler("unipc", prediction_type="v_prediction", order=3).config)
    assert again.solver == sdeflow.solvers.get("unipc", order=3) and again.prediction == "v"
    # diffusers' own integer timesteps are accepted and listed back.
    scheduler = DiffusersScheduler.from_scheduler(DDPMScheduler(), "dpmpp_2m")
    scheduler.set_timesteps(timesteps=[999, 600, 200])
    assert scheduler.timesteps.tolist() == pytest.approx([999.0, 600.0, 200.0])


def test_learned_variance_conditioning_dtype_and_device():
    # A learned-variance network (2C output channels) gives its mean channels only; class labels and
    # encoder hidden states reach the network; a float32 network serves a float64 state (cast back).
    unet = tiny_unet(torch.float32, out_channels=2, num_class_embeds=3)
    model, process = from_diffusers(unet, DDPMScheduler(variance_type="learned_range"))
    x = X.clone()
    t = torch.full((2,), 0.5, dtype=torch.float64)
    labels = torch.tensor([0, 2])
    with torch.no_grad():
        out = model.bind(class_labels=labels)(x, t)
        direct = unet(x.float(), process.model_index(t), class_labels=labels).sample[:, :1]
        other = model(x, t, class_labels=torch.tensor([1, 1]))
    assert out.dtype == torch.float64 and out.shape == x.shape
    torch.testing.assert_close(out, direct.double())
    assert not torch.allclose(out, other)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        cond_unet = UNet2DConditionModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
                                         block_out_channels=(8, 16), norm_num_groups=4, cross_attention_dim=6,
                                         down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                         up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), attention_head_dim=2).eval()
    hidden = torch.randn(2, 3, 6, generator=torch.Generator().manual_seed(2))
    model, process = from_diffusers(cond_unet, DDIMScheduler(prediction_type="v_prediction"), encoder_hidden_states=hidden)
    assert model.prediction == "v"
    with torch.no_grad():
        out = model(x.float(), t.float())
        direct = cond_unet(x.float(), process.model_index(t.float()), encoder_hidden_states=hidden).sample
    torch.testing.assert_close(out, direct)


def test_pipeline_objects_and_configs_are_read():
    # A pipeline gives its unet and scheduler; a config dict rebuilds the table (linear betas: 1e-7 agreement
    # with diffusers' float32 table); bad input is named.
    pipe = DDPMPipeline(unet=UNET, scheduler=DDPMScheduler(beta_schedule="scaled_linear", prediction_type="sample"))
    model, process = from_diffusers(pipe)
    assert model.net is UNET and model.prediction == "x0" and process.N == 1000
    _, from_config = from_diffusers(UNET, dict(pipe.scheduler.config))
    torch.testing.assert_close(from_config.alphas_cumprod, process.alphas_cumprod, rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="scheduler"):
        from_diffusers(UNET)
    with pytest.raises(ValueError, match="prediction_type"):
        from_diffusers(UNET, {"prediction_type": "flow"})
    with pytest.raises(TypeError, match="model_or_pipeline"):
        from_diffusers(3, DDPMScheduler())
    with pytest.raises(ValueError, match="adaptive|fixed-step"):
        DiffusersScheduler("adaptive_ode")
    scheduler = DiffusersScheduler("ddim")
    with pytest.raises(RuntimeError, match="set_timesteps"):
        scheduler.step(X, 999, X)
    scheduler.set_timesteps(4)
    with pytest.raises(ValueError, match="timestep"):
        scheduler.step(X, 3, X)
    # pred_original_sample is the hub's x0 of the call: (x - sigma eps)/alpha at its time (1e-12).
    t0 = scheduler.process.time_from_index(scheduler.timesteps[0])
    eps = 0.3 * X
    result = scheduler.step(eps, scheduler.timesteps[0], X)
    alpha, sigma = scheduler.process.alpha(t0), scheduler.process.sigma(t0)
    torch.testing.assert_close(result.pred_original_sample, (X - sigma * eps) / alpha, rtol=1e-12, atol=1e-12)
    scheduler.close()


def test_time_from_index_inverts_model_index():
    # t = (n + 1)/N exactly inverts model_index = N t - 1 (1e-12), at integer and fractional indices, and
    # the process equals the table at integer ones (alpha^2 = alphas_cumprod[n] to 1e-13).
    process = DiscreteVP.linear()
    n = torch.tensor([999.0, 500.5, 3.25, 0.0, -1.0], dtype=torch.float64)
    t = process.time_from_index(n)
    torch.testing.assert_close(process.model_index(t), n, rtol=0, atol=1e-12)
    k = torch.tensor([999, 10, 0])
    torch.testing.assert_close(process.alpha(process.time_from_index(k)) ** 2, process.alphas_cumprod[k], rtol=1e-13, atol=0)
    assert float(process.time_from_index(-1)) == 0.0
    with pytest.raises(ValueError, match="index"):
        process.time_from_index([1000])
    with pytest.raises(TypeError, match="index"):
        process.time_from_index("900")
