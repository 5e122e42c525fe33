"""Checks across commands that keep a study and its inputs from being destroyed or silently mixed.

Two promises: no command writes an output onto its own storage or an input file (however the
path is spelled: symlink, hard link, `..`, relative path), and a study is only ever extended
with trials trained alike, on the same data (recorded by content hash, not by file name).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import optuna

from mnist_fc.config import DataConfig, RunConfig
from mnist_fc.data import embedded_dir, file_sha256
from mnist_fc.errors import ConfigError
from mnist_fc.files import with_suffix
from study.errors import UserError
from study.storage import sqlite_path

SQLITE_SIDECARS = ("", "-wal", "-shm", "-journal")  # SQLite keeps a study in these files together


def _same_file(a: Path, b: Path) -> bool:
    """True when both name one file: same inode (hard links, symlinks) or the same resolved path."""
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:
        pass  # one does not exist (yet): compare where the names lead
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return False


def protected_files(*, storage: str | None = None, inputs: Iterable[str | Path | None] = ()) -> list[Path]:
    """The files a command reads and must never overwrite: a SQLite storage with its sidecars, and inputs."""
    files: list[Path] = []
    db = sqlite_path(storage) if storage else None
    if db is not None:
        files += [Path(f"{db}{suffix}") for suffix in SQLITE_SIDECARS]
    files += [Path(p) for p in inputs if p]
    return files


def check_outputs(
    outputs: Iterable[str | Path], *, storage: str | None = None, inputs: Iterable[str | Path | None] = ()
) -> None:
    """One-line UserError if any output file is the storage (or its journal) or an input file.

    Call before anything is written: `export --storage sqlite:///study.csv --out study.csv`
    would otherwise replace the database with its own export.
    """
    inputs = [Path(i) for i in inputs if i]
    protected = protected_files(storage=storage, inputs=inputs)
    for out in map(Path, outputs):
        for p in protected:
            if _same_file(out, p):
                what = "an input file" if p in inputs else "the study storage"
                raise UserError(f"output {out} is {what} ({p}); write the output somewhere else (nothing was written)")


def check_output_dir(
    folder: str | Path,
    names: Iterable[str],
    *,
    suffixes: Iterable[str] = (),
    storage: str | None = None,
    inputs: Iterable[str | Path | None] = (),
) -> None:
    """Like check_outputs for a command writing `names` (and any file ending in `suffixes`) into a folder.

    The folder itself may hold the storage (`report --out .` next to studies.db is fine); only a
    file the command would overwrite, or the folder being the storage file, is refused.
    """
    folder = Path(folder)
    protected = protected_files(storage=storage, inputs=inputs)
    for p in protected:
        if _same_file(folder, p):
            raise UserError(f"output folder {folder} is the file {p}; give a folder (nothing was written)")
    check_outputs([folder / n for n in names], storage=storage, inputs=inputs)
    suffixes = tuple(suffixes)
    for p in protected:
        if not p.exists() or not suffixes:
            continue
        target = folder / p.name
        if p.name.endswith(suffixes) and _same_file(target, p):
            raise UserError(
                f"output folder {folder} holds {p.name}, which this command would overwrite with a figure or "
                "page; use another folder (nothing was written)"
            )


def check_writable_dir(folder: str | Path, *, what: str) -> None:
    """One-line UserError unless files can be created in `folder` (made if missing, as the command will).

    Called before training: an --out or --checkpoint-dir that cannot be written (a file, a read-only or
    virtual file system) must fail now, not after the hours its files were waiting for. Leaves no trace:
    the folders it had to make for the test are removed again.
    """
    folder = Path(folder)
    missing = [p for p in (folder, *folder.parents) if not p.exists() and not p.is_symlink()]
    try:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise UserError(f"{what} {folder} is a file, not a folder (nothing was written)") from None
        except OSError as e:
            raise UserError(f"cannot create {what} {folder}: {e.strerror or e}") from None
        try:
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".mnist-study-write-check-"):
                pass
        except OSError as e:
            raise UserError(f"cannot write in {what} {folder}: {e.strerror or e}") from None
    finally:
        for p in missing:  # deepest first
            try:
                p.rmdir()
            except OSError:
                pass


REPORT_FILES = ("index.html", "claims.csv", "claims.md")  # what `report` writes besides figures
MODEL_SUFFIXES = (".safetensors", ".json", ".onnx")  # what `final` writes for one model stem


def check_model_outputs(stem: str | Path, *, storage: str | None, data: DataConfig) -> None:
    """`final`'s three model files must be neither the storage nor its training or test CSV."""
    stem = Path(stem)
    check_outputs(
        [with_suffix(stem, s) for s in MODEL_SUFFIXES], storage=storage, inputs=[data.train_csv, data.test_csv]
    )


# --- the resume guard -------------------------------------------------------------------------------


def data_identity(cfg: RunConfig, *, seed: int) -> dict[str, Any]:
    """What makes two runs train on the same images: the content (SHA-256) of the data files and, when
    subsampling, the seed of the subsample. File names do not count: a CSV can change under its name."""
    d = cfg.data
    if d.source == "csv":
        ident = {"train_sha256": file_sha256(d.train_csv or ""), "test_sha256": file_sha256(d.test_csv or "")}
    else:
        sums = embedded_dir() / "SHA256SUMS"
        ident = {"dataset": "mnist-embedded", "dataset_sha256": file_sha256(sums)}
    ident["subset_seed"] = seed if d.train_size is not None else None
    return ident


def _derived_settings(study: optuna.Study) -> dict[str, Any] | None:
    """Settings of a study made before they were recorded, read from its stored trials' configs.

    Only the keys the configs determine: epochs (exact for the article space; for spaces that
    sample epochs, the largest stored, a lower bound checked as such), eval_every, the validation
    size, the data source, and for the embedded data the training size and subsample seed.
    """
    configs = [t.user_attrs["config"] for t in study.get_trials(deepcopy=False) if t.user_attrs.get("config")]
    if not configs:
        return None
    try:
        first = RunConfig.from_dict(configs[0])
        epochs = [int(c.get("train", {}).get("epochs", 0)) for c in configs]
    except (ConfigError, AttributeError, TypeError, ValueError) as e:
        raise UserError(f"study {study.study_name!r}: a trial's stored config is damaged ({e})") from None
    derived: dict[str, Any] = {
        "eval_every": first.train.eval_every,
        "validation_size": first.data.validation_size,
        "data": "embedded" if first.data.source == "embedded" else "csv",
    }
    if study.user_attrs.get("space", "article") == "article":
        derived["epochs"] = first.train.epochs
    else:
        derived["epochs_at_least"] = max(epochs)
    if first.data.source == "embedded":
        n = first.data.train_size
        derived["train_size"] = 50_000 if n is None or n >= 50_000 else n
        derived["subset_seed"] = first.train.seed if n is not None else None
    else:
        derived["train_csv_path"] = first.data.train_csv
    return derived


# Settings named as the user sets them: the training subsample is drawn with the run's --seed.
_SETTING_NAMES = {"subset_seed": "--seed (it draws the --train-size subsample)"}


def _differences(stored: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    diff = []
    for key, value in settings.items():
        if key in stored and stored[key] != value:
            shown = _SETTING_NAMES.get(key, key)
            diff.append(f"{shown} {stored[key]!r} (this run: {value!r})")
    if "epochs_at_least" in stored and settings.get("epochs", 0) < stored["epochs_at_least"]:
        diff.append(f"epochs >= {stored['epochs_at_least']} (this run: {settings.get('epochs')!r})")
    return diff


def check_study_settings(
    study: optuna.Study, settings: dict[str, Any], *, cfg: RunConfig | None = None, seed: int = 0
) -> None:
    """Every worker and every resume of a study must train trials alike, on the same data.

    The first run records `settings` (epochs, eval_every, train size, data identity). A study
    made before settings were recorded gets them derived from its trials' configs, so a resume
    with other settings is refused there too; keys that cannot be derived (an old CSV study's
    content hash) are recorded from this run once the derivable ones agree. With `cfg`, the
    data's identity (data_identity) is part of the settings.
    """
    train_csv = None
    if cfg is not None:  # the data's identity joins the settings
        settings = {**settings, **data_identity(cfg, seed=seed)}
        train_csv = cfg.data.train_csv
    stored = study.user_attrs.get("settings")
    if stored is not None and not isinstance(stored, dict):
        raise UserError(
            f"study {study.study_name!r}: its stored settings are damaged (not an object); restore the database "
            "from a backup, or use a new --study-name"
        )
    recorded = stored is not None
    if stored is None or not set(settings) <= set(stored):
        # Older study: fill what its trials' configs say (a recorded value always wins).
        stored = {**(_derived_settings(study) or {}), **(stored or {})}
        if not stored:  # a new study (or only trials without configs): this run defines it
            study.set_user_attr("settings", settings)
            return
    diff = _differences(stored, settings)
    old_path = stored.get("train_csv_path")
    if (
        old_path
        and train_csv
        and "train_sha256" not in stored
        and Path(old_path).resolve() != Path(train_csv).resolve()
    ):
        diff.append(f"training CSV {old_path!r} (this run: {train_csv!r})")
    if diff:
        raise UserError(
            f"study {study.study_name!r} was run with {', '.join(diff)}; use the same settings and data, "
            "or a new --study-name"
        )
    if not recorded or not set(settings) <= set(stored):
        study.set_user_attr("settings", {**{k: v for k, v in stored.items() if k in settings}, **settings})
