"""Every default of the study layer (the `mnist-study` commands and `study.runner`), in one commented place.

Training defaults (widths, lr, eval_every, ...) live in `mnist_fc.config`; these are the ones
about studies, workers and outputs. Nothing here imports torch or optuna: `--help` stays fast.
"""

from __future__ import annotations

import os

# --- where studies live -----------------------------------------------------------------------
DEFAULT_STORAGE = "sqlite:///studies.db"  # in the working directory, unless OPTUNA_STORAGE is set
STORAGE_ENV = "OPTUNA_STORAGE"  # Optuna's own CLI reads this variable; so does every command here
DEFAULT_STUDY_NAME = "article"

# --- what `run` does without flags ------------------------------------------------------------
DEFAULT_SPACE = "article"
SPACE_NAMES = ("accuracy", "article")  # the keys of study.spaces.SPACES (a test keeps them equal)
PRUNERS = ("none", "median", "hyperband")  # study.pruners.make_pruner builds them
DEFAULT_TRIALS = 20  # `run` without --trials/--until-complete
DEFAULT_SAMPLER = "tpe"  # tpe searches; random samples evenly (what an unbiased factor analysis wants)
DEFAULT_PRUNER = "none"  # see study/pruners.py: early pruning discards the slow starters the study is about
DEFAULT_JOBS = 1  # worker processes of `run` / seeds trained at once by `final`
DEFAULT_BATCH_TRIALS = 1  # trials trained together as one batched model
MAX_JOBS = 256  # more processes than this is a typo, not a plan
MAX_BATCH_TRIALS = 1024
# Epochs per trial when --epochs is not given. Full-batch GD with sigmoid is slow to converge
# (the article ran 50,000 epochs): 3,000 on a GPU reaches the interesting regime in seconds
# per trial; 300 on a 2-core CPU keeps a small net's trial to ~10 s at --train-size 10000.
DEFAULT_EPOCHS = {"cpu": 300, "cuda": 3000}
N_REPORTS = 50  # Optuna intermediate values per trial: enough for pruners and the dashboard
METRIC_NAME = "val_accuracy"  # the objective's name, as optuna-dashboard shows it
UNTIL_COMPLETE_POLL_S = 1.0  # how often a waiting --until-complete worker looks at the study again

HEARTBEAT_SECONDS = 30  # a live worker touches its trial this often (study.storage's default; a test keeps them equal)

# --- `final` ----------------------------------------------------------------------------------
FINAL_SEEDS = (0, 1, 2)  # the shipped model is the first listed seed's, fixed before any result
FINAL_OUT = "models"
FINAL_PROGRESS_LINES = 10  # progress lines per seed when --log-every is not given
ONNX_ATOL = 1e-3  # max |logit difference| allowed between onnxruntime and PyTorch (fp32 both)

# --- `train` ----------------------------------------------------------------------------------
ARTICLE_LOG_EVERY = 300  # the article printed "Epoch, Loss, Acc" every 300 epochs

# --- `dashboard` ------------------------------------------------------------------------------
DASHBOARD_HOST = "127.0.0.1"  # never exposed beyond this machine unless --host says so
DASHBOARD_PORT = 8080


def default_storage() -> str:
    """$OPTUNA_STORAGE when set (as Optuna's CLI does), else DEFAULT_STORAGE."""
    return os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


def default_epochs(device: str) -> int:
    import torch  # only when a command trains: `--help` must not import torch

    kind = "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
    return DEFAULT_EPOCHS[kind]
