"""`hpsearch status`: what every worker is doing, from storage alone."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from hpsearch import _keys
from hpsearch.reporting._summaries import (
    NO_ERROR,
    anytime,
    anytime_text,
    epochs_run,
    epochs_text,
    format_duration,
    recorded_max_epochs,
)

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

FAILURES_SHOWN = 3


def study_status(study: optuna.Study, metric: str, grace_period: float) -> dict[str, Any]:
    """The study at a glance, as one JSON-ready dict."""
    from hpsearch.storages._rdb import heartbeat_ages

    trials = study.get_trials(deepcopy=False)
    states = [t.state.name for t in trials]
    finished = states.count("COMPLETE") + states.count("PRUNED")
    target = int(study.user_attrs.get(_keys.TARGET_TRIALS, 0))
    running = [t for t in trials if t.state.name == "RUNNING"]
    ages = heartbeat_ages(study._storage, [t._trial_id for t in running])
    per_hour = _per_hour(trials)
    left = max(0, target - finished)
    return {
        "study": study.study_name,
        "metric": metric,
        "direction": study.direction.name.lower(),
        "finished": finished,
        "total": target,
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "failed": states.count("FAIL"),
        "best": study.best_value if "COMPLETE" in states else None,
        "trials_per_hour": per_hour,
        "seconds_left": round(left / per_hour * 3600) if per_hour and left else None,
        "grace_period": grace_period,
        "running": [_running(t, ages.get(t._trial_id), grace_period) for t in running],
        "failures": [_failure(t) for t in trials if t.state.name == "FAIL"][-FAILURES_SHOWN:],
        **_economy(study, trials, target),
    }


def _economy(study: optuna.Study, trials: list[FrozenTrial], target: int) -> dict[str, Any]:
    """Epochs spent against full trials, and the best over study time: whether to go on."""
    max_epochs = recorded_max_epochs(study.user_attrs)
    curve = anytime(trials, study.direction.name == "MAXIMIZE")
    return {
        "epochs_run": epochs_run(trials),
        "max_epochs": max_epochs,
        "epochs_full": target * max_epochs if target and max_epochs else None,
        "best_trial": curve.best_trial if curve else None,
        "best_found_at_s": curve.found_at if curve else None,
        "since_best_s": curve.since if curve else None,
        "trials_since_best": curve.trials_since if curve else None,
        "anytime": [[seconds, value] for seconds, value, _ in curve.points] if curve else [],
    }


def _per_hour(trials: list[FrozenTrial]) -> float:
    """Finished trials per hour over the last hour (over less when the study is younger)."""
    now = datetime.now()  # Optuna stores naive local times
    since = now - timedelta(hours=1)
    done = [t for t in trials if t.datetime_complete and t.datetime_complete >= since]
    done = [t for t in done if t.state.name in ("COMPLETE", "PRUNED")]
    starts = [t.datetime_start for t in trials if t.datetime_start]
    if not done or not starts:
        return 0.0
    span = (now - max(since, min(starts))).total_seconds()
    return round(len(done) / max(span, 1.0) * 3600, 1)


def _running(trial: FrozenTrial, age: float | None, grace_period: float) -> dict[str, Any]:
    """One running trial: who runs it, how far it got, and whether its worker is alive."""
    attrs = trial.user_attrs
    steps = trial.intermediate_values
    return {
        "number": trial.number,
        "host": attrs.get(_keys.HOST),
        "worker": attrs.get(_keys.WORKER),
        "device": attrs.get(_keys.DEVICE),
        "epoch": max(steps) if steps else 0,
        "last_value": steps[max(steps)] if steps else None,
        "heartbeat_age": None if age is None else round(age, 1),
        "stale": age is not None and age > grace_period,
    }


def _failure(trial: FrozenTrial) -> dict[str, Any]:
    """A failed trial and its error."""
    return {"number": trial.number, "error": trial.user_attrs.get(_keys.ERROR, NO_ERROR)}


def status_lines(status: dict[str, Any]) -> list[str]:
    """The status as text for a terminal."""
    best = "-" if status["best"] is None else f"{status['best']:.4f}"
    left = status["seconds_left"]
    lines = [
        f"study {status['study']}: {status['finished']}/{status['total']} finished "
        f"({status['complete']} complete, {status['pruned']} pruned, {status['failed']} failed); "
        f"best {status['metric']} {best}",
        f"{status['trials_per_hour']:g} trials/hour over the last hour; "
        + (f"about {format_duration(left)} left" if left else "no estimate of the time left"),
        epochs_text(status["epochs_run"], status["total"], status["max_epochs"]),
    ]
    if status["best_trial"] is not None:
        lines.append(
            anytime_text(
                status["anytime"][-1][1],
                status["best_found_at_s"],
                status["best_trial"],
                status["since_best_s"],
                status["trials_since_best"],
            )
        )
    lines.append(f"running: {len(status['running'])}" if status["running"] else "running: none")
    for trial in status["running"]:
        value = "-" if trial["last_value"] is None else f"{trial['last_value']:.4f}"
        age = trial["heartbeat_age"]
        beat = "no heartbeat" if age is None else f"heartbeat {age:g} s ago"
        grace = status["grace_period"]
        stale = f" STALE (silent over the {grace:g} s grace period)" if trial["stale"] else ""
        lines.append(
            f"  #{trial['number']} {trial['host']} {trial['worker']} on {trial['device']}: "
            f"epoch {trial['epoch']}, {status['metric']} {value}, {beat}{stale}"
        )
    for failure in status["failures"]:
        lines.append(f"failed #{failure['number']}: {failure['error']}")
    return lines
