"""`make bench`: throughput of the faithful online step as `make reproduce` runs it (the native
step of repro/native/), against a plain eager implementation of the same step, measured in one
run on this machine.

What is timed: `train.run_pass` (step + per-pattern bookkeeping) over real MNIST patterns with the
faithful config and first-pass SDLM step sizes, one thread per process, after building and a
warm-up; build/compile time is reported separately. Also: the torch.compile step (the CUDA path, and
the CPU fallback without a C compiler), the aggregate of one native run per core side by side
(`make reproduce` runs seeds that way), the Adam update of the `adam` ablation (mini-batches of 64,
native against eager torch.optim), evaluation throughput (70,000 images, as after each pass,
with the native forward pass as training uses it), the online step of each of the other networks
of Sec. III-C (repro/networks.py, repro/native/network_step.c) against its eager step, the opt-in CPU-specific native build
(REPRO_NATIVE_FAST=1: what the portable arithmetic costs), and the CUDA step when a GPU is present. Writes
results/bench/bench.json and RESULTS.md's bench block (render(): from bench.json only), and prints, last,
`bench: online_samples_per_s=<N> eager_samples_per_s=<M> speedup=<N/M>x`. Only the full default run
(30 s per measurement) writes results/ and RESULTS.md, and only from committed code; shorter or longer
measurements (--seconds, make: BENCH_SECONDS) or --scratch write scratch/results/bench/ instead.
"""
import argparse
import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import torch

from blocks import RESULTS_MD, write
from runner import add_scratch_arg, confirm_outputs, output_dirs, positive_seconds
from repro import LeNet5, get_config
from repro import data as mnist
from repro.config import Config
from repro.loss import make_loss
from repro.model import build
from repro.networks import NETWORKS
from repro.provenance import provenance
from repro.sdlm import hessian_diagonal, step_sizes
from repro.step import Adam, make_step
from repro.train import crop, evaluate, load_data, run_pass

SECONDS = 30.0  # per measurement, in the full default run


def setup(device="cpu"):
    config = get_config("paper")
    d = mnist.load_mnist()
    x, y = d["train_x"][:20_000].to(device), d["train_y"][:20_000].to(device)
    model = LeNet5(config).to(device)
    eps = step_sizes(hessian_diagonal(model, x[:500], y[:500], make_loss(config)), config.eta[0], config.mu)
    params = {k: p.detach().requires_grad_(True) for k, p in model.named_parameters()}
    return config, model, params, eps, x, y, d


def throughput(step, params, eps, x, y, seconds, chunk=1000):
    """Patterns per second of run_pass over `seconds` (after one warm-up chunk)."""
    update = lambda xs, ys: step(params, eps, xs, ys)
    run_pass(update, x[:chunk], y[:chunk])
    done, t0, i = 0, time.perf_counter(), chunk
    while not done or time.perf_counter() - t0 < seconds:  # one chunk at least: a tiny --seconds gives a rate, not 0
        if i + chunk > len(x):
            i = 0
        run_pass(update, x[i:i + chunk], y[i:i + chunk])
        done, i = done + chunk, i + chunk
    if x.is_cuda:
        torch.cuda.synchronize()
    return done / (time.perf_counter() - t0)


def single(kind, seconds):
    """(samples/s, build or compile seconds) of the step `kind`: native, native-fast (the opt-in
    CPU-specific build: call it in a process of its own, it sets REPRO_NATIVE_FAST), compiled or eager."""
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False  # as in make reproduce
    if kind == "native-fast":
        os.environ["REPRO_NATIVE_FAST"] = "1"
    config, _, params, eps, x, y, _ = setup()
    step, compile_seconds = make_step(config, fast=kind != "eager", native=kind.startswith("native"))
    assert step.kind == kind, f"asked for the {kind} step, got {step.kind}"
    return throughput(step, params, eps, x, y, seconds), compile_seconds


def adam_throughput(native, seconds):
    """Patterns per second of the `adam` ablation's update (mini-batches of 64, the paper's network):
    the native gradient and C update as training runs them, or torch.optim.Adam on eager autograd."""
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False
    config = get_config("adam", lr=1e-3)
    d = mnist.load_mnist()
    x, y = d["train_x"][:20_000], d["train_y"][:20_000]
    params = {k: p.detach().requires_grad_(True) for k, p in LeNet5(config).named_parameters()}
    step, _ = make_step(config, fast=native, native=native)
    assert step.kind == ("native" if native else "eager"), f"asked for native={native}, got the {step.kind} step"
    adam, b = Adam(step, params, config.lr), config.batch_size
    adam(x[:b], y[:b])  # warm-up
    done, t0, i = 0, time.perf_counter(), 0
    while not done or time.perf_counter() - t0 < seconds:  # one batch at least: a tiny --seconds gives a rate, not 0
        i = 0 if i + b > len(x) else i
        adam(x[i:i + b], y[i:i + b])
        done, i = done + b, i + b
    return done / (time.perf_counter() - t0)


def network_throughput(name, seconds):
    """(native, eager) samples/s of the online step of one of repro/networks.py's networks, on real
    patterns of its own input field with its first-pass SDLM step sizes, one thread."""
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False
    config = Config(network=name)
    d = load_data(config)
    x, y = crop(d["train_x"][:20_000], config), d["train_y"][:20_000]
    rates = []
    for native in (True, False):
        params = {k: p.detach().requires_grad_(True) for k, p in build(config).named_parameters()}
        step, _ = make_step(config, fast=native)
        eps = step_sizes(step.curvature({k: p.detach() for k, p in params.items()}, x[:500], y[:500]), config.eta[0],
                         config.mu)
        rates.append(throughput(step, params, eps, x, y, seconds))
    return tuple(rates)


def _worker(args):
    return single(*args)[0]


def render(results_dir):
    """RESULTS.md's bench block, from bench.json only."""
    r = json.loads((Path(results_dir) / "bench.json").read_text())
    seconds, online, cpu_specific, eager = (r[k] for k in ("seconds_per_measurement", "online_samples_per_s",
                                                   "fast_native_samples_per_s", "eager_samples_per_s"))
    networks = "".join(f"| {n} (`make compare`), native and eager ({seconds / 3:g} s each) | {v['native_samples_per_s']:,.0f} "
                       f"and {v['eager_samples_per_s']:,.0f} samples/s "
                       f"({v['native_samples_per_s'] / v['eager_samples_per_s']:.1f}x) |\n" for n, v in r["networks"].items())
    cuda = f"| CUDA online step | {r['cuda_samples_per_s']:,.0f} samples/s |\n" if r["cuda_samples_per_s"] else ""
    return {RESULTS_MD + "bench": f"""Measured by `make bench` ({seconds:g} s per measurement) on {r['cpu_model']}, {r['parallel_processes']} cores,
torch {r['torch']}, one thread per process; compilation and warm-up excluded:

| what | throughput |
|---|---|
| faithful online step, native (as `make reproduce` runs it: the same bits on every x86-64 CPU) | {online:,.0f} samples/s |
| the same step, CPU-specific native build (`REPRO_NATIVE_FAST=1`, exploration only) | {cpu_specific:,.0f} samples/s |
| cost of portable numbers (portable over CPU-specific) | {online / cpu_specific:.0%} of the speed |
| the same step, torch.compile (the CUDA path; CPUs without a C compiler) | {r['torch_compile_samples_per_s']:,.0f} samples/s |
| the same step, plain eager PyTorch | {eager:,.0f} samples/s |
| speed-up, native over eager | {online / eager:.2f}x |
| Adam (the `adam` ablation: mini-batches of 64), native gradient and update | {r['adam_native_samples_per_s']:,.0f} samples/s |
| the same, eager autograd and torch.optim.Adam | {r['adam_eager_samples_per_s']:,.0f} samples/s |
| {r['parallel_processes']} runs side by side (one process per core) | {r['parallel_model_samples_per_s']:,.0f} model-samples/s |
| evaluation (70,000 images, batch 1,000) | {r['eval_images_per_s']:,.0f} images/s |
{networks}{cuda}| build time of the native step (0 where this machine built it before) | {r['compile_seconds']:.1f} s |
| compile time of the torch.compile step | {r['torch_compile_seconds']:.1f} s |
"""}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--seconds", type=positive_seconds,
                    help=f"per measurement (default: the environment's BENCH_SECONDS, else {SECONDS:g})")
    add_scratch_arg(ap)
    args = ap.parse_args()
    if args.seconds is None:  # checked like --seconds, so a bad BENCH_SECONDS stops here too
        try:
            args.seconds = positive_seconds(os.environ.get("BENCH_SECONDS") or SECONDS)
        except argparse.ArgumentTypeError as e:
            ap.error(f"BENCH_SECONDS: {e}")
    scratch = args.seconds != SECONDS or args.scratch
    out, _ = output_dirs("bench", scratch)
    confirm_outputs("make bench", scratch, out)

    online, compile_seconds = single("native", args.seconds)
    print(f"native online step:   {online:,.0f} samples/s (build {compile_seconds:.1f} s)", flush=True)
    with mp.get_context("spawn").Pool(1) as pool:
        cpu_specific = pool.apply(_worker, (("native-fast", args.seconds),))
    print(f"native, CPU-specific:  {cpu_specific:,.0f} samples/s (REPRO_NATIVE_FAST=1; portable build at "
          f"{online / cpu_specific:.0%} of it)", flush=True)
    compiled, torch_compile_seconds = single("compiled", args.seconds)
    print(f"torch.compile step:   {compiled:,.0f} samples/s (compile {torch_compile_seconds:.1f} s)", flush=True)
    eager, _ = single("eager", args.seconds)
    print(f"eager online step:    {eager:,.0f} samples/s", flush=True)

    adam_native, adam_eager = adam_throughput(True, args.seconds), adam_throughput(False, args.seconds)
    print(f"Adam, batch 64:       {adam_native:,.0f} samples/s native, {adam_eager:,.0f} eager "
          f"({adam_native / adam_eager:.1f}x)", flush=True)

    cores = os.cpu_count() or 1
    with mp.get_context("spawn").Pool(cores) as pool:
        per_process = pool.map(_worker, [("native", args.seconds)] * cores)
    print(f"{cores} runs side by side: {sum(per_process):,.0f} model-samples/s "
          f"({', '.join(f'{v:,.0f}' for v in per_process)})", flush=True)

    config, _, params, _, _, _, d = setup()
    images = torch.cat([d["train_x"], d["test_x"]])
    labels = torch.cat([d["train_y"], d["test_y"]])
    step, _ = make_step(config)
    t0 = time.perf_counter()
    evaluate(step, params, images, labels)
    eval_rate = len(images) / (time.perf_counter() - t0)
    print(f"evaluation: {eval_rate:,.0f} images/s ({len(images):,} images in {len(images) / eval_rate:.1f} s, "
          f"{torch.get_num_threads()} threads)", flush=True)

    networks = {name: network_throughput(name, args.seconds / 3) for name in NETWORKS}
    for name, (native_rate, eager_rate) in networks.items():
        print(f"{name}: {native_rate:,.0f} samples/s native, {eager_rate:,.0f} eager ({native_rate / eager_rate:.1f}x)",
              flush=True)
    cuda = None
    if torch.cuda.is_available():
        config, _, params, eps, x, y, _ = setup("cuda")
        step, _ = make_step(config, "cuda")
        cuda = throughput(step, params, eps, x, y, args.seconds)
        print(f"CUDA online step ({torch.cuda.get_device_name()}): {cuda:,.0f} samples/s", flush=True)

    result = dict(online_samples_per_s=online, fast_native_samples_per_s=cpu_specific, eager_samples_per_s=eager,
                  speedup=online / eager,
                  compile_seconds=compile_seconds, torch_compile_samples_per_s=compiled,
                  torch_compile_seconds=torch_compile_seconds, parallel_processes=cores,
                  adam_native_samples_per_s=adam_native, adam_eager_samples_per_s=adam_eager,
                  parallel_model_samples_per_s=sum(per_process), eval_images_per_s=eval_rate,
                  cuda_samples_per_s=cuda, seconds_per_measurement=args.seconds,
                  networks={n: dict(native_samples_per_s=a, eager_samples_per_s=b) for n, (a, b) in networks.items()},
                  **provenance("cpu"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {out / 'bench.json'}")
    write(out, render(out), blocks=not scratch)
    print(f"bench: online_samples_per_s={online:.0f} eager_samples_per_s={eager:.0f} speedup={online / eager:.2f}x")


if __name__ == "__main__":
    main()
