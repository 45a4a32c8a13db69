"""Fault injection: damaged checkpoints and weights files, runs that stay at chance, two processes on
one run folder, concurrent writers, and pool workers whose parent is killed."""
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from repro import data as mnist
from repro.config import get_config
from repro.files import CorruptFile, atomic_save, digest, load_checked
from repro.train import TrainingFailed, failed_at, train
from repro.weights import load, publish, read

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(train_size=300, passes=1, hessian_samples=50)


@pytest.fixture(scope="module")
def tiny_data(mnist_subset):
    return mnist_subset(300, 200)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_data):
    run = tmp_path_factory.mktemp("finished")
    train(get_config(**TINY), 0, run, tiny_data, progress=None)
    return run


def damaged_copy(src, dest, how):
    dest.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.suffix in (".json", ".csv", ".pt"):
            (dest / f.name).write_bytes(f.read_bytes())
    raw = bytearray((dest / "checkpoint.pt").read_bytes())
    if how == "flip":  # one bit of a float32 weight in the middle of the archive's largest record
        state = torch.load(dest / "checkpoint.pt", weights_only=True)["model"]["c5.weight"]
        needle = state.reshape(-1)[1000:1004].numpy().tobytes()
        i = raw.index(needle) + 1
        raw[i] ^= 0x10
    else:
        raw = raw[:len(raw) // 2]
    (dest / "checkpoint.pt").write_bytes(bytes(raw))
    return dest


def test_digest_sees_one_bit_and_the_structure():
    a = dict(w=torch.zeros(4), rows=[dict(loss=0.5)], seed=1)
    b = dict(w=torch.zeros(4), rows=[dict(loss=0.5)], seed=1)
    assert digest(a) == digest(b)
    b["w"][2] = 1e-45  # the smallest float32 above 0: one bit
    assert digest(a) != digest(b)
    assert digest(dict(x=1)) != digest(dict(x=1.0)) != digest(dict(x="1"))


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_a_damaged_checkpoint_stops_resume_and_reading(finished, tmp_path, tiny_data, how):
    run = damaged_copy(finished, tmp_path / "run", how)
    with pytest.raises(CorruptFile, match=rf"{run}.*(SHA-256|truncated).*delete {run}"):
        train(get_config(**TINY), 0, run, tiny_data, progress=None)  # finished: only read
    with pytest.raises(CorruptFile, match=str(run)):
        publish(run, tmp_path / "model.pt")
    assert not (tmp_path / "model.pt").exists()


def test_an_interrupted_damaged_checkpoint_does_not_resume(finished, tmp_path, tiny_data):
    run = damaged_copy(finished, tmp_path / "run", "flip")
    with pytest.raises(CorruptFile, match="does not match"):
        train(get_config(**dict(TINY, passes=2)), 0, run, tiny_data, progress=None)


def test_published_weights_carry_config_and_provenance_and_are_checked(finished, tmp_path, tiny_data):
    publish(finished, tmp_path / "model.pt")
    stored = read(tmp_path / "model.pt")
    assert stored["config"] == get_config(**TINY) and stored["seed"] == 0 and "git_commit" in stored["provenance"]
    net = load(tmp_path / "model.pt", get_config(**TINY))
    assert not net.training
    with pytest.raises(ValueError, match=r"another config: init_fan_power=0.5 \(asked for 1.0\)"):
        load(tmp_path / "model.pt", get_config(**dict(TINY, init_fan_power=1.0)))
    raw = bytearray((tmp_path / "model.pt").read_bytes())
    needle = stored["model"]["f6.weight"].reshape(-1)[500:504].numpy().tobytes()
    raw[raw.index(needle)] ^= 1
    (tmp_path / "model.pt").write_bytes(bytes(raw))
    with pytest.raises(CorruptFile, match="git checkout"):
        load(tmp_path / "model.pt")


def test_a_file_without_digest_is_refused(tmp_path):
    torch.save(dict(model={}), tmp_path / "old.pt")
    with pytest.raises(CorruptFile, match="carries no SHA-256.*delete it"):
        load_checked(tmp_path / "old.pt", "delete it")


def test_the_failure_rule():
    rows = lambda errors: [dict(self_pass, **{"pass": i + 1, "train_error_online": e}) for i, e in enumerate(errors)
                           for self_pass in [{}]]
    assert failed_at(rows([0.9, 0.9, 0.9])) == 3
    assert failed_at(rows([0.9, 0.1, 0.9, 0.9])) is None
    assert failed_at(rows([0.5, 0.85, 0.9, 0.88, 0.9])) == 4


def test_a_run_at_chance_fails_clearly_unless_it_may(tmp_path, tiny_data):
    config = get_config(**dict(TINY, passes=3, eta=tuple(r * 1000 for r in get_config().eta)))
    with pytest.raises(TrainingFailed, match=r"stayed at chance .* up to pass 3"):
        train(config, 0, tmp_path / "a", tiny_data, progress=None)
    with pytest.raises(TrainingFailed):  # and the kept checkpoint does not pass for a success later
        train(config, 0, tmp_path / "a", tiny_data, progress=None)
    rows = train(config, 0, tmp_path / "b", tiny_data, progress=None, may_fail=True)
    assert [r["failed"] for r in rows] == [False, False, True]
    assert (tmp_path / "b" / "metrics.csv").read_text().splitlines()[-1].endswith("True")


@pytest.mark.parametrize("field, value", [("mu", 1e-300), ("eta", (1e-50,) * 20), ("lr", 1e39)])
def test_values_float32_cannot_hold_are_refused(field, value):
    with pytest.raises(ValueError, match=rf"config.{field}.* in float32"):
        get_config(**{field: value})


def _train_tiny(run_dir, out):
    d = mnist.load_mnist()
    data = dict(train_x=d["train_x"][:300], train_y=d["train_y"][:300], test_x=d["test_x"][:200], test_y=d["test_y"][:200])
    torch.set_num_threads(1)
    rows = train(get_config(**TINY), 0, run_dir, data, progress=None)
    Path(out).write_text(json.dumps([{k: v for k, v in r.items() if k not in ("seconds", "eval_seconds", "samples_per_s")}
                                     for r in rows]))


def test_two_processes_on_one_run_folder_train_it_once(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_train_tiny, args=(tmp_path / "run", tmp_path / f"out{i}")) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert (tmp_path / "out0").read_text() == (tmp_path / "out1").read_text()
    assert sorted(f.name for f in (tmp_path / "run").glob("meta*.json")) == ["meta.json"]
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_concurrent_writers_of_one_file_do_not_collide(tmp_path):
    errors = []

    def writer(k):
        try:
            for i in range(40):
                atomic_save(dict(k=k, i=i, w=torch.full((100,), float(i))), tmp_path / "shared.pt")
        except Exception as e:  # noqa: BLE001 - the test reports any failure
            errors.append(e)
    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert load_checked(tmp_path / "shared.pt", "")["i"] == 39
    assert not list(tmp_path.glob("*.tmp"))


def test_pool_workers_exit_when_their_parent_is_killed(tmp_path):
    parent = textwrap.dedent(f"""
        import multiprocessing as mp, os, sys, time
        sys.path.insert(0, {str(ROOT / "experiments")!r})
        from runner import exit_with_parent
        def pid(_):
            time.sleep(0.2)
            return os.getpid()
        def nap(_):
            time.sleep(600)
        if __name__ == "__main__":
            pool = mp.get_context("spawn").Pool(2, initializer=exit_with_parent)
            print(*set(pool.map(pid, range(4))), flush=True)
            pool.map_async(nap, range(2))
            time.sleep(600)
    """)
    (tmp_path / "parent.py").write_text(parent)  # a file: spawned workers import their functions from it
    proc = subprocess.Popen([sys.executable, "parent.py"], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    workers = [int(p) for p in proc.stdout.readline().split()]
    assert workers
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 15
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


@pytest.mark.parametrize("labels, message", [(torch.tensor([3.5, 1.0]), "integer tensor.*float32"),
                                             (torch.tensor([True, False]), "integer tensor.*bool"),
                                             ([3, 1], "integer tensor.*list"),
                                             (torch.tensor([3]), "2 images need 2 labels")])
def test_evaluate_refuses_labels_that_are_not_classes(tiny_data, labels, message):
    from repro.step import make_step
    from repro.train import evaluate
    from repro.model import build
    config = get_config(**TINY)
    net = build(config)
    step, _ = make_step(config, torch.device("cpu"), True)
    params = {k: p.detach() for k, p in net.named_parameters()}
    x = tiny_data["test_x"][:2]
    assert evaluate(step, params, x, tiny_data["test_y"][:2])[1] in (0, 1, 2)
    with pytest.raises(ValueError, match=message):
        evaluate(step, params, x, labels)
    with pytest.raises(ValueError, match="NaN or infinite"):
        evaluate(step, params, torch.where(x > 1, float("nan"), x), tiny_data["test_y"][:2])
