"""The study runner: what `mnist-study run` and `final` do, as typed, keyword-only Python functions.

The commands in `study/commands/` only parse arguments, call these and print.
"""

from study.runner.final import FinalResult, final_config, final_retrain
from study.runner.loops import optimize_batched, optimize_until_complete
from study.runner.optimize import (
    RunSummary,
    StudyPlan,
    base_config,
    check_config,
    check_device,
    check_plan,
    check_settings,
    open_study,
    run_jobs,
    run_study,
    threads_per_job,
)
from study.runner.recovery import fail_dead_local_trials, fail_stale_trials, requeue_interrupted

__all__ = [
    "FinalResult",
    "RunSummary",
    "StudyPlan",
    "base_config",
    "check_config",
    "check_device",
    "check_plan",
    "check_settings",
    "fail_dead_local_trials",
    "fail_stale_trials",
    "final_config",
    "final_retrain",
    "open_study",
    "optimize_batched",
    "optimize_until_complete",
    "requeue_interrupted",
    "run_jobs",
    "run_study",
    "threads_per_job",
]
