"""The neural rows of the comparison (Sec. III-C): the networks of repro/networks.py trained as
their rows say, and LeNet-4 combined with other classifiers (Sec. III-C.8 and C.9). Each row's
classifier has scores(images) (largest wins), parameters() and macs(), as repro/classical/'s.

- LeNet-4 / K-NN: LeNet-4's last layer replaced by a Euclidean k-nearest-neighbour vote on the
  120 F5 outputs of the 60,000 training images (A28).
- LeNet-4 / Local: Bottou & Vapnik's local learning on those features: for each test pattern a
  linear classifier is fitted to its `k` nearest training patterns (ridge least squares onto the
  place-code targets) and scores it (A28).
- Boosted LeNet-4 (Drucker et al., after Schapire): net 1 trained on the paper's distorted set;
  net 2 on 60,000 fresh distorted patterns filtered by net 1, half of them misclassified by it;
  net 3 on 60,000 fresh distorted patterns on which nets 1 and 2 disagree; the three outputs added
  (A29). With `early_exit` (a finding of make compare-findings) net 1 answers alone where its
  top-two gap is above a threshold set on the training images, as the paper's 1.75-net average
  implies; nets 2 and 3 run on the rest.
"""
import copy
from pathlib import Path

import torch

from . import networks, paper
from .classical.knn import knn_scores, squared_distances
from .config import Config
from .data import load_mnist
from .distortions import distort
from .files import atomic_save, load_checked
from .layers import param_count
from .model import FeedForward
from .rejection import top_two_gap
from .step import make_step
from .tables import layer_rows
from .train import crop, data_version, load_data, trained

# mu (A10) of the networks trained here: the recipe study chose LeNet-5's; the other networks keep the
# text's 0.02, which no study has measured against another value for them (PAPER_NOTES, "The head study")
NETWORK_MU = {networks.LENET5: Config.mu}
BOOST_SEED = 1000  # net k of a boosted seed s trains from seed s + BOOST_SEED * (k - 1)
SET_SIZE = 60_000  # patterns of nets 2 and 3: one pass, as net 1's
STREAM_LIMIT = 200  # batches of 60,000 fresh distortions searched before giving up (12 million patterns)


def scores(model: FeedForward, images, batch=10_000):
    """-penalties of a trained network (largest wins), float64 (N, 10), by its native forward pass."""
    step, _ = make_step(model.config)
    params = {k: p.detach() for k, p in model.named_parameters()}
    return torch.cat([-step.forward(params, images[i:i + batch]).double() for i in range(0, len(images), batch)])


def connections(model: FeedForward):
    """Multiply-adds per recognition: the network's connections as the paper counts them (a bias is
    one), the tables' count (the place-code comparison is not a layer: A25)."""
    return sum(r["connections"] for r in layer_rows(model))


@torch.no_grad()
def features(model: FeedForward, images, batch=5_000):
    """What the last layer of `model` reads (LeNet-4: the 120 squashed F5 outputs), float64 (N, units)."""
    model = copy.deepcopy(model).double()  # a float64 copy: the caller's network keeps its number type
    last = model.layer_names[-2]
    out = []
    for i in range(0, len(images), batch):
        record, _ = model.trace(images[i:i + batch].double())
        out.append(next(x for name, x, _ in record if name == last).flatten(1))
    return torch.cat(out)


def nearest(queries, references, k, chunk=500):
    """Indices of the k nearest references (Euclidean) of each query, nearest first."""
    return torch.cat([torch.topk(squared_distances(queries[i:i + chunk], references), k, dim=1, largest=False).indices
                      for i in range(0, len(queries), chunk)])


class FeatureKNN:
    """LeNet-4 / K-NN: a k-nearest-neighbour vote on the network's features (the last layer removed)."""

    def __init__(self, model, train_x, train_y, k=3):
        self.model, self.k, self.train_y = model, k, train_y
        self.train_f = features(model, train_x)

    def scores(self, images):
        return self.classify(features(self.model, images))

    def classify(self, f):
        """Scores of patterns whose features are f."""
        return knn_scores(f, self.train_f, self.train_y, self.k, exact=False)

    def parameters(self):
        """The network up to its features, and the features of every training pattern."""
        return param_count(self.model) - param_count(getattr(self.model, self.model.layer_names[-2])) + self.train_f.numel()

    def macs(self):
        """The network up to its features, then one multiply-add per feature per stored pattern."""
        last = layer_rows(self.model)[-1]["connections"]
        return connections(self.model) - last + self.train_f.numel()


class LocalLearning(FeatureKNN):
    """LeNet-4 / Local: per test pattern, ridge least squares of the place-code targets on the
    features (and a constant) of its k nearest training patterns; the fitted linear map scores it."""

    def __init__(self, model, train_x, train_y, k=200, ridge=1.0):
        super().__init__(model, train_x, train_y, k)
        self.ridge = ridge

    def classify(self, f, chunk=500):
        targets = networks.place_code().double()
        out = []
        for i in range(0, len(f), chunk):
            idx = nearest(f[i:i + chunk], self.train_f, self.k)
            phi = torch.cat([self.train_f[idx], torch.ones(*idx.shape, 1, dtype=torch.float64)], 2)  # (n, k, d + 1)
            gram = phi.transpose(1, 2) @ phi + self.ridge * torch.eye(phi.shape[2], dtype=torch.float64)
            w = torch.linalg.solve(gram, phi.transpose(1, 2) @ targets[self.train_y[idx]])  # (n, d + 1, 10)
            x = torch.cat([f[i:i + chunk], torch.ones(len(idx), 1, dtype=torch.float64)], 1).unsqueeze(1)
            out.append((x @ w).squeeze(1))
        return torch.cat(out)

    def macs(self):
        """FeatureKNN's, then per test pattern the local fit: the Gram matrix and right-hand side over
        the k neighbours, a Cholesky-like solve of the (d+1)-square system for 10 targets, the scores."""
        d = self.train_f.shape[1] + 1
        return super().macs() + self.k * d * (d + 10) + d ** 3 // 3 + 10 * d * d + 10 * d


class TrainedNetwork:
    """One of networks.ROWS: the network trained on its data by the paper's recipe."""

    def __init__(self, model):
        self.model = model

    def scores(self, images):
        return scores(self.model, images)

    def parameters(self):
        return param_count(self.model)

    def macs(self):
        return connections(self.model)


COMBINED = {
    "lenet4-knn": "LeNet-4's F5 features, 3-nearest neighbours",
    "lenet4-local": "LeNet-4's F5 features, a linear classifier fitted on the 200 nearest",
    "boosted-lenet4-dist": "three LeNet-4s, the 2nd and 3rd on patterns filtered by the first ones, distortions",
}


def what(row):
    """A row's description for the tables."""
    if row in COMBINED:
        return COMBINED[row]
    network, distortions = networks.ROWS[row]
    return networks.get(network).what + (", distortions" if distortions != "none" else "")


def network_of(row):
    """(network, distortions) of a neural row; the rows on LeNet-4's features: LeNet-4's."""
    return {**networks.ROWS, **networks.LENET5_ROWS}.get(row, ("lenet4", "none"))


def row_config(network, distortions="none", overrides=None):
    """The recipe for a network of the comparison, with that network's mu (NETWORK_MU); `overrides`
    (a finding's dict of config fields) may swap the network, which then brings its own mu."""
    overrides = dict(overrides or {})
    network = overrides.pop("network", network)
    return Config(**{"network": network, "distortions": distortions,
                     "mu": NETWORK_MU.get(network, paper.MU), **overrides})


def fit(row, seed, where, require_portable=False, **overrides):
    """(classifier, test images, test labels, data version) of a neural row for one seed, whose job
    directory is `where` (runs/<row>/seed<N>): a network trains in where/training, the boosted nets
    in where/net1..3, each resumed if unfinished; the rows on LeNet-4's features read LeNet-4's run
    of the same seed (runs/lenet4/seed<N>/training). `overrides` change the network's config (the
    findings of make compare-findings)."""
    where = Path(where)
    if row == "boosted-lenet4-dist":
        data = load_mnist()
        boosted = Boosted(seed, where, data, require_portable, **overrides)
        return boosted, data["test_x"], data["test_y"], data_label(row_config("lenet4", "paper"))
    network, distortions = network_of(row)
    config = row_config(network, distortions, overrides)
    data = load_data(config)
    own = where.parent.parent / "lenet4" / f"seed{seed}" if row in COMBINED else where
    # a seed that stays at chance is a result of the row (A31: measured, then explained by a finding), not an error
    model = trained(config, seed, own / "training", data, require_portable, may_fail=True)
    version = data_label(config)  # the config's network: a finding may swap the row's (lenet4_rbf-head)
    test_x = crop(data["test_x"], config)
    if row == "lenet4-knn":
        return FeatureKNN(model, data["train_x"], data["train_y"]), test_x, data["test_y"], version
    if row == "lenet4-local":
        return LocalLearning(model, data["train_x"], data["train_y"]), test_x, data["test_y"], version
    return TrainedNetwork(model), test_x, data["test_y"], version


def data_label(config):
    """The images a network reads, as metrics.csv names them: their version and its input field."""
    version, side = data_version(config)
    return f"{version} ({side}x{side} field)"


# ---- boosting ---------------------------------------------------------------------------------
def stream(originals, generator):
    """Batches of fresh distortions of the training images, in a new random order each, with labels' order."""
    for _ in range(STREAM_LIMIT):
        order = torch.randperm(len(originals), generator=generator)
        yield distort(originals[order], generator), order
    raise RuntimeError(f"boosting: {STREAM_LIMIT} batches of distorted patterns did not give {SET_SIZE} patterns "
                       "for the next net")


def filtered_set(originals, labels, kind, quotas, generator):
    """Fresh distorted patterns chosen by kind(images, labels) -> (N,) ints: the first quotas[v]
    patterns of each kind v (the others dropped), in stream order."""
    xs, ys, counts = [], [], dict.fromkeys(quotas, 0)
    for images, order in stream(originals, generator):
        y = labels[order]
        v = kind(images, y).to(torch.int64)
        for value, quota in quotas.items():
            pick = (v == value).nonzero()[:, 0][:quota - counts[value]]
            counts[value] += len(pick)
            xs.append(images[pick]), ys.append(y[pick])
        if counts == quotas:
            return torch.cat(xs), torch.cat(ys)


def exit_threshold(first, total):
    """The early exit's threshold (A29): the largest top-two gap of net 1's scores `first` among the
    patterns where net 1's answer differs from the three nets' `total`, 0 where none does. Net 1
    answering alone where its gap is above it changes none of the full sum's answers on those patterns."""
    differ = first.argmax(1) != total.argmax(1)
    return float(top_two_gap(first)[differ].max()) if differ.any() else 0.0


def with_early_exit(first, later, images, threshold):
    """Scores of boosting with an early exit: net 1's scores `first` on `images` times 3 (the scale
    of a sum of three, so that Fig. 10's gaps compare) where their top-two gap is above `threshold`;
    elsewhere the sum with the scores that later(unsure images) lists, added in order as without the
    exit; and which patterns were unsure (ran nets 2 and 3)."""
    unsure = top_two_gap(first) <= threshold
    out = 3 * first
    if unsure.any():
        out[unsure] = sum(later(images[unsure]), first[unsure])
    return out, unsure


class Boosted:
    """Boosted LeNet-4 [dist]: three LeNet-4s trained in turn (their runs in run_dir/net1..3, each
    resumable) on `data` (repro.data.load_mnist's); scores are the sum of the three nets' scores, or
    with `early_exit` net 1's alone where it is sure (exit_threshold on the training images)."""

    def __init__(self, seed, run_dir, data, require_portable=False, early_exit=False):
        run_dir = Path(run_dir)
        originals, labels = data["train_x"], data["train_y"]
        g = torch.Generator().manual_seed(seed + BOOST_SEED * 3)  # the streams' distortions
        net1 = trained(row_config("lenet4", "paper"), seed, run_dir / "net1", data,
                       require_portable)
        right = lambda x, y: scores(net1, x).argmax(1) == y  # net 2: half right, half wrong for net 1
        half = {False: SET_SIZE // 2, True: SET_SIZE // 2}
        net2 = self._next(2, seed, run_dir, data, lambda: filtered_set(originals, labels, right, half, g),
                          require_portable)
        disagree = lambda x, y: scores(net1, x).argmax(1) != scores(net2, x).argmax(1)  # net 3
        net3 = self._next(3, seed, run_dir, data, lambda: filtered_set(originals, labels, disagree, {True: SET_SIZE}, g),
                          require_portable)
        self.nets = (net1, net2, net3)
        self.threshold = None
        if early_exit:
            first = scores(net1, originals)
            self.threshold = exit_threshold(first, sum(self._later(originals), first))
        self.unsure = None  # with early_exit: the fraction of the patterns last scored that ran nets 2 and 3

    @staticmethod
    def _next(k, seed, run_dir, data, make_set, require_portable):
        """Net k, trained on the set make_set() gives (kept in run_dir/net{k}_set.pt, so a resumed run
        trains on the same patterns)."""
        path = run_dir / f"net{k}_set.pt"
        if not path.exists():
            x, y = make_set()
            atomic_save(dict(x=x, y=y), path)
        chosen = load_checked(path, f"delete {path} (it is made again from the net's run)")
        own = dict(data, train_x=chosen["x"], train_y=chosen["y"])
        return trained(row_config("lenet4"), seed + BOOST_SEED * (k - 1), run_dir / f"net{k}", own, require_portable)

    def _later(self, images):
        return [scores(net, images) for net in self.nets[1:]]

    def scores(self, images):
        first = scores(self.nets[0], images)
        if self.threshold is None:
            return sum(self._later(images), first)  # (net 1 + net 2) + net 3, as before the early exit
        out, unsure = with_early_exit(first, self._later, images, self.threshold)
        self.unsure = unsure.double().mean().item()
        return out

    def parameters(self):
        return sum(param_count(net) for net in self.nets)

    def macs(self):
        """All three nets on every pattern; with the early exit net 1 on every pattern and nets 2 and 3
        on the share of the patterns last scored that were unsure (the paper: 1.75 nets on average)."""
        first, later = connections(self.nets[0]), sum(connections(net) for net in self.nets[1:])
        if self.threshold is None:
            return first + later
        if self.unsure is None:
            raise RuntimeError("the early exit's multiply-adds are an average over scored patterns: call scores() first")
        return round(first + self.unsure * later)
