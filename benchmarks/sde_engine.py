"""Benchmark of the general SDE engine against torchsde, a hand-written torch loop and NumPy.

    .venv/bin/python benchmarks/sde_engine.py [--quick] [--write BENCHMARKS-sde.md]

Three measurements, side by side in one run, on the same problems, methods and dtypes:

1. per-step overhead at batch 1 and 4096 (state (batch, 4), float32, GBM dy = 0.05 y dt + 0.2 y dW,
   Ito, diagonal noise): sdeflow.sdeint vs torchsde.sdeint (same method, its default Brownian
   interval) vs a hand-written torch loop (Euler-Maruyama, Milstein and SRI2, sdeflow's and torchsde's
   "srk" on diagonal noise, each written out as straight-line torch code);
2. throughput of Euler-Maruyama on GBM, 10^5 paths x 1000 steps, float32 (paths x steps per second)
   vs torchsde, a vectorized NumPy loop, and the floor: drawing the same 10^8 normals with
   torch.randn (10^5 per call, as a loop draws them);
3. Black-Scholes Monte Carlo with 10^7 paths (Euler-Maruyama, 10 steps, float32 simulation, float64
   sums, chunks of 10^6 paths): time and peak memory (each run in a fresh process) vs the same
   pricing written with torchsde.sdeint.

Every figure is the median of several runs. Torch runs single-threaded (torch.set_num_threads(1)):
the machines this runs on are shared, and multi-threaded elementwise kernels on a loaded 2-core
machine measure the load, not the code. torchsde is optional: without it its rows say "not installed".
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sdeflow.sdes.integrate import sdeint  # noqa: E402

try:
    import torchsde
except ImportError:  # optional peer
    torchsde = None

MU, SIGMA = 0.05, 0.2


class TorchsdeGBM(torch.nn.Module):
    """The one GBM every contender integrates (a torchsde-style object: sdeflow takes it unchanged)."""

    noise_type = "diagonal"
    sde_type = "ito"

    def f(self, t, y):
        return MU * y

    def g(self, t, y):
        return SIGMA * y


def median_time(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved(fns: dict, runs: dict) -> dict:
    """Median wall-clock and CPU seconds of each function, timed in turn round by round.

    Round ``r`` runs every contender that still has runs left, one after the other, so that a
    change of load on the shared machine hits all of them alike (timing one contender's runs as a
    block and then the next one's lets the load drift between blocks into the ratio).
    """
    for fn in fns.values():
        fn()  # warm-up
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for r in range(max(runs.values())):
        for k, fn in fns.items():
            if r >= runs[k]:
                continue
            w, c = time.perf_counter(), time.process_time()
            fn()
            cpu[k].append(time.process_time() - c)
            wall[k].append(time.perf_counter() - w)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in fns}


def hand_em(y, n, dt, seed):
    sde, gen, sdt = TorchsdeGBM(), torch.Generator().manual_seed(seed), math.sqrt(dt)
    for i in range(n):
        t = torch.tensor(i * dt)
        dw = torch.randn(y.shape, generator=gen, dtype=y.dtype) * sdt
        y = y + sde.f(t, y) * dt + sde.g(t, y) * dw
    return y


def hand_milstein(y, n, dt, seed):
    # The same derivative-free Milstein sdeflow runs (Kloeden & Platen 11.1.5): the engine's overhead
    # is what is compared, not the choice of derivative.
    sde, gen, sdt = TorchsdeGBM(), torch.Generator().manual_seed(seed), math.sqrt(dt)
    for i in range(n):
        t = torch.tensor(i * dt)
        dw = torch.randn(y.shape, generator=gen, dtype=y.dtype) * sdt
        g = sde.g(t, y)
        lg = (sde.g(t, y + sdt * g) - g) / sdt
        y = y + sde.f(t, y) * dt + g * dw + 0.5 * lg * (dw * dw - dt)
    return y


def hand_srk(y, n, dt, seed):
    # SRI2 (Roessler 2010, table 5.3), the method sdeflow's and torchsde's "srk" run on diagonal noise,
    # written out as straight-line torch code for this problem: the stage values H0_i (drift) and H1_i
    # (diffusion), then x1 = x + dt sum alpha_i f_i + sum_i (beta1_i dW + beta2_i I11/sqrt(dt)
    # + beta3_i U/dt + beta4_i I111/dt) g_i with the table's coefficients summed per iterated integral.
    # The noise: dW ~ N(0, dt) and U = int (W_s - W_t0) ds = dt (dW/2 + H), H ~ N(0, dt/12).
    sde, gen, sdt, sa = TorchsdeGBM(), torch.Generator().manual_seed(seed), math.sqrt(dt), math.sqrt(dt / 12.0)
    for i in range(n):
        t0, tq = torch.tensor(i * dt), torch.tensor((i + 0.25) * dt)
        th, t1 = torch.tensor((i + 0.5) * dt), torch.tensor((i + 1) * dt)
        dw = torch.randn(y.shape, generator=gen, dtype=y.dtype) * sdt
        u = dt * (0.5 * dw + torch.randn(y.shape, generator=gen, dtype=y.dtype) * sa)
        f0, g0 = sde.f(t0, y), sde.g(t0, y)
        f1 = sde.f(t1, y + dt * f0)
        g1 = sde.g(tq, y + 0.25 * dt * f0 - 0.5 * sdt * g0)
        f2 = sde.f(th, y + 0.25 * dt * (f0 + f1) + (g0 + 0.5 * g1) * (u / dt))
        g2 = sde.g(t1, y + dt * f0 + sdt * g0)
        g3 = sde.g(tq, y + 0.25 * dt * f2 + sdt * (2.0 * g0 - g1 + 0.5 * g2))
        i11 = 0.5 * (dw * dw - dt)
        i111 = (dw * dw * dw - 3.0 * dt * dw) / 6.0
        y = (y + dt * (f0 / 6.0 + f1 / 6.0 + 2.0 / 3.0 * f2)
             + (-g0 + 4.0 / 3.0 * g1 + 2.0 / 3.0 * g2) * dw
             + (g0 - 4.0 / 3.0 * g1 + 1.0 / 3.0 * g2) * (i11 / sdt)
             + (2.0 * g0 - 4.0 / 3.0 * g1 - 2.0 / 3.0 * g2) * (u / dt)
             + (-2.0 * g0 + 5.0 / 3.0 * g1 - 2.0 / 3.0 * g2 + g3) * (i111 / dt))
    return y


def torchsde_run(y0, n, dt, method):
    levy = "space-time" if method == "srk" else "none"
    bm = torchsde.BrownianInterval(0.0, n * dt, size=y0.shape, dtype=y0.dtype, entropy=0, levy_area_approximation=levy)
    return torchsde.sdeint(TorchsdeGBM(), y0, torch.tensor([0.0, n * dt]), bm=bm, method=method, dt=dt)


def overhead(quick: bool) -> list[dict]:
    rows = []
    for batch in (1, 4096):
        n = (200 if quick else 2000) if batch == 1 else (50 if quick else 500)
        y0 = torch.ones(batch, 4)
        dt = 1.0 / n
        for method in ("euler", "milstein", "srk"):
            runs = 3 if quick else 9
            hand = {"euler": hand_em, "milstein": hand_milstein, "srk": hand_srk}[method]
            fns = {"sdeflow": lambda: sdeint(TorchsdeGBM(), y0, [0.0, 1.0], method=method, dt=dt, seed=0),
                   "hand": lambda: hand(y0, n, dt, 0)}
            if torchsde:
                fns["torchsde"] = lambda: torchsde_run(y0, n, dt, method)
            med = interleaved(fns, {"sdeflow": runs, "hand": runs, "torchsde": max(3, runs // 2)})
            us = {k: (w / n * 1e6, c / n * 1e6) for k, (w, c) in med.items()}
            rows.append({"batch": batch, "method": method, "steps": n, "sdeflow_us": us["sdeflow"][0],
                         "hand_us": us["hand"][0], "torchsde_us": us["torchsde"][0] if torchsde else None,
                         "sdeflow_cpu_us": us["sdeflow"][1], "hand_cpu_us": us["hand"][1],
                         "torchsde_cpu_us": us["torchsde"][1] if torchsde else None})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def throughput(quick: bool) -> dict:
    paths, steps = (10**4, 200) if quick else (10**5, 1000)
    dt = 1.0 / steps
    y0 = torch.ones(paths, 1)
    runs = 3 if quick else 5
    work = paths * steps
    out = {"paths": paths, "steps": steps}
    def numpy_loop():
        rng = np.random.default_rng(0)
        y = np.ones(paths, dtype=np.float32)
        sdt = np.float32(math.sqrt(dt))
        for _ in range(steps):
            dw = rng.standard_normal(paths, dtype=np.float32) * sdt
            y = y + np.float32(MU * dt) * y + np.float32(SIGMA) * y * dw
        return y

    def floor():
        gen = torch.Generator().manual_seed(0)
        for _ in range(steps):
            torch.randn(paths, generator=gen)

    fns = {"sdeflow_s": lambda: sdeint(TorchsdeGBM(), y0, [0.0, 1.0], method="euler", dt=dt, seed=0),
           "hand_torch_s": lambda: hand_em(y0, steps, dt, 0), "numpy_s": numpy_loop, "randn_floor_s": floor}
    for key, (wall, _) in interleaved(fns, dict.fromkeys(fns, runs)).items():
        out[key] = wall
    if torchsde:
        # torchsde is run on a tenth of the steps (it is slow) and reported per path-step.
        t_steps = max(steps // 10, 10)
        t = median_time(lambda: torchsde_run(y0, t_steps, 1.0 / t_steps, "euler"), 3)
        out["torchsde_s_per_pathstep"] = t / (paths * t_steps)
        out["torchsde_steps_run"] = t_steps
    for key in ("sdeflow_s", "hand_torch_s", "numpy_s", "randn_floor_s"):
        out[key.replace("_s", "_rate")] = work / out[key]
    if torchsde:
        out["torchsde_rate"] = 1.0 / out["torchsde_s_per_pathstep"]
    print(json.dumps(out), flush=True)
    return out


_MC_CHILD = r"""
import math, resource, sys, time, json
import torch
torch.set_num_threads(1)
sys.path.insert(0, {src!r})
which, paths, steps, chunk = {which!r}, {paths}, {steps}, {chunk}
start = time.perf_counter()
if which == "sdeflow":
    from sdeflow.finance import GBM, European, price
    res = price(GBM(100.0, 0.05, 0.2), European(100.0), 1.0, paths=paths, steps=steps, method="euler", seed=0,
                chunk=chunk, dtype=torch.float32)
    value, se = res.price, res.stderr
else:
    import torchsde
    class G(torch.nn.Module):
        noise_type, sde_type = "diagonal", "ito"
        def f(self, t, y): return 0.05 * y
        def g(self, t, y): return 0.2 * y
    s = s2 = 0.0
    done = 0
    while done < paths:
        n = min(chunk, paths - done)
        y0 = torch.full((n, 1), 100.0)
        bm = torchsde.BrownianInterval(0.0, 1.0, size=(n, 1), entropy=done)
        y = torchsde.sdeint(G(), y0, torch.tensor([0.0, 1.0]), bm=bm, method="euler", dt=1.0 / steps)[-1, :, 0]
        v = (math.exp(-0.05) * torch.relu(y - 100.0)).double()
        s += float(v.sum()); s2 += float((v * v).sum()); done += n
    value = s / done
    se = math.sqrt(max(s2 / done - value * value, 0.0) / done)
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "price": value, "stderr": se}}))
"""


def monte_carlo(quick: bool) -> dict:
    paths, steps, chunk = (10**6, 10, 10**5) if quick else (10**7, 10, 10**6)
    out = {"paths": paths, "steps": steps, "chunk": chunk}
    for which in ("sdeflow", "torchsde"):
        if which == "torchsde" and torchsde is None:
            out[which] = "not installed"
            continue
        code = _MC_CHILD.format(src=str(ROOT / "src"), which=which, paths=paths, steps=steps, chunk=chunk)
        results = []
        for _ in range(1 if quick else 3):
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        out[which] = {k: statistics.median(r[k] for r in results) for k in ("seconds", "peak_mb", "price", "stderr")}
        print(json.dumps({which: out[which]}), flush=True)
    return out


def fmt(x, digits=1):
    return "n/a" if x is None else f"{x:.{digits}f}"


def report(over, thr, mc, command: str) -> str:
    lines = [
        "# SDE engine benchmark (sdeflow.sdeint, sdeflow.finance)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"torchsde {getattr(torchsde, '__version__', 'not installed')}, numpy {np.__version__}; "
        "torch single-threaded (`torch.set_num_threads(1)`), float32; medians of several runs; "
        f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (a shared machine: ratios "
        "taken in one run are what to read).",
        "",
        "## 1. Per-step overhead (GBM, state (batch, 4), microseconds per step)",
        "",
        "Wall-clock medians (the contenders timed in turn, round by round); in brackets the CPU-time",
        "medians of the same runs (one thread: the time the process itself computed, which the load of",
        "other processes on the machine inflates less).",
        "",
        "| batch | method | sdeflow | hand-written torch loop | torchsde | torchsde / sdeflow | sdeflow / hand |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in over:
        ratio_t = r["torchsde_us"] / r["sdeflow_us"] if r["torchsde_us"] else None
        ratio_h = r["sdeflow_us"] / r["hand_us"] if r["hand_us"] else None
        cpu_t = r["torchsde_cpu_us"] / r["sdeflow_cpu_us"] if r.get("torchsde_cpu_us") else None
        cpu_h = r["sdeflow_cpu_us"] / r["hand_cpu_us"] if r.get("hand_cpu_us") else None
        lines.append(f"| {r['batch']} | {r['method']} | {fmt(r['sdeflow_us'])} [{fmt(r.get('sdeflow_cpu_us'))}] | "
                     f"{fmt(r['hand_us'])} [{fmt(r.get('hand_cpu_us'))}] | {fmt(r['torchsde_us'])} [{fmt(r.get('torchsde_cpu_us'))}] | "
                     f"{fmt(ratio_t, 2)}x [{fmt(cpu_t, 2)}x] | {fmt(ratio_h, 2)}x [{fmt(cpu_h, 2)}x] |")
    work = thr["paths"] * thr["steps"]
    lines += [
        "",
        f"## 2. Throughput: Euler-Maruyama GBM, {thr['paths']:.0e} paths x {thr['steps']} steps, float32",
        "",
        "| contender | seconds | million path-steps / s | vs sdeflow |",
        "|---|---|---|---|",
    ]
    base = thr["sdeflow_rate"]
    for name, key in (("sdeflow.sdeint(method='euler')", "sdeflow"), ("hand-written torch loop", "hand_torch"),
                      ("NumPy vectorized loop", "numpy"), ("floor: torch.randn of the same 10^8 normals", "randn_floor")):
        lines.append(f"| {name} | {thr[key + '_s']:.3f} | {thr[key + '_rate'] / 1e6:.1f} | {thr[key + '_rate'] / base:.2f}x |")
    if "torchsde_rate" in thr:
        lines.append(f"| torchsde.sdeint(method='euler') ({thr['torchsde_steps_run']} steps, per path-step) | "
                     f"{thr['torchsde_s_per_pathstep'] * work:.3f} (scaled) | {thr['torchsde_rate'] / 1e6:.1f} | "
                     f"{thr['torchsde_rate'] / base:.2f}x |")
    lines += [
        "",
        f"sdeflow time / randn floor: {thr['sdeflow_s'] / thr['randn_floor_s']:.2f}x.",
        "",
        f"## 3. Black-Scholes Monte Carlo, {mc['paths']:.0e} paths, Euler {mc['steps']} steps, chunks of {mc['chunk']:.0e}",
        "",
        "| contender | seconds | peak RSS (MB) | price | standard error |",
        "|---|---|---|---|---|",
    ]
    for which in ("sdeflow", "torchsde"):
        r = mc[which]
        if isinstance(r, str):
            lines.append(f"| {which} | {r} | | | |")
        else:
            lines.append(f"| {which} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | {r['price']:.4f} | {r['stderr']:.4f} |")
    lines += ["", "Black-Scholes closed form: 10.450584; both runs carry the same Euler discretization bias "
              "(10 steps in price space).", ""]
    lines += ["## Targets of the issue, as measured in this run", ""]
    for r in over:
        if r["torchsde_us"]:
            need = 10.0 if r["batch"] == 1 else 2.0
            got = r["torchsde_us"] / r["sdeflow_us"]
            lines.append(f"- batch {r['batch']}, {r['method']}: {got:.1f}x faster than torchsde (target {need:g}x): "
                         f"{'met' if got >= need else 'NOT met'}")
        if r["hand_us"]:
            got = r["sdeflow_us"] / r["hand_us"]
            lines.append(f"- batch {r['batch']}, {r['method']}: {got:.2f}x the hand-written loop (target <= 1.3x): "
                         f"{'met' if got <= 1.3 else 'NOT met'}")
    floor = thr["sdeflow_s"] / thr["randn_floor_s"]
    lines.append(f"- throughput: {floor:.2f}x the torch.randn floor (target <= 1.5x): {'met' if floor <= 1.5 else 'NOT met'}; "
                 f"{thr['sdeflow_rate'] / thr['numpy_rate']:.1f}x NumPy"
                 + (f", {thr['sdeflow_rate'] / thr['torchsde_rate']:.0f}x torchsde" if "torchsde_rate" in thr else ""))
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--write", default=None, help="write the markdown report to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    over = overhead(args.quick)
    thr = throughput(args.quick)
    mc = monte_carlo(args.quick)
    command = "python benchmarks/sde_engine.py" + (" --quick" if args.quick else "") + (f" --write {args.write}" if args.write else "")
    text = report(over, thr, mc, command)
    print(text)
    if args.write:
        Path(args.write).write_text(text)


if __name__ == "__main__":
    main()
