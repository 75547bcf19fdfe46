"""The report's figures, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch import _keys

if TYPE_CHECKING:
    import optuna
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from optuna.trial import FrozenTrial

    from hpsearch.reporting._summaries import Anytime

_HUGE = 1e100  # far beyond any real hyperparameter, far below where matplotlib overflows


def log_params(trials: list[FrozenTrial]) -> set[str]:
    """Parameters searched on a log scale, as their distributions say (any name, any model)."""
    return {
        name
        for trial in trials
        for name, dist in trial.distributions.items()
        if getattr(dist, "log", False)
    }


def _figure(width: float = 6.4, height: float = 4.0) -> Figure:
    """A new Agg figure that never touches a display."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def save(fig: Figure, path: Path) -> Path:
    """Write a PNG and return its path.

    A name in a script the font lacks (Hangul, say) is drawn as boxes; matplotlib's warning per
    missing glyph would only bury the command's output.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning
        )
        fig.savefig(path, format="png")
    return path


def loss_curves(ranked: list[FrozenTrial], path: Path, metric: str = "valid_loss") -> Path:
    """Per epoch for the best five trials: validation loss (or the metric), train loss dashed.

    Any objective's history works: the built-in models report both losses; a user's function
    may report only its metric, which is drawn instead.
    """
    fig = _figure()
    ax = fig.add_subplot()
    histories = [(t, t.user_attrs.get(_keys.HISTORY, [])) for t in ranked[:5]]
    solid = "valid_loss" if all("valid_loss" in e for _, h in histories for e in h) else metric
    drawn = [float(e[k]) for _, h in histories for e in h for k in (solid, "train_loss") if k in e]
    power = _power(drawn)
    for i, (trial, history) in enumerate(histories):
        epochs = [h["epoch"] for h in history]
        color = f"C{i}"
        train = [h["train_loss"] for h in history if "train_loss" in h]
        if len(train) == len(epochs):
            ax.plot(epochs, _in_units(train, power), color=color, linestyle="--")
        ax.plot(
            epochs,
            _in_units([h.get(solid, float("nan")) for h in history], power),
            color=color,
            label=f"#{trial.number} ({trial.value:.4g})"
            if power
            else f"#{trial.number} ({trial.value:.4f})",
        )
    what = "loss (dashed: train, solid: validation)" if solid == "valid_loss" else solid
    what = _unit(what, power)
    title = "Loss" if solid == "valid_loss" else solid
    ax.set(xlabel="epoch", ylabel=what, title=f"{title} per epoch, best five trials")
    ax.legend(fontsize=8)
    return save(fig, path)


def confusion(matrix: list[list[int]], classes: list[str], path: Path) -> Path:
    """The best trial's test-set confusion matrix as a heatmap with class names."""
    fig = _figure(5.5, 5.0)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted", ylabel="true", title="Test-set confusion matrix, best trial")
    top = max(max(row) for row in matrix) or 1
    for r, row in enumerate(matrix):
        for c, count in enumerate(row):
            ax.text(
                c,
                r,
                str(count),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if count > top / 2 else "black",
            )
    fig.colorbar(image, ax=ax, shrink=0.8)
    return save(fig, path)


def best_so_far(trials: list[FrozenTrial], maximize: bool, path: Path) -> Path:
    """Best value so far against trial number; pruned and failed trials marked."""
    fig = _figure()
    ax = fig.add_subplot()
    best: float | None = None
    xs, ys = [], []
    for trial in sorted(trials, key=lambda t: t.number):
        value = trial.value if trial.state.name == "COMPLETE" else None
        if value is not None and (best is None or (value > best if maximize else value < best)):
            best = value
        if best is not None:
            xs.append(trial.number)
            ys.append(best)
    done = [t for t in trials if t.state.name == "COMPLETE"]
    values = [float(t.value or 0.0) for t in done]
    power = _power(values)
    ax.step(xs, _in_units(ys, power), where="post", label="best so far")
    ax.scatter(
        [t.number for t in done], _in_units(values, power), s=10, alpha=0.5, label="complete"
    )
    worst = worst_value(_in_units(values, power), maximize)
    for state, marker in (("PRUNED", "x"), ("FAIL", "v")):
        marked = [t.number for t in trials if t.state.name == state]
        if marked:
            ax.scatter(marked, [worst] * len(marked), marker=marker, label=state.lower())
    ax.set(xlabel="trial", ylabel=_unit("validation metric", power), title="Best value so far")
    ax.legend(fontsize=8)
    return save(fig, path)


def best_over_time(trials: list[FrozenTrial], curve: Anytime, maximize: bool, path: Path) -> Path:
    """Best value so far against minutes of study time: when the search stopped paying off.

    Each trial sits at the minute it finished; pruned and failed ones at the worst value.
    """
    fig = _figure()
    ax = fig.add_subplot()
    done = [t for t in trials if t.state.name == "COMPLETE" and t.datetime_complete]
    values = [float(t.value or 0.0) for t in done]
    power = _power(values + [value for _, value, _ in curve.points])
    xs = [seconds / 60 for seconds, _, _ in curve.points]
    ys = _in_units([value for _, value, _ in curve.points], power)
    ax.step([*xs, curve.span / 60], [*ys, ys[-1]], where="post", label="best so far")
    minutes = [_minutes(curve, t) for t in done]
    ax.scatter(minutes, _in_units(values, power), s=10, alpha=0.5, label="complete")
    worst = worst_value(_in_units(values, power), maximize)
    for state, marker in (("PRUNED", "x"), ("FAIL", "v")):
        marked = [
            _minutes(curve, t) for t in trials if t.state.name == state and t.datetime_complete
        ]
        if marked:
            ax.scatter(marked, [worst] * len(marked), marker=marker, label=state.lower())
    ax.annotate(f"#{curve.best_trial}", (xs[-1], ys[-1]), textcoords="offset points", xytext=(4, 4))
    ax.set_xlim(left=0)
    ax.set(
        xlabel="minutes since the first trial started",
        ylabel=_unit("validation metric", power),
        title="Best value over study time",
    )
    ax.legend(fontsize=8)
    return save(fig, path)


def _minutes(curve: Anytime, trial: FrozenTrial) -> float:
    """Minutes from the study's first start to the moment the trial finished."""
    end = trial.datetime_complete or curve.start
    return (end - curve.start).total_seconds() / 60


def worst_value(values: list[float], maximize: bool) -> float:
    """Where pruned and failed trials are drawn: at the worst completed value, never the best."""
    if not values:
        return 0.0
    return min(values) if maximize else max(values)


def importances(values: dict[str, float], path: Path) -> Path:
    """Parameter importances (optuna.importance) as horizontal bars."""
    fig = _figure()
    ax = fig.add_subplot()
    names = list(values)[::-1]
    ax.barh(names, [values[n] for n in names])
    ax.set(xlabel="importance (PED-ANOVA)", title="Parameter importances")
    return save(fig, path)


def metric_vs_params(trials: list[FrozenTrial], path: Path) -> Path:
    """Validation metric against each parameter; log-scaled parameters on log axes.

    A choice parameter is drawn as categories in its study file's order, numbers included: its
    values are the only ones there are, and a choice such as 1e308 would overflow a numeric axis.
    """
    done = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None]
    names = sorted({n for t in done for n in t.params})
    logs = log_params(done)
    choices = _choices(done)
    cols = min(3, max(1, len(names)))
    rows = (len(names) + cols - 1) // cols or 1
    power = _power([float(t.value or 0.0) for t in done])
    fig = _figure(4.0 * cols, 3.0 * rows)
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        points = [(t.params[name], float(t.value or 0.0)) for t in done if name in t.params]
        xs: list[Any] = [x for x, _ in points]
        label, log = name, False
        if name in choices:
            labels = _labels(choices[name])
            order = list(labels)
            points.sort(key=lambda point: order.index(point[0]) if point[0] in order else 0)
            xs = [labels.get(x, str(x)) for x, _ in points]  # first drawn, first category
        else:
            xs, label, log = _axis(name, xs, name in logs)
        ax.scatter(xs, _in_units([y for _, y in points], power), s=12, alpha=0.7)
        if log:
            _log_scale(ax, xs)
        ax.set(xlabel=label, ylabel=_unit("validation", power))
    return save(fig, path)


def _power(values: list[float]) -> int:
    """The power of ten to draw values in: 0, or beyond 1e100 their order of magnitude.

    Matplotlib's margin and tick arithmetic overflows near the largest float; a valid range, or a
    finite metric, may reach 1e308.
    """
    top = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    return math.floor(math.log10(top)) if top >= _HUGE else 0


def _in_units(values: list[float], power: int) -> list[float]:
    """values / 10**power."""
    return [v / 10.0**power for v in values] if power else values


def _unit(label: str, power: int) -> str:
    """An axis label that says the unit when it is not 1."""
    return f"{label} / 1e{power}" if power else label


def _axis(name: str, values: list[float], log: bool) -> tuple[list[float], str, bool]:
    """Values matplotlib can put on an axis, its label, and whether it is a log axis.

    Near the largest float a log axis becomes log10 of the values, a linear one a unit of 1e100+.
    """
    values = [float(v) for v in values]  # numpy's int64 would overflow on a wide int range
    power = _power(values)
    if power and log:
        return [math.log10(v) for v in values], f"log10({name})", False
    return _in_units(values, power), _unit(name, power), log and not power


def narrowing_ranges(trials: list[FrozenTrial], path: Path) -> Path | None:
    """Each numeric parameter's range per round, as bars shrinking round by round."""
    rounds: dict[int, dict[str, Any]] = {}
    for trial in trials:
        if _keys.NARROWING_ROUND in trial.user_attrs:
            rounds.setdefault(
                trial.user_attrs[_keys.NARROWING_ROUND], trial.user_attrs[_keys.NARROWING_RANGES]
            )
    if not rounds:
        return None
    first = rounds[min(rounds)]
    names = [n for n, r in first.items() if "low" in r]
    logs = log_params(trials)
    fig = _figure(4.0 * max(1, len(names)), 3.2)
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        order = sorted(rounds)
        ends, label, log = _axis(
            name,
            [rounds[r][name]["low"] for r in order] + [rounds[r][name]["high"] for r in order],
            name in logs,
        )
        lows, highs = ends[: len(order)], ends[len(order) :]
        ax.barh(order, [h - lo for lo, h in zip(lows, highs, strict=True)], left=lows)
        if log:
            _log_scale(ax, ends)
            ax.tick_params(axis="x", which="minor", labelbottom=False)
        ax.set_yticks(order)
        ax.set(xlabel=label, ylabel="round", title=f"{name} per round")
        ax.invert_yaxis()
    return save(fig, path)


def _log_scale(ax: Axes, values: list[float]) -> None:
    """A log x axis; a decade either side of values that (nearly) coincide.

    Matplotlib pads equal values itself, but values a rounding apart (1e-06 and
    1.0000000000000004e-06, a narrowed range read back through exp(log(x))) collapse to one
    limit, with a warning.
    """
    low, high = min(values), max(values)
    if high <= low * (1 + 1e-9):
        ax.set_xlim(low / 10, high * 10)  # first: it turns off the autoscaling that warns
    ax.set_xscale("log")


def _choices(trials: list[FrozenTrial]) -> dict[str, list[Any]]:
    """Each choice parameter's choices, in the study file's order."""
    return {
        name: list(dist.choices)
        for trial in trials
        for name, dist in trial.distributions.items()
        if hasattr(dist, "choices")
    }


def _labels(choices: list[Any]) -> dict[Any, str]:
    """Each choice's tick label: 1.79769e+308 rather than all 17 digits, unless two would match."""
    short = [f"{c:g}" if isinstance(c, float) else str(c) for c in choices]
    if len(set(short)) < len(short):
        short = [str(c) for c in choices]
    return dict(zip(choices, short, strict=True))


def param_importances(study: optuna.Study) -> dict[str, float]:
    """PED-ANOVA importances (Optuna 5's default, named so the label stays true), or {}."""
    import warnings

    import optuna

    evaluator = optuna.importance.PedAnovaImportanceEvaluator()
    try:
        with warnings.catch_warnings():  # "some regimes have < 2 trials": small studies, expected
            warnings.simplefilter("ignore", UserWarning)
            return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
    except (ValueError, RuntimeError):
        return {}
