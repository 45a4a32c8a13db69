"""Nearest neighbours with the Euclidean distance between raw images (Sec. III-C.2): no training,
all 60,000 training images kept.

Distances are computed from the uint8 pixels as integers in float64 (|x|^2 + |y|^2 - 2 x.y, every
term an integer below 2^53), so they are exact in any summation order and the neighbours are the
same on every CPU. Among equal distances the earlier training image comes first; a vote tied
between classes goes to the class of the nearest neighbour among them (A18).

The scores are the votes plus a graded part below one vote, from the distance to each class's
nearest training image: that breaks ties and gives Fig. 10's top-two gap more than the few values
that votes alone take (A30).
"""
import torch

CHUNK = 500  # test images per distance block (500 x 60,000 float64: 240 MB)


def squared_distances(queries, references):
    """Squared Euclidean distances, float64 (len(queries), len(references)): exact for uint8 images;
    for real-valued rows (K-means centres) rounding can make a distance slightly negative."""
    q = queries.reshape(len(queries), -1).to(torch.float64)
    r = references.reshape(len(references), -1).to(torch.float64)
    return (q * q).sum(1, keepdim=True) + (r * r).sum(1) - 2 * (q @ r.T)


def keys(distances, n):
    """Sort keys distance * n + index of n references: unique, and exact for the integer distances of
    uint8 images (below 2^53, checked), so that among equal distances the earlier reference comes first."""
    if distances.numel() and distances.max() * n + n >= 2 ** 53:
        raise ValueError(f"{n} references: distance keys would not be exact")
    return distances * n + torch.arange(n, dtype=torch.float64)


def neighbours(queries, references, k):
    """Indices of the k nearest uint8 references of each query, nearest first, ties by index (keys():
    topk's order is exact and complete, no sort of the 60,000 needed)."""
    n = len(references)
    return torch.cat([torch.topk(keys(squared_distances(queries[i:i + CHUNK], references), n), k, dim=1,
                                 largest=False).indices for i in range(0, len(queries), CHUNK)])


def class_distances(distances, labels, classes=10):
    """Per query, the squared distance to the nearest reference of each class (inf: the class has none)."""
    inf = torch.full((len(distances),), float("inf"), dtype=torch.float64)
    return torch.stack([distances[:, labels == c].amin(1) if (labels == c).any() else inf for c in range(classes)], 1)


def vote(labels, nearest):
    """Scores from the labels of the k nearest (N, k) and the squared distance to each class's nearest
    reference (N, classes): the votes plus half the ratio of the nearest distance to the class's
    nearest distance (1/2 for the nearest class, less for a farther one, 0 for a class without
    references). The graded part is below one vote, so the votes decide; a tie goes to the class
    whose nearest reference is nearer (the nearest of a class among the k is its nearest of all), at
    equal distances to the lower class."""
    votes = torch.zeros(nearest.shape, dtype=torch.float64)
    votes.scatter_add_(1, labels, torch.ones(labels.shape, dtype=torch.float64))
    d = nearest.clamp(min=0).sqrt()  # feature distances can round slightly below 0
    closest = d.min(1, keepdim=True).values
    ratio = torch.where(d > 0, closest / d, torch.ones_like(d))  # d = 0 only where closest = 0
    return votes + ratio / 2


def knn_scores(queries, references, labels, k, exact=True):
    """vote() scores of each query against the references. exact (uint8 images): ties in distance go
    to the earlier reference by keys(); otherwise (real-valued features) topk's order among ties."""
    n = len(references)
    out = []
    for i in range(0, len(queries), CHUNK):
        d = squared_distances(queries[i:i + CHUNK], references)
        idx = torch.topk(keys(d, n) if exact else d, k, dim=1, largest=False).indices
        out.append(vote(labels[idx], class_distances(d, labels)))
    return torch.cat(out)


class KNN:
    """k-nearest-neighbour vote on raw pixels. Keeps every training image (a byte per pixel)."""

    def __init__(self, train_x, train_y, seed=None, k=3):
        self.train_x, self.train_y, self.k = train_x, train_y, k

    def scores(self, images):
        return knn_scores(images, self.train_x, self.train_y, self.k)

    def parameters(self):
        return self.train_x.numel()

    def macs(self):
        """The distances: one multiply-add per pixel per stored image (the x.y of squared_distances;
        the query's |x|^2 and the stored images' |y|^2, which could be kept, are not counted). The
        vote among the k nearest is not counted."""
        return self.train_x.numel()
