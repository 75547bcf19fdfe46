"""What docker/test-stack.sh asks of the study in the stack's PostgreSQL, from the host.

Usage (HPSEARCH_STORAGE holds the URL, so the password is in no command line):
  stack_check.py counts STUDY                 "finished running failed waiting" on one line
  stack_check.py running STUDY HOST           trial numbers RUNNING on a worker of that host name
  stack_check.py ran-since STUDY HOST EPOCH   trials a worker of that host started after EPOCH
  stack_check.py verify STUDY TOTAL KILLED    the end state; exits 1 with the reason if wrong
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

import optuna
from optuna.storages import RetryFailedTrialCallback
from optuna.trial import FrozenTrial, TrialState

from hpsearch import _keys


def trials(name: str) -> list[FrozenTrial]:
    """The study's trials, read fresh."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=os.environ["HPSEARCH_STORAGE"])
    return study.get_trials(deepcopy=False)


def on_host(trial: FrozenTrial, host: str) -> bool:
    """Whether a worker in the container with this host name ran the trial."""
    return str(trial.user_attrs.get(_keys.HOST, "")).split(":")[0] == host


def counts(name: str) -> str:
    """Finished (complete or pruned), running, failed and waiting trials."""
    states = [t.state for t in trials(name)]
    finished = sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states)
    running, failed = states.count(TrialState.RUNNING), states.count(TrialState.FAIL)
    return f"{finished} {running} {failed} {states.count(TrialState.WAITING)}"


def verify(name: str, total: int, killed: list[int]) -> str | None:
    """Why the end state is wrong, or None: the total exact, nothing stranded, kills retried."""
    every = trials(name)
    finished = [t for t in every if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    if len(finished) != total:
        return f"{len(finished)} finished trials, expected the total {total}"
    stranded = [t.number for t in every if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    if stranded:
        return f"trials left RUNNING or WAITING: {stranded}"
    retried = {RetryFailedTrialCallback.retried_trial_number(t) for t in every}
    for number in killed:
        if every[number].state != TrialState.FAIL:
            return f"killed trial #{number} is {every[number].state.name}, expected FAIL"
        if number not in retried:
            return f"killed trial #{number} was not retried"
    return None


def main(argv: list[str]) -> int:
    """Run one of the commands in the module docstring."""
    command, name, *rest = argv
    if command == "counts":
        print(counts(name))
    elif command == "running":
        numbers = [t.number for t in trials(name) if t.state == TrialState.RUNNING]
        print(" ".join(str(n) for n in numbers if on_host(trials(name)[n], rest[0])))
    elif command == "ran-since":
        since = datetime.fromtimestamp(float(rest[1]), UTC).replace(tzinfo=None)
        started = [
            t.number
            for t in trials(name)
            if on_host(t, rest[0]) and t.datetime_start and t.datetime_start > since
        ]
        print(" ".join(map(str, started)))
    elif command == "verify":
        wrong = verify(name, int(rest[0]), [int(n) for n in rest[1:]])
        if wrong:
            print(f"FAIL: {wrong}")
            return 1
        print("ok")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
