"""Image restoration with a trained diffusion prior: the tasks, their metrics and the picture grid.

Tasks (operators on states of shape ``(C, H, W)``, model space; the noise std is in model units):

==================  ==============================================================  =============
task                operator                                                        noise_std
==================  ==============================================================  =============
``inpaint``         :class:`Inpainting`: the right half of every image is missing     0.05
``inpaint_random``  :class:`Inpainting`: 70 % of the pixels missing at random          0.05
                    (the same mask for every image, drawn from ``seed``)
``superres``        :class:`SuperResolution` by 2 (average pooling)                    0.05
``deblur``          :class:`Blur`, Gaussian kernel of 3 x 3 taps, std 1 pixel          0.05
``denoise``         :class:`Denoising`                                                  0.3
==================  ==============================================================  =============

Metrics of ``k`` posterior samples per measurement against the truth (images in ``[-1, 1]``, data
range 2): PSNR ``10 log10(range^2 / MSE)`` per sample (mean over samples and images) and of the
posterior mean; SSIM (Wang et al. 2004) with a 3 x 3 uniform window (the images are 8 x 8),
``C1 = (0.01 range)^2``, ``C2 = (0.03 range)^2``, the mean of the SSIM map; consistency, the RMS of
``y - A x`` over the noise std (an exact posterior sample gives a value near 1, or below where the
prior also explains ``y``); spread, the per-pixel standard deviation across the samples of one
measurement, averaged.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from .operators import Blur, Denoising, Inpainting, Operator, SuperResolution, gaussian_kernel

__all__ = ["TASKS", "task_operator", "psnr", "ssim", "restoration_metrics", "save_grid"]

TASKS = ("inpaint", "inpaint_random", "superres", "deblur", "denoise")  # also spelled out in sdeflow/cli/restore.py
DEFAULT_NOISE = {"inpaint": 0.05, "inpaint_random": 0.05, "superres": 0.05, "deblur": 0.05, "denoise": 0.3}


def task_operator(task: str, event_shape: Sequence[int], *, noise_std: float | None = None, seed: int = 0) -> Operator:
    """The operator of ``task`` (module docstring) for states of ``event_shape`` ``(C, H, W)``."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}; got {task!r}")
    shape = tuple(int(s) for s in event_shape)
    if len(shape) != 3:
        raise ValueError(f"restoration tasks act on images (C, H, W); got event shape {shape}")
    sd = DEFAULT_NOISE[task] if noise_std is None else noise_std
    if task == "inpaint":
        mask = torch.ones(shape, dtype=torch.bool)
        mask[..., shape[-1] // 2:] = False
        return Inpainting(mask, noise_std=sd)
    if task == "inpaint_random":
        g = torch.Generator().manual_seed(seed)
        keep = torch.rand(shape[1:], generator=g) >= 0.7
        return Inpainting(keep.expand(shape).clone(), noise_std=sd)
    if task == "superres":
        return SuperResolution(2, noise_std=sd, event_shape=shape)
    if task == "deblur":
        return Blur(gaussian_kernel(3, 1.0), noise_std=sd, event_shape=shape)
    return Denoising(sd, event_shape=shape)


def psnr(x: torch.Tensor, ref: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """PSNR in dB of each image of ``x`` ``(n, *event)`` against ``ref`` (same shape): ``(n,)``."""
    mse = (x.double() - ref.double()).pow(2).reshape(x.shape[0], -1).mean(1)
    return 10.0 * torch.log10(data_range**2 / mse.clamp_min(1e-20))


def ssim(x: torch.Tensor, ref: torch.Tensor, data_range: float = 2.0, window: int = 3) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004) of each image ``(n, C, H, W)`` against ``ref``, uniform ``window``: ``(n,)``."""
    x, ref = x.double(), ref.double()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    pool = torch.nn.functional.avg_pool2d

    def mean(z):
        return pool(z, window, stride=1)

    mx, my = mean(x), mean(ref)
    vx, vy = mean(x * x) - mx * mx, mean(ref * ref) - my * my
    cxy = mean(x * ref) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.reshape(s.shape[0], -1).mean(1)


def restoration_metrics(samples: torch.Tensor, truth: torch.Tensor, y: torch.Tensor | None = None,
                        operator: Operator | None = None, *, model_samples: torch.Tensor | None = None) -> dict[str, Any]:
    """PSNR, SSIM, consistency and spread (module docstring) of ``samples`` ``(m, k, C, H, W)``.

    ``samples`` and ``truth`` ``(m, C, H, W)`` are in ``[-1, 1]`` data space; the consistency is measured
    on ``model_samples`` (the same samples in the operator's space, default ``samples``) against ``y``
    ``(m, *measurement_shape)``, and is NaN without ``y`` and ``operator``.
    """
    m, k = samples.shape[:2]
    flat = samples.reshape((m * k,) + tuple(samples.shape[2:])).double()
    rep = truth.double().repeat_interleave(k, dim=0)
    rms = math.nan
    if y is not None and operator is not None:
        ms = samples if model_samples is None else model_samples
        res = y.double().repeat_interleave(k, dim=0) - operator.forward(ms.reshape(flat.shape).double())
        rms = float(res.pow(2).mean().sqrt())
    mean = samples.double().mean(1)
    return {
        "psnr": float(psnr(flat, rep).mean()),
        "psnr_of_mean": float(psnr(mean, truth).mean()),
        "ssim": float(ssim(flat, rep).mean()),
        "residual_rms": rms,
        "consistency": rms / operator.noise_std if operator is not None and operator.noise_std > 0 else math.nan,
        "spread": float(samples.double().std(1).mean()) if k > 1 else 0.0,
    }


def save_grid(path, measurement: torch.Tensor, samples: torch.Tensor, truth: torch.Tensor, title: str = "",
              labels: Sequence[str] | None = None) -> None:
    """A picture grid: one row per measurement, columns measurement | samples ... | truth (Agg, PNG).

    ``samples`` ``(m, k, C, H, W)``; ``labels`` names the ``k`` sample columns (default ``sample 1..k``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m, k = samples.shape[:2]
    fig, axes = plt.subplots(m, k + 2, figsize=(1.1 * (k + 2), 1.1 * m + 0.4), squeeze=False)
    for i in range(m):
        row = [measurement[i]] + [samples[i, j] for j in range(k)] + [truth[i]]
        for j, img in enumerate(row):
            ax = axes[i][j]
            ax.imshow(img[0].detach().cpu().numpy(), cmap="gray", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                name = f"sample {j}" if labels is None or not 0 < j <= k else labels[j - 1]
                ax.set_title("y" if j == 0 else ("truth" if j == k + 1 else name), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
