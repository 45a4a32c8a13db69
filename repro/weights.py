"""Published weights (the model.pt of a run kept under results/): a run's final network together with
the config it was trained with and the run's provenance, checked by a SHA-256 when read, so that
weights can neither load into a network of another config nor pass unnoticed when damaged."""
import json
from pathlib import Path

from .config import Config
from .files import atomic_save, load_checked
from .model import build
from .train import read_checkpoint


def publish(run_dir, dest):
    """Write the finished run in `run_dir` as the weights file `dest`: its final state_dict, config,
    seed and provenance (meta.json)."""
    run_dir = Path(run_dir)
    ckpt = read_checkpoint(run_dir)
    provenance = json.loads((run_dir / "meta.json").read_text())
    atomic_save(dict(model=ckpt["model"], config=ckpt["config"], seed=ckpt["seed"], provenance=provenance), dest)


def read(path):
    """dict(model=state_dict, config=Config, seed, provenance) of a weights file, after its check."""
    path = Path(path)
    stored = load_checked(path, f"restore it with `git checkout -- {path}` or rerun the make target that wrote it")
    return dict(stored, config=Config.from_dict(stored["config"]))


def load(path, config: Config = None):
    """The network a weights file holds, in eval mode. With `config`, the file must have been trained
    with exactly that config: weights of another config are refused, not loaded into the wrong network."""
    stored = read(path)
    if config is not None and config != stored["config"]:
        diff = {k: (v, getattr(stored["config"], k)) for k, v in config.to_dict().items()
                if v != getattr(stored["config"], k)}
        raise ValueError(f"{path} holds weights trained with another config: "
                         + ", ".join(f"{k}={theirs!r} (asked for {ours!r})" for k, (ours, theirs) in diff.items()))
    model = build(stored["config"])
    model.load_state_dict(stored["model"])
    return model.eval()


RESULTS = Path(__file__).resolve().parents[1] / "results"  # the repository's committed runs


def published(root=RESULTS):
    """{(variant, seed): weights file} of every run whose weights are kept under `root`
    (results/<experiment>/runs/<variant>_seed<N>/model.pt)."""
    out = {}
    for path in sorted(Path(root).glob("*/runs/*_seed*/model.pt")):
        variant, _, seed = path.parent.name.rpartition("_seed")
        out[variant, int(seed)] = path
    return out


def pretrained(variant="paper", seed=0, root=RESULTS):
    """The trained network of a committed run, built from the config it was trained with, in eval
    mode: `pretrained("paper", seed=0).predict(images)` classifies images in the paper's scaling
    (repro.data.preprocess). Every variant and seed with weights under results/ is available."""
    runs = published(root)
    if (variant, seed) not in runs:
        if not runs:
            raise FileNotFoundError(f"no published weights under {root}: they are committed in the repository's "
                                    "results/ folder, which an installed package does not hold (clone the repository "
                                    "and use it, or pass root=<its results folder>)")
        have = {}
        for v, s in runs:
            have.setdefault(v, []).append(s)
        listing = "; ".join(f"{v}: seeds {', '.join(map(str, sorted(s)))}" for v, s in have.items())
        raise ValueError(f"no published weights for variant {variant!r}, seed {seed!r}; available: {listing}")
    return load(runs[variant, seed])
