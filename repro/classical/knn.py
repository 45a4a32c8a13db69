"""Nearest neighbours with the Euclidean distance between raw images (Sec. III-C.2): no training,
all 60,000 training images kept.

Distances are computed from the uint8 pixels as integers in float64 (|x|^2 + |y|^2 - 2 x.y, every
term an integer below 2^53), so they are exact in any summation order and the neighbours are the
same on every CPU. Among equal distances the earlier training image comes first; a vote tied
between classes goes to the class of the nearest neighbour among them (A18).
"""
import torch

CHUNK = 500  # test images per distance block (500 x 60,000 float64: 240 MB)


def squared_distances(queries, references):
    """Squared Euclidean distances, float64 (len(queries), len(references)): exact for uint8 images;
    for real-valued rows (K-means centres) rounding can make a distance slightly negative."""
    q = queries.reshape(len(queries), -1).to(torch.float64)
    r = references.reshape(len(references), -1).to(torch.float64)
    return (q * q).sum(1, keepdim=True) + (r * r).sum(1) - 2 * (q @ r.T)


def neighbours(queries, references, k):
    """Indices of the k nearest uint8 references of each query, nearest first, ties by index: the
    key distance * len(references) + index is an integer below 2^53, unique per reference, so
    topk's order is exact and complete (no sort of the 60,000 needed)."""
    n = len(references)
    if 255 ** 2 * references[0].numel() * n >= 2 ** 53:
        raise ValueError(f"{n} references of {references[0].numel()} pixels: distance keys would not be exact")
    index = torch.arange(n, dtype=torch.float64)
    idx = [torch.topk(squared_distances(queries[i:i + CHUNK], references) * n + index, k, dim=1, largest=False).indices
           for i in range(0, len(queries), CHUNK)]
    return torch.cat(idx)


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
        idx = neighbours(images, self.train_x, self.k)
        return vote(self.train_y[idx], self.k)

    def parameters(self):
        return self.train_x.numel()

    def macs(self):
        """The distances: one multiply-add per pixel per stored image (the x.y of squared_distances;
        the query's |x|^2 and the stored images' |y|^2, which could be kept, are not counted). The
        vote among the k nearest is not counted."""
        return self.train_x.numel()
