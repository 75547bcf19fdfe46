"""The headline command, measured to the end: `hpsearch run --study mnist-reg --trials 200`.

Runs the command with its defaults in a fresh folder (SQLite, the embedded default), from
process start to exit, then `hpsearch report`, which evaluates the best trial on the test split
once and records the result on the study. Prints one Markdown block: wall time, trials by state,
epochs run, the pruned share, the best validation accuracy and the test accuracy that the report
recorded for that trial, and seconds per epoch by batch size.

    HPSEARCH_DATA_DIR=../shared/data python benchmarks/headline.py [--trials 200]
        [--study mnist-reg] [--dir FOLDER] [-- extra run options]
    python benchmarks/headline.py --summarize FOLDER --wall SECONDS   # a run made by hand there

The search selects by validation accuracy only; the test split is read once, by the report,
after the run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import optuna

from hpsearch import _keys


def run(study: str, trials: int, folder: Path, extra: list[str]) -> float:
    """`hpsearch run` with its defaults in `folder`; its wall time from start to exit."""
    cmd = [sys.executable, "-m", "hpsearch", "run", "--study", study, "--trials", str(trials)]
    started = time.perf_counter()
    subprocess.run([*cmd, *extra], cwd=folder, check=True)
    return time.perf_counter() - started


def report(study: str, folder: Path) -> None:
    """`hpsearch report`: it records the best trial's test accuracy on the study."""
    cmd = [sys.executable, "-m", "hpsearch", "report", "--study", study]
    subprocess.run(cmd, cwd=folder, check=True, stdout=subprocess.DEVNULL)


def summarize(folder: Path, wall: float) -> str:
    """The Markdown block for the study stored in `folder`/hpsearch.db."""
    url = f"sqlite:///{folder / 'hpsearch.db'}"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    (name,) = optuna.get_all_study_names(url)
    study = optuna.load_study(study_name=name, storage=url)
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    finished = states["COMPLETE"] + states["PRUNED"]
    epochs = [len(t.user_attrs.get(_keys.HISTORY, [])) for t in trials]
    best = study.best_trial
    test = study.user_attrs.get(f"{_keys.TEST_RESULTS}:{best.number}")
    test_acc = f"{test['metrics']['accuracy']:.4f}" if test else "not evaluated"
    lines = [
        f"| wall time (start to exit) | {wall / 60:.1f} min |",
        f"| trials | {len(trials)}: {states['COMPLETE']} complete, {states['PRUNED']} pruned, "
        f"{states['FAIL']} failed |",
        f"| pruned share of finished | {states['PRUNED'] / max(finished, 1):.0%} |",
        f"| epochs run | {sum(epochs)} ({sum(epochs) / max(len(trials), 1):.1f} per trial; "
        f"complete {_mean(trials, epochs, 'COMPLETE')}, "
        f"pruned {_mean(trials, epochs, 'PRUNED')}) |",
        f"| best trial | #{best.number}: {_params(best.params)} |",
        f"| best validation accuracy | {best.value:.4f} |",
        f"| its test accuracy (`hpsearch report`) | {test_acc} |",
    ]
    table = ["| | |", "|---|---|", *lines, "", *_per_batch(trials)]
    return "\n".join(["```markdown", f"### Headline: study {name}", "", *table, "```"])


def _mean(trials: list[optuna.trial.FrozenTrial], epochs: list[int], state: str) -> str:
    """Mean epochs of the trials in one state."""
    picked = [e for t, e in zip(trials, epochs, strict=True) if t.state.name == state]
    return f"{statistics.fmean(picked):.1f}" if picked else "-"


def _params(params: dict[str, object]) -> str:
    """A trial's parameters, compactly."""
    shown = (f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in params.items())
    return ", ".join(shown)


def _per_batch(trials: list[optuna.trial.FrozenTrial]) -> list[str]:
    """Seconds per epoch (one worker's) and the trials' share of epochs, by batch size."""
    seconds: dict[object, float] = defaultdict(float)
    epochs: Counter[object] = Counter()
    for trial in trials:
        count = len(trial.user_attrs.get(_keys.HISTORY, []))
        if count and trial.user_attrs.get(_keys.SECONDS):
            seconds[trial.params.get("batch_size")] += trial.user_attrs[_keys.SECONDS]
            epochs[trial.params.get("batch_size")] += count
    total = sum(epochs.values()) or 1
    rows = ["| batch size | epochs | share | seconds per epoch (one worker) |", "|---|---|---|---|"]
    for batch in sorted(epochs, key=lambda b: (not isinstance(b, int), str(b).zfill(8))):
        per = seconds[batch] / epochs[batch]
        rows.append(f"| {batch} | {epochs[batch]} | {epochs[batch] / total:.0%} | {per:.2f} |")
    return rows


def main() -> None:
    """Run (or only summarize) the headline and print its Markdown block."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="mnist-reg")
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=None, help="run folder (default: a temp one)")
    parser.add_argument("--summarize", type=Path, default=None, help="only summarize this folder")
    parser.add_argument("--wall", type=float, default=None, help="its wall time, with --summarize")
    parser.add_argument("extra", nargs="*", help="extra `hpsearch run` options, after --")
    args = parser.parse_args()
    if args.summarize is not None:
        if args.wall is None:
            parser.error("--summarize needs --wall SECONDS (the run's start to exit)")
        print(summarize(args.summarize, args.wall))
        return
    folder = args.dir or Path(tempfile.mkdtemp(prefix="headline-"))
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HPSEARCH_DATA_DIR", str(Path("../shared/data").resolve()))
    wall = run(args.study, args.trials, folder, args.extra)
    report(args.study, folder)
    print(summarize(folder, wall))


if __name__ == "__main__":
    main()
