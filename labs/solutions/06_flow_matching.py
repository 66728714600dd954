"""Solutions of lab 6."""

from __future__ import annotations

import torch


def fm_loss(velocity_model, x0, eps, t):
    """mean_batch || v(x_t, t) - (eps - x0) ||^2 with x_t = (1 - t) x0 + t eps."""
    tc = t.to(x0.dtype).reshape(-1, *([1] * (x0.ndim - 1)))
    x_t = (1 - tc) * x0 + tc * eps
    err = velocity_model(x_t, t) - (eps - x0)
    return err.pow(2).reshape(x0.shape[0], -1).sum(-1).mean()


def path_straightness(traj, ts):
    """sum_k |dt_k| mean_batch ||v_k - chord||^2 over the steps of a trajectory."""
    ts = torch.as_tensor(ts, dtype=torch.float64)
    traj = traj.to(torch.float64).reshape(traj.shape[0], traj.shape[1], -1)
    dt = ts[1:] - ts[:-1]
    v = (traj[1:] - traj[:-1]) / dt.reshape(-1, 1, 1)
    chord = (traj[-1] - traj[0]) / (ts[-1] - ts[0])
    return float((dt.abs() * (v - chord).pow(2).sum(-1).mean(-1)).sum() / (ts[-1] - ts[0]).abs())
