"""The narrow-the-range random search: uniform random draws inside ranges that shrink by round.

Round r of a study holds trials r*T .. r*T+T-1 (T = trials per round), so a trial's round follows
from its number alone. Round 0 samples the study file's ranges. Round r's ranges are the box
spanned by the best finished trials of rounds 0..r-1 (completed ones by value, pruned ones by
their last report, in one ranking; in log space for log-scaled parameters), widened by
a margin, kept inside round r-1's ranges, and never narrower than a minimum width. Categorical
parameters keep the choices seen among the best, and those not yet tried `drop_after` times
by finished (completed or pruned) trials inside the new numeric ranges. The ranges are a pure
function of the finished trials in storage, so workers that never talk to each other compute
the same ones.

Trials of earlier rounds that are still running: the first trial of round r waits (polling
storage) until every trial numbered below r*T has finished, so every worker narrows on the same
complete set. That costs at most one trial's time per worker at each round boundary. A trial
still RUNNING after `wait_timeout` seconds (a worker that died without heartbeats) is left out,
and the round's notes say so.
"""

from __future__ import annotations

import math
import re
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial, TrialState

from hpsearch import _keys
from hpsearch.samplers._ranking import completed_best_first
from hpsearch.samplers._rounds import claim_round, keep_alive, stored_round
from hpsearch.spec import Choice, FloatRange, IntRange, ParamRange, SamplerSpec, distribution_bounds

if TYPE_CHECKING:
    from optuna.study import Study

POLL_S = 0.5
EDGE_TOL = 0.05  # best values within 5% of the range's width of an edge sit "at the edge"
GROW = 0.5  # a growing side moves out by half the current width per round

Range = tuple[float, float] | tuple[Any, ...]  # (low, high) or the kept choices


_ROUND = re.compile(r"\bround \d+\b")  # a round number inside a note


@dataclass(frozen=True)
class RoundRanges:
    """One round's ranges and what happened when they were computed."""

    number: int
    ranges: dict[str, Any]  # name -> {"low": .., "high": ..} or {"choices": [..]}
    notes: tuple[str, ...] = ()


class NarrowingSampler(BaseSampler):
    """Random search whose ranges shrink round by round around the best trials so far.

    A study file with ``[sampler] kind = "narrowing"`` gets one from `hpsearch run`; it can also
    drive a plain Optuna study whose objective suggests the same parameters.

    Args:
        search: The ranges to search, by parameter name, as in a spec's ``search``.
        options: The ``[sampler]`` settings (``keep``, ``margin``, ``min_width``, ...).
        trials_per_round: Trials in each round; round r holds trials r*T .. r*T+T-1.
        maximize: Whether larger values are better.
        seed: Seeds each draw together with the trial number and parameter name.
        notify: Receives one-line notes, e.g. a range stuck at an edge of its limits.
        can_grow: Whether the parameters may set ``grow`` (the built-in ones can; a user
            objective's have no hard limits), so that a note suggests it only where it works.

    Example:
        >>> import optuna, hpsearch
        >>> spec = hpsearch.load_spec("mnist-narrow")
        >>> sampler = hpsearch.NarrowingSampler(
        ...     spec.search, spec.sampler, trials_per_round=10, maximize=True
        ... )
        >>> study = optuna.create_study(direction="maximize", sampler=sampler)
    """

    def __init__(
        self,
        search: Mapping[str, ParamRange],
        options: SamplerSpec,
        trials_per_round: int,
        maximize: bool,
        seed: int = 0,
        notify: Callable[[str], None] | None = None,
        can_grow: bool = True,
    ) -> None:
        self.search = dict(search)
        self.can_grow = can_grow
        self.options = options
        self.trials_per_round = trials_per_round
        self.maximize = maximize
        self.seed = seed
        self.notify = notify or (lambda message: None)
        self._rounds: dict[int, RoundRanges] = {0: RoundRanges(0, initial_ranges(self.search))}
        self._fallback = RandomSampler(seed=seed % 2**32)  # numpy's legacy seeds stop at 2**32
        self._told: set[str] = set()

    # ------------------------------------------------------------ Optuna's sampler interface

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """No joint sampling: every parameter is drawn on its own."""
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """Unused, see infer_relative_search_space."""
        return {}

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        """Work out the trial's round and ranges, and record both on the trial.

        A retry of a failed trial (its worker died) reruns the original's parameters, so it
        keeps the round and ranges it inherited from the original instead.
        """
        if _inherited(trial) is not None:
            return
        rnd = self.round_ranges(study, self.round_of(trial.number), trial._trial_id)
        storage = study._storage
        storage.set_trial_user_attr(trial._trial_id, _keys.NARROWING_ROUND, rnd.number)
        storage.set_trial_user_attr(trial._trial_id, _keys.NARROWING_RANGES, rnd.ranges)
        if rnd.notes:
            storage.set_trial_user_attr(trial._trial_id, _keys.NARROWING_NOTES, list(rnd.notes))

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        """A uniform (log-uniform) draw inside this round's range, seeded by trial and name.

        A retry draws a parameter its original never reached from the round it inherited.
        """
        rnd = _inherited(trial) or self._rounds.get(self.round_of(trial.number))
        if rnd is None or param_name not in rnd.ranges:
            return self._fallback.sample_independent(study, trial, param_name, param_distribution)
        rng = np.random.default_rng([self.seed, trial.number, zlib.crc32(param_name.encode())])
        return draw(rng, rnd.ranges[param_name], self.search[param_name], param_distribution)

    # ------------------------------------------------------------ rounds

    def round_of(self, number: int) -> int:
        """A trial's round follows from its number alone."""
        return number // self.trials_per_round

    def round_ranges(self, study: Study, number: int, trial_id: int | None = None) -> RoundRanges:
        """Ranges of round `number`: as stored on the study, or computed and stored first.

        The first process to finish computing a round writes it; every other process, and any
        later resume, reads the same ranges (cached per process).
        """
        for k in range(1, number + 1):
            if k in self._rounds:
                continue
            stored = stored_round(study._storage, study._study_id, k)
            if stored is None:
                trials, notes = self._settled_trials(study, k * self.trials_per_round, trial_id)
                rnd = next_round(
                    self._rounds[k - 1],
                    self._rounds[0],
                    trials,
                    self.search,
                    self.options,
                    self.maximize,
                    self.can_grow,
                )
                rnd = RoundRanges(k, rnd.ranges, (*notes, *rnd.notes))
                stored = claim_round(study._storage, study._study_id, rnd)
            self._rounds[k] = stored
            self._tell(stored.notes)
        return self._rounds[number]

    def _tell(self, notes: Sequence[str]) -> None:
        """Print each note once per process: an edge that persists is said in its first round.

        Every round still records all of its notes on its trials.
        """
        for note in notes:
            # the same note of a later round ("outside round 3's range") is not news either
            key = _ROUND.sub("round", note.split(": ", 1)[-1])
            if key not in self._told:
                self._told.add(key)
                self.notify(note)

    def _settled_trials(
        self, study: Study, boundary: int, trial_id: int | None
    ) -> tuple[list[FrozenTrial], list[str]]:
        """All trials numbered below `boundary`, once none of them is still running.

        The whole study, whatever subset a pruner (Hyperband's brackets) hands the sampler.
        While waiting, this process's own trial keeps beating, and a trial whose worker died
        (its heartbeat gone stale) is failed and queued again, so a live trial is waited for
        however slow and a dead one never stalls the round.
        """
        deadline = time.monotonic() + self.options.wait_timeout
        while True:
            everything = study._storage.get_all_trials(study._study_id, deepcopy=False)
            trials = [t for t in everything if t.number < boundary]
            running = [t.number for t in trials if t.state == TrialState.RUNNING]
            if not running:
                return trials, []
            keep_alive(study, trial_id)
            if time.monotonic() > deadline:
                late = ", ".join(f"#{n}" for n in running)
                note = (
                    f"round {boundary // self.trials_per_round}: trials {late} were still running "
                    f"after {self.options.wait_timeout:g} s and are left out"
                )
                return [t for t in trials if t.state != TrialState.RUNNING], [note]
            time.sleep(POLL_S)


def _inherited(trial: FrozenTrial) -> RoundRanges | None:
    """The round a retry of a failed trial inherited from its original, if it is one."""
    attrs = trial.user_attrs
    if _keys.RETRY_OF not in trial.system_attrs or _keys.NARROWING_ROUND not in attrs:
        return None
    return RoundRanges(attrs[_keys.NARROWING_ROUND], attrs[_keys.NARROWING_RANGES])


def initial_ranges(search: Mapping[str, ParamRange]) -> dict[str, Any]:
    """Round 0: the study file's own ranges."""
    return {name: _as_record(rng) for name, rng in search.items()}


def _as_record(rng: ParamRange) -> dict[str, Any]:
    """A JSON-friendly range record."""
    if isinstance(rng, Choice):
        return {"choices": list(rng.choices)}
    return {"low": rng.low, "high": rng.high}


def rank(trials: Sequence[FrozenTrial], maximize: bool) -> tuple[list[FrozenTrial], int]:
    """Finished trials best first (completed by value, pruned by last report); failed dropped.

    One ordering for both kinds: a pruned trial's last report comes from an earlier epoch, so it
    already understates the trial. Ranking every completed trial above every pruned one let a
    run that diverged (stopped at chance after one epoch) into the best whenever most trials
    were pruned, and kept its learning rate and choices in the next round's ranges.
    """
    sign = -1.0 if maximize else 1.0
    complete = completed_best_first(trials, maximize)
    scored = [(float(t.value or 0.0), t) for t in complete]
    scored += [
        (_last_report(t), t)
        for t in trials
        if t.state == TrialState.PRUNED and t.intermediate_values
    ]
    silent = sorted(
        (t for t in trials if t.state == TrialState.PRUNED and not t.intermediate_values),
        key=lambda t: t.number,
    )
    scored.sort(key=lambda p: (not math.isfinite(p[0]), sign * p[0], p[1].number))
    return [t for _, t in scored] + silent, len(complete)


def _last_report(trial: FrozenTrial) -> float:
    """The last intermediate value a pruned trial reported."""
    values = trial.intermediate_values
    return float(values[max(values)])


def next_round(
    prev: RoundRanges,
    first: RoundRanges,
    trials: Sequence[FrozenTrial],
    search: Mapping[str, ParamRange],
    options: SamplerSpec,
    maximize: bool,
    can_grow: bool = True,
) -> RoundRanges:
    """Round prev.number+1: shrink each range to the box around the best trials so far."""
    number = prev.number + 1
    ranked, n_complete = rank(trials, maximize)
    if n_complete < options.min_complete:
        note = (
            f"round {number}: only {n_complete} of {len(trials)} earlier trials completed "
            f"(min_complete = {options.min_complete}); ranges stay as in round {prev.number}"
        )
        return RoundRanges(number, prev.ranges, (note,))
    n_keep = max(options.min_keep, math.ceil(options.keep * len(ranked)))
    best = ranked[:n_keep]
    boxes: dict[str, Any] = {}  # numeric ranges first: the choices are judged inside them
    notes: list[str] = []
    for name, rng in search.items():
        if isinstance(rng, Choice):
            continue
        used = [t.params[name] for t in best if name in t.params]
        if not used:  # e.g. dropout when every best trial used BatchNorm
            boxes[name] = prev.ranges[name]
            continue
        outside = _outside(used, prev.ranges[name])
        if outside:  # older trials pulled in: shrinking would leave the best behind
            boxes[name] = prev.ranges[name]
            notes.append(
                f"round {number}: {name}: best values {outside} lie outside round "
                f"{prev.number}'s range; the range stays"
            )
            continue
        boxes[name], edge = shrink(
            name, rng, prev.ranges[name], first.ranges[name], used, options, can_grow
        )
        notes += [f"round {number}: {edge}"] if edge else []
    tried = [t for t in ranked if inside(t, boxes)]  # completed or pruned
    ranges = {
        name: boxes[name] if name in boxes else kept_choices(name, prev, best, tried, options)
        for name in search
    }
    return RoundRanges(number, ranges, tuple(notes))


def _outside(used: Sequence[float], record: dict[str, float]) -> str:
    """The best values outside a range, as text ('' when all lie inside)."""
    width = record["high"] - record["low"]
    tol = 1e-9 * max(1.0, abs(width))
    far = [v for v in used if v < record["low"] - tol or v > record["high"] + tol]
    return ", ".join(f"{v:.3g}" for v in sorted(set(far)))


def kept_choices(
    name: str,
    prev: RoundRanges,
    best: Sequence[FrozenTrial],
    tried: Sequence[FrozenTrial],
    options: SamplerSpec,
) -> dict[str, Any]:
    """Choices seen among the best, and those not yet tried `drop_after` times in the new box.

    A choice judged only on trials whose other parameters were poor (BatchNorm tried only at
    learning rates the search has since left) would otherwise be dropped for good.
    """
    record: dict[str, Any] = prev.ranges[name]
    choices = record["choices"]
    used = {t.params[name] for t in best if name in t.params}
    if not used:  # a conditional choice no best trial used: nothing to judge it on
        return record
    counts = [sum(t.params.get(name) == c for t in tried) for c in choices]
    kept = [c for c, n in zip(choices, counts, strict=True) if c in used or n < options.drop_after]
    return {"choices": kept or choices}


def inside(trial: FrozenTrial, boxes: Mapping[str, dict[str, float]]) -> bool:
    """Whether every numeric parameter the trial used lies in the new ranges."""
    return all(
        box["low"] - 1e-12 <= trial.params[name] <= box["high"] + 1e-12
        for name, box in boxes.items()
        if name in trial.params
    )


def shrink(
    name: str,
    rng: FloatRange | IntRange,
    prev: dict[str, float],
    first: dict[str, float],
    used: Sequence[float],
    options: SamplerSpec,
    can_grow: bool = True,
) -> tuple[dict[str, float], str | None]:
    """One numeric range: box around the best values, margin, edges, minimum width, grid."""
    fwd, back = (math.log, math.exp) if rng.log else (float, float)
    hard_low, hard_high = (fwd(v) for v in distribution_bounds(name, rng))
    plo, phi = fwd(prev["low"]), fwd(prev["high"])
    width0 = fwd(first["high"]) - fwd(first["low"])
    blo, bhi = fwd(min(used)), fwd(max(used))
    pad = options.margin * (phi - plo)
    lo, hi = max(blo - pad, plo), min(bhi + pad, phi)
    note = None
    tol = EDGE_TOL * (phi - plo)
    at_low, at_high = blo - plo <= tol, phi - bhi <= tol
    if at_low and not at_high and plo <= fwd(first["low"]) + 1e-12:
        grows = rng.grow in ("low", "both")
        lo, note = _edge(name, "lower", grows, can_grow, plo, phi - plo, hard_low, back)
    if at_high and not at_low and phi >= fwd(first["high"]) - 1e-12:
        grows = rng.grow in ("high", "both")
        hi, note = _edge(name, "upper", grows, can_grow, phi, phi - plo, hard_high, back)
    lo, hi = _widen(lo, hi, options.min_width * width0, min(plo, lo), max(phi, hi))
    low, high = back(lo), back(hi)
    if isinstance(rng, IntRange) or rng.step:
        low, high = _snap(low, high, rng, name)
    return {"low": low, "high": high}, note


def _edge(
    name: str,
    side: str,
    grows: bool,
    can_grow: bool,
    edge: float,
    width: float,
    hard: float,
    back: Callable[[float], float],
) -> tuple[float, str]:
    """The new bound at an edge the best trials sit on, and the one-line message about it."""
    lower = side == "lower"
    message = f"{name}: the best values lie at the {side} edge {back(edge):.3g}; "
    if not grows and not can_grow:  # a user's parameter: grow would be refused
        return edge, message + f"consider widening search.{name} in the study file"
    if not grows:
        key = "low" if lower else "high"
        return edge, message + f'consider widening (or set grow = "{key}" on search.{name})'
    moved = max(edge - GROW * width, hard) if lower else min(edge + GROW * width, hard)
    return moved, message + f"growing the range to {back(moved):.3g}"


def _widen(
    lo: float, hi: float, min_width: float, floor: float, ceil: float
) -> tuple[float, float]:
    """Keep at least `min_width`, centred on the box, shifted to stay inside [floor, ceil]."""
    if hi - lo >= min_width:
        return lo, hi
    centre = (lo + hi) / 2
    lo, hi = centre - min_width / 2, centre + min_width / 2
    if lo < floor:
        lo, hi = floor, min(ceil, floor + min_width)
    if hi > ceil:
        lo, hi = max(floor, ceil - min_width), ceil
    return lo, hi


def _snap(low: float, high: float, rng: FloatRange | IntRange, name: str) -> tuple[float, float]:
    """Move bounds to the nearest points of the parameter's grid (integers, or low + k*step).

    The best values lie on the grid inside the padded box, so rounding never drops them.
    """
    step = float(rng.step or 1)
    anchor = float(rng.low)
    k_lo = math.floor((low - anchor) / step + 0.5)
    k_hi = math.ceil((high - anchor) / step - 0.5)
    hard_low, hard_high = distribution_bounds(name, rng)
    snapped_low = max(anchor + k_lo * step, hard_low)
    snapped_high = min(anchor + k_hi * step, hard_high)
    if isinstance(rng, IntRange):
        return round(snapped_low), round(snapped_high)
    return round(snapped_low, 12), round(snapped_high, 12)


def draw(
    rng: np.random.Generator, record: dict[str, Any], spec: ParamRange, dist: BaseDistribution
) -> Any:
    """One value from a range record, valid for Optuna's distribution."""
    if isinstance(dist, CategoricalDistribution):
        choices = record.get("choices") or list(dist.choices)
        return choices[int(rng.integers(len(choices)))]
    assert isinstance(dist, FloatDistribution | IntDistribution)
    low, high = max(record["low"], dist.low), min(record["high"], dist.high)
    if dist.step is not None and not (isinstance(dist, IntDistribution) and dist.log):
        k_lo = math.ceil((low - dist.low) / dist.step - 1e-9)
        k_hi = math.floor((high - dist.low) / dist.step + 1e-9)
        value = dist.low + int(rng.integers(k_lo, max(k_lo, k_hi) + 1)) * dist.step
        return int(value) if isinstance(dist, IntDistribution) else round(value, 12)
    if dist.log:
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        value = float(rng.uniform(low, high))
    if isinstance(dist, IntDistribution):
        return int(min(max(round(value), dist.low), dist.high))
    return min(max(value, dist.low), dist.high)
