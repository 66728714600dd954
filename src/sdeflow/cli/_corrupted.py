"""``sdeflow train --corruption ...`` and ``sdeflow train --latent AE``: the runs of :mod:`sdeflow.training.corrupted` and :mod:`sdeflow.latent`.

Kept apart from ``train.py`` (which calls :func:`corrupted_or_latent_run` once) so that the training
command stays one short file.

``--corruption`` takes ``KIND:LEVEL[:key=value,...]``:

* ``noise:S`` -- the data was observed with Gaussian noise of standard deviation ``S`` in the units of
  the data (the file's units, before ``--normalize``); trains :class:`~sdeflow.training.corrupted.NoisyDataObjective`
  (``noise:S:method=sure`` for the SURE objective, ``consistency=W`` for the weight below ``S``).
* ``mask:P`` -- each coordinate is missing with probability ``P``, simulated on the data with
  ``--seed``. By default (``method=ambient``) trains by Ambient Diffusion
  (:class:`~sdeflow.training.ambient.AmbientObjective`, further corruption ``delta=D``, default 0.1) a
  network told the mask (:class:`~sdeflow.nn.MaskedNet` around the ``--net`` network): one run folder,
  checkpoints and ``--resume`` as any run, sampled by ``sdeflow sample --ckpt`` with the all-observed
  mask. ``method=diem`` trains by DiEM (:class:`~sdeflow.training.corrupted.ExpectationMaximization`)
  on observations ``y = mask * (x + sigma_y z)`` (``sigma_y=0.01`` in model units by default),
  ``--steps`` per round, ``rounds=R`` rounds (default 4), each round a run folder ``OUT/round_k``
  with its checkpoints, resumed with ``--resume``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

__all__ = ["parse_corruption", "corrupted_or_latent_run"]

_KEYS = {"noise": {"method": str, "consistency": float, "consistency_steps": int, "consistency_weighting": str},
         "mask": {"method": str, "delta": float, "rounds": int, "sigma_y": float, "posterior_steps": int}}
_METHODS = {"noise": ("tweedie", "sure"), "mask": ("ambient", "diem")}
_DIEM_ONLY = ("rounds", "sigma_y", "posterior_steps")


def parse_corruption(text: str) -> dict[str, Any]:
    """``"noise:0.5"`` -> ``{"kind": "noise", "level": 0.5}`` (with ``key=value`` options after a second colon)."""
    parts = str(text).split(":")
    kind = parts[0]
    if kind not in _KEYS or len(parts) not in (2, 3):
        raise ValueError(f"--corruption must be noise:S or mask:P (optionally :key=value,...); got {text!r}")
    try:
        level = float(parts[1])
    except ValueError:
        raise ValueError(f"--corruption {text!r}: the level after '{kind}:' must be a number") from None
    if kind == "noise" and not level > 0:
        raise ValueError(f"--corruption noise:S needs S > 0 (the noise standard deviation in data units); got {level}")
    if kind == "mask" and not 0 < level < 1:
        raise ValueError(f"--corruption mask:P needs 0 < P < 1 (the probability that a coordinate is missing); got {level}")
    out: dict[str, Any] = {"kind": kind, "level": level}
    if len(parts) == 3 and parts[2]:
        for item in parts[2].split(","):
            key, sep, value = item.partition("=")
            if not sep or key not in _KEYS[kind]:
                raise ValueError(f"--corruption {text!r}: unknown option {item!r}; {kind} takes {sorted(_KEYS[kind])}")
            try:
                out[key] = _KEYS[kind][key](value)
            except ValueError:
                raise ValueError(f"--corruption {text!r}: {key} must be a {_KEYS[kind][key].__name__}; got {value!r}") from None
    if "method" in out and out["method"] not in _METHODS[kind]:
        raise ValueError(f"--corruption {text!r}: method must be one of {list(_METHODS[kind])}; got {out['method']!r}")
    if kind == "mask" and out.get("method", "ambient") == "ambient" and any(k in out for k in _DIEM_ONLY):
        raise ValueError(f"--corruption {text!r}: {sorted(k for k in _DIEM_ONLY if k in out)} are DiEM's options: add method=diem")
    if kind == "mask" and out.get("method") == "diem" and "delta" in out:
        raise ValueError(f"--corruption {text!r}: delta is Ambient Diffusion's option (method=ambient)")
    if "delta" in out and not 0 < out["delta"] < 1:
        raise ValueError(f"--corruption {text!r}: delta must be in (0, 1) (the further-corruption rate); got {out['delta']}")
    return out


def _masked_network(args: argparse.Namespace, source):
    """The ``--net`` network on states with the mask stacked (:func:`~sdeflow.nn.masked.masked_inner_shape`), in a MaskedNet."""
    from ..data.sources import DataSource
    from ..nn.masked import MaskedNet, masked_inner_shape
    from .train import build_network

    import torch

    kind = args.net if args.net != "auto" else ("unet" if source.kind == "image" else "mlp")
    shape = masked_inner_shape(source.event_shape, kind)
    fake = DataSource(name=f"masked:{source.name}", kind=source.kind, x=torch.zeros((1, *shape)), labels=source.labels,
                      num_classes=source.num_classes)
    inner = build_network(kind, fake, conditional=args.conditional, width=args.width, depth=args.depth, channels=args.channels,
                          channel_mults=args.channel_mults, res_blocks=args.res_blocks, attention=args.attention, seed=args.seed)
    return MaskedNet(source.event_shape, inner)


def _latent_network(args: argparse.Namespace, source, latent_shape: tuple[int, ...]):
    from ..data.sources import DataSource
    from .train import build_network

    import torch

    fake = DataSource(name=f"latent:{source.name}", kind="vector", x=torch.zeros((1, *latent_shape)), labels=source.labels,
                      num_classes=source.num_classes)
    kind = "mlp" if args.net == "auto" else args.net
    return build_network(kind, fake, conditional=args.conditional, width=args.width, depth=args.depth, channels=args.channels,
                         channel_mults=args.channel_mults, res_blocks=args.res_blocks, attention=args.attention, seed=args.seed)


def corrupted_or_latent_run(args: argparse.Namespace, source, model, objective, config, evaluator, info: dict[str, Any]) -> int:
    """Train with ``--corruption`` and/or ``--latent``; prints the same summary as ``sdeflow train``."""
    import torch

    from ..training import DiffusionModel, DenoisingScoreMatching, Trainer
    from ..training.corrupted import CONSISTENCY_STEPS, ExpectationMaximization, NoisyDataObjective, check_noise_level, mask_corruption
    from ._common import emit

    data = source.x
    if args.latent is not None:
        from ..latent import load_autoencoder

        if source.kind != "image":
            raise ValueError(f"--latent needs image data; {source.name!r} holds {source.kind}s")
        ae = load_autoencoder(args.latent)
        if tuple(ae.event_shape) != tuple(source.event_shape):
            raise ValueError(f"--latent {args.latent}: the autoencoder takes images {ae.event_shape}, the data has {source.event_shape}")
        with torch.no_grad():
            data = torch.cat([ae.encode(source.x[i : i + 512]) for i in range(0, source.x.shape[0], 512)])
        net = _latent_network(args, source, ae.latent_shape)
        model = DiffusionModel(net, model.process, model.prediction, precond=model.precond, sigma_data=1.0 if model.precond else model.sigma_data,
                               amp_dtype=model.amp_dtype)
        info = {**info, "kind": "latent", "transform": None,
                "latent": {"autoencoder": str(Path(args.latent).resolve()), "mean": ae.mean.tolist(), "std": ae.std.tolist(),
                           "image_shape": list(ae.event_shape), "image_transform": source.transform()}}
        evaluator = None  # the evaluators score images; decode with sdeflow.latent.load_latent_model
    spec = parse_corruption(args.corruption) if args.corruption else None
    if spec is not None and args.latent is not None:
        raise ValueError("--corruption and --latent together are not supported: corrupted observations are in pixel space")
    if spec is not None:
        if args.objective != "dsm":
            raise ValueError(f"--corruption trains a diffusion model: use --objective dsm (got --objective {args.objective})")
        info = {**info, "corruption": spec}
    start = time.perf_counter()
    if spec is not None and spec["kind"] == "noise":
        scale = source.scale if isinstance(source.scale, torch.Tensor) else torch.tensor(float(source.scale))
        level = check_noise_level(spec["level"] / scale.to(torch.float64), source.event_shape, units="model")
        objective = NoisyDataObjective(objective.process, objective.prediction, sigma_n=level if level.numel() > 1 else float(level),
                                       method=spec.get("method", "tweedie"), consistency=spec.get("consistency", 1.0),
                                       consistency_steps=spec.get("consistency_steps", CONSISTENCY_STEPS),
                                       consistency_weighting=spec.get("consistency_weighting", "anchor"),
                                       weighting=objective.weighting, time_sampler=objective.time_sampler)
    if spec is not None and spec["kind"] == "mask" and spec.get("method", "ambient") == "ambient":
        from ..training.ambient import AmbientObjective, pack_masked

        gen = torch.Generator().manual_seed(int(args.seed))
        mask = (torch.rand(data.shape, generator=gen) >= spec["level"]).to(data.dtype)
        data = pack_masked(data, mask)
        model = DiffusionModel(_masked_network(args, source), model.process, model.prediction, precond=model.precond,
                               sigma_data=model.sigma_data, amp_dtype=model.amp_dtype)
        objective = AmbientObjective(objective.process, objective.prediction, delta=spec.get("delta", 0.1),
                                     weighting=objective.weighting, time_sampler=objective.time_sampler)
    if spec is not None and spec["kind"] == "mask" and spec.get("method") == "diem":
        out = Path(args.out)
        if (out / "round_1").exists() and not (args.resume or args.overwrite):
            raise FileExistsError(f"--out {out} already holds an EM run (round_1, ...); continue it with --resume or replace it with --overwrite")
        gen = torch.Generator().manual_seed(int(args.seed))
        mask = (torch.rand(data.shape, generator=gen) >= spec["level"]).to(data.dtype)
        corruption = mask_corruption(data, mask, spec.get("sigma_y", 1e-2), generator=gen)
        if not isinstance(objective, DenoisingScoreMatching):
            raise ValueError("--corruption mask trains by DiEM with denoising score matching: use --objective dsm")
        em = ExpectationMaximization(model, objective, corruption, config, rounds=spec.get("rounds", 4), out_dir=out,
                                     steps=spec.get("posterior_steps", 64), progress=config.progress)
        rounds = em.fit(resume=args.resume)
        summary = {"checkpoint": str(rounds[-1].result.checkpoint) if rounds[-1].result is not None else None,
                   "rounds": len(rounds) - 1, "steps_per_round": config.steps, "wall_seconds": round(time.perf_counter() - start, 2),
                   "observed_fraction": float(mask.mean())}
        emit(args, summary, f"DiEM: {summary['rounds']} rounds of {config.steps} steps in {summary['wall_seconds']} s\n"
                            f"checkpoint {summary['checkpoint']}\nsample it with: sdeflow sample --ckpt {summary['checkpoint']}")
        return 0
    trainer = Trainer(model, objective, data, labels=source.labels, config=config, out_dir=args.out, evaluator=evaluator, data_info=info)
    result = trainer.fit(resume=args.resume, stop_at=args.stop_after, overwrite=args.overwrite)
    summary = {"checkpoint": str(result.checkpoint), "steps": result.step, "wall_seconds": round(time.perf_counter() - start, 2),
               "samples_per_second": round(result.samples_per_second, 1),
               "final_loss": result.history[-1]["loss"] if result.history else None,
               "evaluation": result.evaluations[-1] if result.evaluations else None}
    how = "python -c 'from sdeflow.latent import load_latent_model; ...'" if args.latent else f"sdeflow sample --ckpt {args.out}"
    emit(args, summary, f"trained {result.step} steps in {summary['wall_seconds']} s\ncheckpoint {result.checkpoint}\n"
                        + (f"evaluation {json.dumps(summary['evaluation'], default=float)}\n" if summary["evaluation"] else "")
                        + f"sample it with: {how}")
    return 0
