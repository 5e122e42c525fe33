"""Every default of a model, its data and its training, in one commented place.

A `RunConfig` fully describes one training run; it is stored as JSON with every
trial, so any result in a study can be reproduced from its row alone.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from mnist_fc.errors import ConfigError

N_PIXELS = 784  # 28 x 28 MNIST images, flattened: the first layer's fan-in
N_CLASSES = 10  # digits 0-9: the last layer's width
ARTICLE_EPOCHS = 50_000  # the article's full-batch run (on a GPU)
DEFAULT_EPOCHS = 500  # a TrainConfig without `epochs`: keeps one CPU run to minutes (the study layer
# picks its own per-trial default by device, see study/defaults.py)

# Bounds of the numeric fields (also the CLI's flag bounds, study/commands/args.py): beyond them only
# overflows and out-of-memory errors deep inside torch or numpy are left.
MAX_EPOCHS = 10_000_000  # the article ran 50,000
MAX_UNITS = 1 << 16  # hidden layer width
MAX_SEED = 2**32 - 1  # numpy's RandomState (Optuna's samplers) takes no more
MAX_COUNT = 10_000_000  # images (train size, validation size, batch size), trials, ...
MAX_REAL = 1e6  # lr, weight decay, momentum, init mean/std, input shift/scale
MAX_PIXELS = 28.0  # augmentation shift / elastic sigma: the image is 28 pixels wide
MAX_DEGREES = 180.0  # augmentation rotation / shear

ACTIVATIONS = ("sigmoid", "tanh", "relu", "gelu", "silu")
INIT_DISTRIBUTIONS = ("normal", "uniform")
# Init scaling (article point 3): multiply every drawn weight of a layer by 1, 1/sqrt(n) or 1/n, where n is
# the layer's fan-in, the number of units feeding it (784 for the first layer, n_units_l1 for the second):
# the units whose outputs are summed in w.x, the sum the article wants kept small whatever the width.
INIT_SCALINGS = ("none", "sqrt_fan_in", "fan_in")
NORMALIZATIONS = ("article", "raw", "unit", "global", "per_pixel")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
OPTIMIZERS = ("sgd", "nesterov", "adam", "adamw")
SCHEDULES = ("none", "cosine", "onecycle")


@dataclass(frozen=True)
class ModelConfig:
    """N_PIXELS -> h1 -> h2 -> N_CLASSES: exactly two hidden fully connected layers."""

    n_units_l1: int = 100  # article: 100 hidden units in the first layer
    n_units_l2: int = 30  # article: 30 in the second
    activation: str = "sigmoid"  # article: sigmoid; one of ACTIVATIONS
    batchnorm: bool = False  # BatchNorm1d after each hidden Linear (article's last step)
    dropout: float = 0.0  # dropout after each hidden activation; 0 = off (article: off)
    init_distribution: str = "normal"  # "normal", or "uniform" with the same mean and std
    init_mean: float = 0.01  # article: 0.01 ("the 0.01 matters")
    init_std: float = 0.1  # article: 0.1
    # "none" (article's run), "sqrt_fan_in" (x 1/sqrt(fan_in)) or "fan_in" (x 1/fan_in, the article's rule of
    # dividing by the number of units); one of INIT_SCALINGS. Stored configs with the old bool
    # fan_in_scaling load as "sqrt_fan_in"/"none" (RunConfig.from_dict).
    init_scaling: str = "none"


@dataclass(frozen=True)
class DataConfig:
    """Which images, how many, and how they are scaled before the first layer."""

    source: str = "embedded"  # "embedded" (package IDX files) or "csv"
    train_csv: str | None = None  # with source="csv": label + 784 pixels per row
    test_csv: str | None = None
    normalization: str = "article"  # article: (x - 127.5) / 255; one of NORMALIZATIONS
    # Input mean and variance as factors (article point 4), applied AFTER the normalisation:
    # x'' = x' * input_scale + input_shift, so the input's mean moves by input_shift and its std is
    # multiplied by |input_scale|. Folded into the normaliser's affine, so export and batching see one transform.
    input_shift: float = 0.0
    input_scale: float = 1.0
    train_size: int | None = None  # stratified seeded subsample of the 50,000 training images
    validation_size: int = 10_000  # the LAST 10,000 official training images (fixed, not random)
    # True: train on all 60,000 official training images (train + validation), for a final model whose
    # configuration was already chosen on validation; validation metrics are then NOT held out.
    include_validation: bool = False
    # Seed of the stratified train_size subsample; None = the run's train seed (as before this field
    # existed, so older studies reproduce). Set it to vary the init seed on a fixed subset, or back.
    subset_seed: int | None = None
    # Deskew every image (training, validation, test) before anything else: shear its slant away and
    # centre its centre of mass, from the image's own moments (mnist_fc/deskew.py; LeCun et al. 1998).
    # A fixed per-image map; the saved and exported model does it to its raw input too. Off in the article.
    deskew: bool = False


@dataclass(frozen=True)
class TrainConfig:
    """Full-batch gradient descent, as in the article, unless told otherwise (defaults are the article's)."""

    epochs: int = DEFAULT_EPOCHS  # article: ARTICLE_EPOCHS
    lr: float = 0.1  # article: plain SGD, lr 0.1, no momentum
    momentum: float = 0.0  # article: none
    weight_decay: float = 0.0  # article: none
    eval_every: int = 10  # validation metrics (and divergence check) every K epochs
    seed: int = 0
    device: str = "auto"  # "auto" = cuda when available, else cpu
    # "auto" = whichever of fp32 / bf16 the probe measures faster for this run's first layer on this
    # device (mnist_fc/precision.py, cached per machine); "fp32" / "bf16" pin it.
    precision: str = "auto"
    # May "auto" pick bf16 at all? False for studies whose measures bf16 changes (late-training
    # oscillation, docs/speed.md section 3): auto then means fp32. Explicit "bf16" is not affected.
    allow_bf16_auto: bool = True
    deterministic: bool = True  # torch deterministic algorithms (CPU runs repeat bit for bit)
    # Full-batch loops: end the run (a normal finish, not an early stop) at the first check at or after
    # the plateau exit epoch + stop_margin (exit: the loss falls clearly below its plateau, see
    # mnist_fc/measures.py). None = run all epochs. For designs that measure the plateau only.
    stop_margin: int | None = None
    # Everything below is off by default: the article's full-batch plain SGD. Any non-default
    # value routes training through the minibatch loop (mnist_fc/minibatch.py).
    optimizer: str = "sgd"  # article: plain SGD (uses `momentum`); "nesterov" needs momentum > 0
    batch_size: int | None = None  # None = full batch (article); else minibatches, reshuffled each epoch
    schedule: str = "none"  # article: constant lr; "cosine" (after warm-up) or "onecycle", stepped per batch
    warmup_epochs: float = 0.0  # linear lr warm-up (cosine) / rising phase (onecycle; 0 = 30% of the run)
    label_smoothing: float = 0.0  # article: none (plain cross-entropy)
    # On-device augmentation, freshly drawn every epoch (all 0 = off, the article):
    aug_shift: float = 0.0  # max translation in pixels, each axis, uniform
    aug_rotate: float = 0.0  # max rotation in degrees, uniform +-
    aug_scale: float = 0.0  # max relative zoom, uniform in [1 - s, 1 + s]
    aug_shear: float = 0.0  # max shear angle in degrees, uniform +-
    aug_elastic_alpha: float = 0.0  # elastic distortion strength in pixels (Simard 2003); 0 = none
    aug_elastic_sigma: float = 4.0  # smoothness (Gaussian sigma, pixels) of the elastic displacement field
    # The last K epochs train on the clean images (augmentation off), so that the weights end fitted to
    # undistorted digits like the test set's. 0 = augment to the end; needs some augmentation above.
    aug_clean_epochs: int = 0
    # Exponential moving average of the weights (and BatchNorm statistics), updated after every optimiser
    # step: avg <- d * avg + (1 - d) * weights; validation/test metrics and the returned model are the
    # average's. 0 = off (the article); e.g. 0.999 averages over the last ~1,000 steps. Still one network.
    ema_decay: float = 0.0

    def augments(self) -> bool:
        return any(
            v > 0 for v in (self.aug_shift, self.aug_rotate, self.aug_scale, self.aug_shear, self.aug_elastic_alpha)
        )

    def for_epochs(self, epochs: int) -> TrainConfig:
        """This config run for `epochs` instead: its warm-up as long as before, but no longer than the run
        (validate refuses a warm-up beyond the last epoch)."""
        return dataclasses.replace(self, epochs=epochs, warmup_epochs=min(self.warmup_epochs, epochs))

    def uses_minibatch_loop(self) -> bool:
        """True when anything beyond the article's full-batch plain SGD is asked for."""
        return (
            self.optimizer != "sgd"
            or self.batch_size is not None
            or self.schedule != "none"
            or self.label_smoothing > 0
            or self.augments()
            or self.ema_decay > 0
        )


@dataclass(frozen=True)
class RunConfig:
    """Everything one training run needs."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """The RunConfig stored as `d` (RunConfig.to_dict); ConfigError if `d` is not one (damaged or foreign)."""
        if not isinstance(d, dict):
            raise ConfigError(f"not a stored run configuration (a {type(d).__name__}, not a mapping)")
        if unknown := sorted(map(str, set(d) - {"model", "data", "train"})):  # a misspelt section: not ignored
            raise ConfigError(f"not a stored run configuration (unknown section {unknown[0]!r}: model, data, train)")
        try:
            return cls(
                model=model_config_from_dict(d.get("model", {})),
                data=DataConfig(**d.get("data", {})),
                train=TrainConfig(**d.get("train", {})),
            )
        except (TypeError, AttributeError, ValueError) as e:  # not a dict, unknown or missing fields
            first = (str(e).splitlines() or [type(e).__name__])[0]
            raise ConfigError(f"not a stored run configuration ({first[:200]})") from None


def model_config_from_dict(d: dict[str, Any]) -> ModelConfig:
    """A ModelConfig from its stored dict, including dicts stored before init_scaling existed
    (studies.db's reference study, models/accuracy.json), whose bool fan_in_scaling maps onto it."""
    model = dict(d)
    if "fan_in_scaling" in model:
        legacy = model.pop("fan_in_scaling")
        model.setdefault("init_scaling", "sqrt_fan_in" if legacy else "none")
    return ModelConfig(**model)


def article_preset(**train_overrides: Any) -> RunConfig:
    """The article's setup: 784-100-30-10 sigmoid, N(0.01, 0.1), SGD lr 0.1, 50,000 epochs; the last 10,000
    training images are held out for validation (the article trained on all 60,000)."""
    return RunConfig(
        model=ModelConfig(),
        data=DataConfig(normalization="article"),
        train=dataclasses.replace(TrainConfig(epochs=ARTICLE_EPOCHS), **train_overrides),
    )


_KINDS = {"bool": "true or false", "int": "a whole number", "float": "a finite number", "str": "a string"}


def _has_kind(value: object, kind: str) -> bool:
    """Whether `value` is of the annotated kind: no bool for a number (True is an int in Python), no string
    for a bool ("False" is truthy), no NaN or infinity for a float; numpy scalars count as numbers."""
    boolean = isinstance(value, bool) or type(value).__name__ in ("bool", "bool_")  # numpy's bool too
    if kind == "bool":
        return boolean
    if boolean:
        return False
    if kind == "int":
        return isinstance(value, numbers.Integral)
    if kind == "float":
        return isinstance(value, numbers.Real) and math.isfinite(value)
    return isinstance(value, str)


def check_types(cfg: RunConfig) -> None:
    """ConfigError naming the first field whose value is not of its annotated type (a config built in
    Python or read from JSON/YAML is not checked by the dataclass itself: "False" would mean True)."""
    for part in ("model", "data", "train"):
        section = getattr(cfg, part)
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            kind, _, none = str(f.type).partition(" | ")
            if value is None and none == "None":
                continue
            if not _has_kind(value, kind):
                want = _KINDS[kind] + (" or None" if none else "")
                raise ConfigError(f"{part}.{f.name} must be {want}, not {shown_value(value)}")


def shown_value(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def validate(cfg: RunConfig) -> None:
    """Raise ConfigError with a one-line message for any value that cannot be trained or would be ignored."""
    check_types(cfg)
    m, d, t = cfg.model, cfg.data, cfg.train
    checks = [
        (m.n_units_l1 >= 1 and m.n_units_l2 >= 1, "hidden sizes must be >= 1"),
        (max(m.n_units_l1, m.n_units_l2) <= MAX_UNITS, f"hidden sizes must be <= {MAX_UNITS}"),
        (abs(m.init_mean) <= MAX_REAL and m.init_std <= MAX_REAL, f"init mean and std must be within +-{MAX_REAL:g}"),
        (m.activation in ACTIVATIONS, f"unknown activation {m.activation!r} (choose from {', '.join(ACTIVATIONS)})"),
        (
            m.init_distribution in INIT_DISTRIBUTIONS,
            f"unknown init distribution {m.init_distribution!r} (choose from {', '.join(INIT_DISTRIBUTIONS)})",
        ),
        (m.init_std >= 0, "init std must be >= 0"),
        (
            m.init_scaling in INIT_SCALINGS,
            f"unknown init scaling {m.init_scaling!r} (choose from {', '.join(INIT_SCALINGS)})",
        ),
        (0.0 <= m.dropout < 1.0, "dropout must be in [0, 1)"),
        (
            d.normalization in NORMALIZATIONS,
            f"unknown normalization {d.normalization!r} (choose from {', '.join(NORMALIZATIONS)})",
        ),
        (d.source in ("embedded", "csv"), f"unknown data source {d.source!r} (embedded or csv)"),
        (d.source != "csv" or (d.train_csv and d.test_csv), "CSV data needs both a train and a test CSV file"),
        (
            d.source == "csv" or (d.train_csv is None and d.test_csv is None),
            f"CSV files are read only with source 'csv', not {d.source!r} (they would be ignored)",
        ),
        (d.train_size is None or 10 <= d.train_size <= MAX_COUNT, f"train size must be in [10, {MAX_COUNT}]"),
        (1 <= d.validation_size <= MAX_COUNT, f"validation size must be in [1, {MAX_COUNT}]"),
        (
            d.subset_seed is None or d.train_size is not None,
            "a subset seed needs a train size (it seeds the subsample; it would be ignored)",
        ),
        (abs(d.input_shift) <= MAX_REAL, f"input shift must be within +-{MAX_REAL:g}"),
        (d.input_scale != 0 and abs(d.input_scale) <= MAX_REAL, f"input scale must be non-zero, within +-{MAX_REAL:g}"),
        (1 <= t.epochs <= MAX_EPOCHS, f"epochs must be in [1, {MAX_EPOCHS}]"),
        (0 < t.lr <= MAX_REAL, f"learning rate must be > 0 and <= {MAX_REAL:g}"),
        (0 <= t.momentum <= MAX_REAL, f"momentum must be >= 0 and <= {MAX_REAL:g}"),
        (0 <= t.weight_decay <= MAX_REAL, f"weight decay must be >= 0 and <= {MAX_REAL:g}"),
        (1 <= t.eval_every <= MAX_EPOCHS, f"eval-every must be in [1, {MAX_EPOCHS}]"),
        (t.stop_margin is None or 0 <= t.stop_margin <= MAX_EPOCHS, f"stop margin must be in [0, {MAX_EPOCHS}]"),
        (0 <= t.seed <= MAX_SEED, f"seed must be in [0, {MAX_SEED}]"),
        (d.subset_seed is None or 0 <= d.subset_seed <= MAX_SEED, f"subset seed must be in [0, {MAX_SEED}]"),
        (t.optimizer in OPTIMIZERS, f"unknown optimizer {t.optimizer!r} (choose from {', '.join(OPTIMIZERS)})"),
        (t.optimizer != "nesterov" or t.momentum > 0, "the nesterov optimizer needs momentum > 0"),
        (
            t.momentum == 0 or t.optimizer in ("sgd", "nesterov"),
            f"momentum applies to sgd and nesterov, not {t.optimizer} (it would be ignored)",
        ),
        (t.batch_size is None or 1 <= t.batch_size <= MAX_COUNT, f"batch size must be in [1, {MAX_COUNT}]"),
        (
            t.batch_size != 1 or not m.batchnorm,
            "BatchNorm needs batches of at least 2 images (batch size 1 has no batch statistics)",
        ),
        (t.schedule in SCHEDULES, f"unknown schedule {t.schedule!r} (choose from {', '.join(SCHEDULES)})"),
        (0 <= t.warmup_epochs <= MAX_EPOCHS, f"warm-up epochs must be in [0, {MAX_EPOCHS}]"),
        (t.warmup_epochs == 0 or t.schedule != "none", "warm-up needs a schedule: cosine or onecycle"),
        (t.warmup_epochs <= t.epochs, "warm-up epochs must be at most the number of epochs"),
        (0.0 <= t.label_smoothing < 1.0, "label smoothing must be in [0, 1)"),
        (0.0 <= t.ema_decay < 1.0, "EMA decay must be in [0, 1)"),
        (
            min(t.aug_shift, t.aug_rotate, t.aug_scale, t.aug_shear, t.aug_elastic_alpha) >= 0,
            "augmentation amounts must be >= 0",
        ),
        (t.aug_scale < 1.0, "augmentation scale must be < 1"),
        (t.aug_shift <= MAX_PIXELS, f"augmentation shift must be <= {MAX_PIXELS:g} pixels"),
        (max(t.aug_rotate, t.aug_shear) <= MAX_DEGREES, f"augmentation rotation and shear must be <= {MAX_DEGREES:g}"),
        (t.aug_elastic_alpha <= MAX_REAL, f"elastic alpha must be <= {MAX_REAL:g}"),
        (0 < t.aug_elastic_sigma <= MAX_PIXELS, f"elastic sigma must be > 0 and <= {MAX_PIXELS:g} pixels"),
        (
            t.aug_elastic_alpha > 0 or t.aug_elastic_sigma == TrainConfig.aug_elastic_sigma,
            "elastic sigma shapes elastic distortions: it needs an elastic alpha > 0 (it would be ignored)",
        ),
        (0 <= t.aug_clean_epochs <= t.epochs, "clean epochs must be in [0, epochs]"),
        (t.aug_clean_epochs == 0 or t.augments(), "clean epochs need augmentation to switch off"),
        (t.device in DEVICES, f"unknown device {t.device!r} (choose from {', '.join(DEVICES)})"),
        (t.precision in PRECISIONS, f"unknown precision {t.precision!r} (choose from {', '.join(PRECISIONS)})"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)
