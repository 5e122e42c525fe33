"""Defaults of the study layer, in one commented place."""

from __future__ import annotations

import torch

DEFAULT_STORAGE = "sqlite:///studies.db"  # in the working directory
DEFAULT_STUDY_NAME = "article"
DEFAULT_SPACE = "article"
DEFAULT_TRIALS = 20
# Epochs per trial when --epochs is not given. Full-batch GD with sigmoid is slow to converge
# (the article ran 50,000 epochs): 3,000 on a GPU reaches the interesting regime in seconds
# per trial; 300 on a 2-core CPU keeps a small net's trial to ~10 s at --train-size 10000.
DEFAULT_EPOCHS = {"cpu": 300, "cuda": 3000}
ARTICLE_LOG_EVERY = 300  # the article printed "Epoch, Loss, Acc" every 300 epochs
DASHBOARD_HOST = "127.0.0.1"  # never exposed beyond this machine unless --host says so
DASHBOARD_PORT = 8080


def default_epochs(device: str) -> int:
    kind = "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
    return DEFAULT_EPOCHS[kind]
