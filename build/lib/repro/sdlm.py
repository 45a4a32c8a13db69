"""Stochastic diagonal Levenberg-Marquardt (Appendix C).

Each parameter w_k gets its own step  eps_k = eta / (mu + h_kk), where h_kk estimates the diagonal of
the Hessian with the Gauss-Newton ("Levenberg-Marquardt") approximation, back-propagated like the
gradient but with squared weights and squared slopes:

    d2E/da_i^2  = f'(a_i)^2 d2E/dx_i^2
    d2E/dx_j^2  = sum_i u_ij^2 d2E/da_i^2
    d2E/du_ij^2 = x_j^2 d2E/da_i^2,      h_kk = sum of d2E/du_ij^2 over the connections sharing w_k,

averaged over `hessian_samples` patterns before each pass and held fixed during the pass.

The boundary term is d2E/dx^2 at the input of the RBF layer (F6's outputs). The paper gives it only
for eq. 8: y_D = sum_j (x_j - w_Dj)^2 has d2/dx_j^2 = 2 ("paper"). "exact" uses the diagonal of the
true Hessian of the training loss with respect to F6's outputs, per pattern; for eq. 8 that is the same
2, for eq. 9 it is 2 - 2 sum_i p_i + 4 Var_p(x_j - w_ij) >= 0 (p_i = e^-y_i / (e^-j + sum e^-y)), which
falls towards 0 on patterns the net already fits. A linear output layer has parameters, so its
boundary is the exact (non-negative) diagonal d2E/dy^2 = p(1-p) of softmax/cross-entropy at the
penalties, and the output layer is then treated like any other linear layer.
"""
import torch
from torch.func import hessian, vmap

from .layers import EuclideanRBF


def _loss_diagonal(fn, z, labels):
    """Per-pattern diagonal of the Hessian of fn(z_n, label_n) with respect to z_n: (N, D)."""
    per_pattern = lambda zn, ln: fn(zn.unsqueeze(0), ln.unsqueeze(0))
    return vmap(hessian(per_pattern), in_dims=(0, 0))(z.detach(), labels).diagonal(dim1=-2, dim2=-1)


def boundary_curvature(model, record, labels, loss_fn, boundary):
    """d2E/d(.)^2 where the Gauss-Newton pass starts, and how many stages (from the top) it skips."""
    _, x_out, y = record[-1]
    if isinstance(model.output, EuclideanRBF):
        if boundary == "paper":
            return torch.full_like(x_out, 2.0), 1
        return _loss_diagonal(lambda x, l: loss_fn(model.output(x), l), x_out, labels), 1
    return _loss_diagonal(loss_fn, y, labels), 0


@torch.no_grad()
def hessian_diagonal(model, x, labels, loss_fn, boundary="paper"):
    """{parameter name: h_kk averaged over the N patterns of x}, for every trainable parameter."""
    record, _ = model.trace(x)
    d2x, skip = boundary_curvature(model, record, labels, loss_fn, boundary)
    stages = model.stages()
    h = {}
    for (name, layer, act), (_, x_in, a) in zip(reversed(stages[:len(stages) - skip]),
                                                reversed(record[:len(record) - skip])):
        d2a = d2x * act.slope(a) ** 2 if act is not None else d2x
        d2x, sums = layer.curvature(x_in, d2a)
        h.update({f"{name}.{p}": v / x.shape[0] for p, v in sums.items()})
    return h


def shared_curvature(h, sharing, counts=None):
    """h_kk of each shared weight as the step sizes use it: the sum over the connections that share
    w_k (Appendix C, `sharing="sum"`: h unchanged) or its mean over them (`"mean"`: each h divided by
    counts[k], the number of connections sharing the entries of parameter k; see
    LeNet5.connections_per_weight)."""
    if sharing == "sum":
        return h
    if sharing != "mean":
        raise ValueError(f"sharing={sharing!r}: expected 'sum' or 'mean'")
    return {k: v / counts[k] for k, v in h.items()}


def step_sizes(h, eta, mu):
    """eps_k = eta / (mu + h_kk), same keys and shapes as h."""
    return {k: eta / (mu + v) for k, v in h.items()}


def per_layer(tensors, fn):
    """fn of all the values of {parameter name: tensor} together ("all") and of each layer's."""
    out = {"all": fn(torch.cat([v.flatten() for v in tensors.values()]))}
    for layer in dict.fromkeys(k.split(".")[0] for k in tensors):
        out[layer] = fn(torch.cat([v.flatten() for k, v in tensors.items() if k.startswith(layer + ".")]))
    return out


def eps_stats(eps):
    """min / median / max of eps overall and per layer (the paper quotes the first pass's range)."""
    return per_layer(eps, lambda t: dict(min=t.min().item(), median=t.median().item(), max=t.max().item()))


def below_mu(h, mu):
    """The share of parameters whose h_kk is below mu, overall and per layer. Their step
    eta / (mu + h) lies between eta / (2 mu) and eta / mu: mu, not the curvature, sets it, and SDLM
    acts on them as plain SGD with the rate eta / mu."""
    return per_layer(h, lambda t: (t < mu).sum().item() / t.numel())
