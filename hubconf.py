"""torch.hub entry points: `torch.hub.load("<this checkout>", "lenet5", source="local")` returns the
network of a committed run (repro.weights.pretrained), in eval mode; `net.predict(images)` classifies
images in the paper's scaling (repro.data.preprocess)."""
dependencies = ["torch", "numpy"]

from repro.weights import pretrained  # noqa: E402


def lenet5(variant="paper", seed=0):
    """LeNet-5 as trained by `make reproduce` (variant "paper": the faithful recipe; "paper-literal":
    the text word for word), `make distortions` ("distortions", "distortions-fresh") or `make
    training-size` ("paper-15000", "paper-30000"), for one of the committed seeds."""
    return pretrained(variant, seed)
