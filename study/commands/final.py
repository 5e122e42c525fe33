"""`mnist-study final`: retrain a study's best configuration on all 60,000 training images (study.runner.final)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from study.commands.args import add_study_args, bounded_int, fraction_float, nonneg_int, positive_int
from study.defaults import DEFAULT_JOBS, FINAL_OUT, FINAL_PROGRESS_LINES, FINAL_SEEDS, MAX_JOBS
from study.redaction import redact_argv

EXAMPLE = """examples:
  mnist-study final --study-name accuracy --storage sqlite:///studies/accuracy.db \\
      --seeds 0,1,2 --epochs 60 --jobs 3 --device cpu --out models/    # the shipped model
  mnist-study final --study-name accuracy --storage sqlite:///studies/accuracy.db \\
      --seeds 0,1,2 --epochs 60 --checkpoint-dir runs/final-ckpt/ --out models/    # again: resumes
  mnist-study final --study-name mine --storage sqlite:///mine.db --seeds 0 --out /tmp/m/ --json
  mnist-study final --study-name mine --storage sqlite:///mine.db --trial 7 --seeds 0 --out /tmp/m/"""

MAX_SEEDS = 1000


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not seeds or min(seeds) < 0 or max(seeds) >= 2**32 or len(set(seeds)) != len(seeds) or len(seeds) > MAX_SEEDS:
        raise argparse.ArgumentTypeError("give distinct seeds from 0 to 4294967295, e.g. 0,1,2")
    return seeds


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "final",
        help="retrain a study's best config on all 60,000 training images, test it, save + export ONNX",
        description="Retrain the best trial's configuration (chosen on validation) on train + validation "
        "for each seed, evaluate each once on the test set, save the first seed's model "
        "(safetensors + JSON) and export it to ONNX with the normalisation inside the graph. "
        "Per-epoch progress goes to stderr, the steps and the summary to stdout (with --json, stdout holds "
        "only the JSON object and everything else goes to stderr).",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_study_args(p)
    default_seeds = ",".join(map(str, FINAL_SEEDS))
    p.add_argument(
        "--seeds", type=_seeds, default=list(FINAL_SEEDS), help=f"comma-separated seeds (default {default_seeds})"
    )
    p.add_argument("--out", default=FINAL_OUT, help=f"output folder (default {FINAL_OUT}/)")
    p.add_argument("--name", help="file stem of the saved model (default: the study name)")
    p.add_argument(
        "--trial",
        type=nonneg_int,
        metavar="N",
        help="retrain complete trial N instead of the best one (e.g. the best mean over pilot seeds)",
    )
    p.add_argument("--epochs", type=positive_int, help="override the trial's epochs (e.g. to fit a time budget)")
    p.add_argument(
        "--train-size",
        type=positive_int,
        help="stratified subsample of the training images (official or CSV rows; quick checks only)",
    )
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override the trial's device")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], help="override the trial's precision")
    p.add_argument(
        "--ema-decay",
        type=fraction_float,
        help="override the trial's weight averaging: EMA decay per step, in [0, 1) (0 = off; e.g. 0.999)",
    )
    p.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        help="checkpoint each seed to DIR/seed<N>.ckpt; the same command again resumes unfinished seeds "
        "and does not retrain finished ones",
    )
    p.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=1,
        help="epochs between checkpoints with --checkpoint-dir (default 1; always also at the end)",
    )
    p.add_argument(
        "--log-every",
        type=nonneg_int,
        help=f"progress line ('Epoch, Loss, Acc') every N epochs on stderr (default: {FINAL_PROGRESS_LINES} "
        "lines per seed; 0 = none)",
    )
    p.add_argument(
        "--jobs",
        type=bounded_int(MAX_JOBS),
        default=DEFAULT_JOBS,
        help=f"train this many seeds at once, in separate one-thread processes (default {DEFAULT_JOBS}: "
        "in this process)",
    )
    p.add_argument("--json", action="store_true", help="print only one JSON object on stdout (progress on stderr)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from study.runner import final_retrain

    def echo(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    result = final_retrain(
        study_name=args.study_name,
        storage=args.storage,
        seeds=args.seeds,
        out=args.out,
        name=args.name,
        epochs=args.epochs,
        train_size=args.train_size,
        device=args.device,
        precision=args.precision,
        ema_decay=args.ema_decay,
        jobs=args.jobs,
        log_every=args.log_every,
        checkpoint_dir=args.checkpoint_dir,
        checkpoint_every=args.checkpoint_every,
        command=shlex.join(["mnist-study", *redact_argv(sys.argv[1:])]),  # model files get shared: no password
        trial=args.trial,
        echo=echo,
    )
    summary = result.summary()
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"test accuracy {summary['test_accuracy_mean']:.4f} +- {summary['test_accuracy_std']:.4f} over "
            f"{len(result.runs)} seed(s); ONNX matches PyTorch (max |logit diff| "
            f"{summary['onnx_max_abs_logit_diff']:.1e}); saved {', '.join(summary['saved'])}"
        )
    return 0
