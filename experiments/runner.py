"""Runs many trainings side by side: one process per core, one thread each (batch-1 steps gain
nothing from more threads, and the processes do not compete for cores). Every run lives in its own
directory with a checkpoint after each pass, so an interrupted invocation resumes and finished runs
are read, not retrained."""
import multiprocessing as mp
import os
import shutil
import time
from pathlib import Path


def job(label, config, seed, run_dir, split="train", device="cpu", progress="lines", eval_train="every"):
    """One training for run_all: `config` is a repro Config (sent to the worker as a dict), `split`
    "train" (all 60,000 images) or "validation" (repro.data.validation_split)."""
    return (label, config.to_dict(), seed, str(run_dir), split, device, progress, eval_train)


def run_one(job):
    """Train one job made by `job` in this process."""
    label, config, seed, run_dir, split, device, progress, eval_train = job
    import torch
    from repro import data as mnist
    from repro.config import Config
    from repro.train import train
    config = Config(**config)
    torch.set_num_threads(1)
    # oneDNN's per-call overhead dominates batch-1 convolutions; mini-batches are faster with it
    torch.backends.mkldnn.enabled = config.batch_size > 1
    data = mnist.load_mnist()
    if split == "validation":
        data = mnist.validation_split(data)
    t0 = time.time()
    train(config, seed, Path(run_dir), data, device=device, progress=progress, label=f"[{label}]",
          eval_train=eval_train)
    return label, time.time() - t0


def run_all(jobs, workers=None):
    """Run the jobs (see run_one), at most `workers` at a time (default: one per core)."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    if workers == 1:
        for job in jobs:
            run_one(job)
        return
    with mp.get_context("spawn").Pool(workers) as pool:
        for label, secs in pool.imap_unordered(run_one, jobs):
            print(f"finished {label} in {secs / 60:.1f} min", flush=True)


def keep_provenance(run_dir, dest, weights=False):
    """Copy a finished run's config.json and meta*.json (seed, versions, git commit, device) into
    `dest` under results/, and with `weights` its final state_dict as model.pt."""
    run_dir, dest = Path(run_dir), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in os.listdir(run_dir):
        if name.endswith(".json"):
            shutil.copy(run_dir / name, dest / name)
    if weights:
        import torch
        torch.save(torch.load(run_dir / "checkpoint.pt", weights_only=False)["model"], dest / "model.pt")
