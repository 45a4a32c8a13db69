"""Nearest neighbours with the Euclidean distance between raw images (Sec. III-C.2): no training,
all 60,000 training images kept.

Distances are computed from the uint8 pixels as integers in float64 (|x|^2 + |y|^2 - 2 x.y, every
term an integer below 2^53), so they are exact in any summation order and the neighbours are the
same on every CPU. Among equal distances the earlier training image comes first (a stable sort);
a vote tied between classes goes to the class of the nearest neighbour among them (A18).
"""
import torch

CHUNK = 500  # test images per distance block (500 x 60,000 float64: 240 MB)


def squared_distances(queries, references):
    """Exact squared Euclidean distances between uint8 images, float64 (len(queries), len(references))."""
    q = queries.reshape(len(queries), -1).to(torch.float64)
    r = references.reshape(len(references), -1).to(torch.float64)
    return (q * q).sum(1, keepdim=True) + (r * r).sum(1) - 2 * (q @ r.T)


def neighbours(queries, references, k):
    """(distances, indices) of the k nearest references of each query, nearest first, ties by index."""
    dists, idx = [], []
    for i in range(0, len(queries), CHUNK):
        d = squared_distances(queries[i:i + CHUNK], references)
        order = torch.sort(d, dim=1, stable=True).indices[:, :k]
        dists.append(d.gather(1, order)), idx.append(order)
    return torch.cat(dists), torch.cat(idx)


def vote(labels, k, classes=10):
    """Scores from the labels of the k nearest, nearest first (N, k): votes, and a tie between
    classes goes to the one whose first neighbour is nearer (a bonus below one vote)."""
    n = len(labels)
    votes = torch.zeros(n, classes, dtype=torch.float64)
    votes.scatter_add_(1, labels, torch.ones(labels.shape, dtype=torch.float64))
    first = torch.full((n, classes), float(k), dtype=torch.float64)  # rank of each class's nearest
    ranks = torch.arange(k, dtype=torch.float64).expand(n, k)
    first.scatter_reduce_(1, labels, ranks, reduce="amin")
    return votes - first / (k + 1)


class KNN:
    """k-nearest-neighbour vote on raw pixels. Keeps every training image (a byte per pixel)."""

    def __init__(self, train_x, train_y, seed=None, k=3):
        self.train_x, self.train_y, self.k = train_x, train_y, k

    def scores(self, images):
        _, idx = neighbours(images, self.train_x, self.k)
        return vote(self.train_y[idx], self.k)

    def parameters(self):
        return self.train_x.numel()
