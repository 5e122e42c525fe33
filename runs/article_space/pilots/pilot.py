"""The script that ran the selection pilots (validation only), kept as the record of how they ran.

    OMP_NUM_THREADS=1 python runs/article_space/pilots/pilot.py LR N1 N2 TRAIN_SIZE EPOCHS NORM STD [SCALING]

Sigmoid, BatchNorm, N(0, STD) init (x SCALING), full-batch plain GD, seed 0, precision auto; prints
train/validation accuracy and thinned curves as one JSON line (no test metric).
`scripts/article_run.py --hold-out-validation --no-test` runs the same configuration.
"""

import json
import sys
import time

from mnist_fc.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from mnist_fc.trainer import fit

lr, n1, n2, ts, ep = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
norm, std = sys.argv[6], float(sys.argv[7])
scaling = sys.argv[8] if len(sys.argv) > 8 else "none"
cfg = RunConfig(
    model=ModelConfig(n_units_l1=n1, n_units_l2=n2, batchnorm=True, init_mean=0.0, init_std=std, init_scaling=scaling),
    data=DataConfig(normalization=norm, train_size=ts),
    train=TrainConfig(lr=lr, epochs=ep, eval_every=25, device="cpu"),
)
t = time.time()
r = fit(cfg).result
c = r.curves.to_dict()
record = {
    "args": sys.argv[1:],
    "s": round(time.time() - t, 1),
    "train_acc": r.train_accuracy,
    "val": r.val_accuracy,
    "valcurve": [round(v, 4) for v in c.get("val_accuracy", [])][::2],
    "trainloss": [round(v, 4) for v in c["train_loss"][::25]],
}
print(json.dumps(record))
