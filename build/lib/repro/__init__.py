"""Faithful reproduction of LeNet-5 (LeCun, Bottou, Bengio & Haffner, 1998)."""
from .config import Config, get_config
from .model import LeNet5, predict
from .weights import pretrained

__all__ = ["Config", "LeNet5", "get_config", "predict", "pretrained"]
