"""Replay a stored narrowing study's rounds under the current ranking and the old one.

    python benchmarks/narrowing_replay.py --study studies/flowers-narrow.toml \\
        --storage sqlite:///flowers3.db [--rounds 4]

No training: both rankings run the same NarrowingSampler over the finished trials in storage
and print each round's ranges and kept choices, then the trials each ranking counts as the best.
The baseline is the ranking before the change: every completed trial above every pruned one.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

import hpsearch.samplers._narrowing as narrowing
from hpsearch.reporting._summaries import format_range
from hpsearch.samplers._ranking import completed_best_first
from hpsearch.spec import load_spec

Rank = Callable[[Sequence[FrozenTrial], bool], tuple[list[FrozenTrial], int]]


def completed_first(trials: Sequence[FrozenTrial], maximize: bool) -> tuple[list[FrozenTrial], int]:
    """The old ranking: completed trials best first, then pruned ones by their last report."""
    sign = -1.0 if maximize else 1.0
    complete = completed_best_first(trials, maximize)

    def last(t: FrozenTrial) -> float:
        return (
            float(t.intermediate_values[max(t.intermediate_values)])
            if t.intermediate_values
            else 0.0
        )

    pruned = sorted(
        (t for t in trials if t.state == TrialState.PRUNED),
        key=lambda t: (not t.intermediate_values, sign * last(t), t.number),
    )
    return complete + pruned, len(complete)


def show(label: str, rank: Rank, study: optuna.Study, args: argparse.Namespace) -> None:
    """Each round's ranges under one ranking, and the trials it keeps as the best."""
    spec = load_spec(args.study)
    per_round = study.user_attrs.get("narrowing_trials_per_round", spec.sampler.trials_per_round)
    narrowing.rank = rank  # next_round looks the ranking up at call time
    sampler = narrowing.NarrowingSampler(spec.search, spec.sampler, per_round, True)
    trials = study.get_trials(deepcopy=False)
    for r in range(1, args.rounds + 1):
        ranges = sampler.round_ranges(study, r).ranges
        cells = [f"{k} {format_range(v)}" for k, v in ranges.items()]
        ranked, _ = rank([t for t in trials if t.number < r * per_round], True)
        n_keep = max(spec.sampler.min_keep, math.ceil(spec.sampler.keep * len(ranked)))
        best = ", ".join(f"#{t.number}" for t in ranked[:n_keep])
        print(f"{label} round {r}: {'; '.join(cells)}\n    best: {best}")


def main() -> None:
    """Both rankings, one after the other, over the same stored trials."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--study", required=True)
    parser.add_argument("--storage", required=True)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = load_spec(args.study).name
    study = optuna.load_study(study_name=name, storage=args.storage)
    current = narrowing.rank
    show("old (completed first)", completed_first, study, args)
    show("new (one ranking)", current, study, args)


if __name__ == "__main__":
    main()
