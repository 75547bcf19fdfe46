"""The narrow-the-range sampler on a synthetic bowl with a known optimum, and through the CLI."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from click.testing import Result
from narrowing_bowl import OPT_DROPOUT, OPT_LR, run

from hpsearch.errors import SpecError
from hpsearch.spec import parse_spec

BOWL = """\
seed = 7
[search]
lr = {{ low = {lr_low}, high = {lr_high}, log = true{grow} }}
batch_size = {{ choices = [32, 64, 128, 256, 512] }}
batch_norm = {{ choices = [true, false] }}
dropout = {{ low = 0.1, high = 0.5, step = 0.1, when = {{ batch_norm = false }} }}
[sampler]
kind = "narrowing"
trials_per_round = {per_round}
keep = 0.2
margin = 0.1
min_width = 0.05
{extra}
"""


def bowl_spec(
    tmp_path: Path,
    lr_low: float = 1e-5,
    lr_high: float = 1e-1,
    grow: str = "",
    per_round: int = 20,
    extra: str = "",
    name: str = "bowl",
):  # type: ignore[no-untyped-def]
    """A study file for the synthetic bowl."""
    text = BOWL.format(
        lr_low=lr_low,
        lr_high=lr_high,
        per_round=per_round,
        extra=extra,
        grow=f', grow = "{grow}"' if grow else "",
    )
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return parse_spec(text, path)


def round_ranges(study: optuna.Study) -> dict[int, dict[str, dict[str, object]]]:
    """The ranges recorded on the trials, per round; fails if a round's trials disagree."""
    seen: dict[int, dict[str, dict[str, object]]] = {}
    for trial in study.trials:
        number = trial.user_attrs["narrowing_round"]
        ranges = trial.user_attrs["narrowing_ranges"]
        assert seen.setdefault(number, ranges) == ranges, f"round {number} disagrees"
    return seen


def test_ranges_shrink_round_by_round_and_keep_the_optimum(tmp_path: Path) -> None:
    notes: list[str] = []
    study = run(bowl_spec(tmp_path), None, 100, notes)
    rounds = round_ranges(study)
    assert sorted(rounds) == [0, 1, 2, 3, 4]
    widths = [math.log(r["lr"]["high"]) - math.log(r["lr"]["low"]) for r in rounds.values()]
    assert all(b <= a for a, b in itertools.pairwise(widths))
    assert widths[-1] < 0.5 * widths[0]
    for ranges in rounds.values():
        assert ranges["lr"]["low"] <= OPT_LR <= ranges["lr"]["high"]
    for trial in study.trials:
        lr_range = trial.user_attrs["narrowing_ranges"]["lr"]
        assert lr_range["low"] <= trial.params["lr"] <= lr_range["high"]
    best_late = max(t.value for t in study.trials[80:])
    best_early = max(t.value for t in study.trials[:20])
    assert best_late >= best_early


def test_categorical_choices_are_dropped(tmp_path: Path) -> None:
    study = run(bowl_spec(tmp_path), None, 100, [])
    rounds = round_ranges(study)
    assert rounds[0]["batch_norm"]["choices"] == [True, False]
    last = rounds[max(rounds)]
    assert len(last["batch_size"]["choices"]) < 5
    assert last["batch_norm"]["choices"] == [True]
    later = [t for t in study.trials if t.user_attrs["narrowing_round"] == max(rounds)]
    assert all(t.params["batch_norm"] is True and "dropout" not in t.params for t in later)


def test_stepped_parameter_narrows_on_its_grid(tmp_path: Path) -> None:
    spec = bowl_spec(tmp_path).search
    text = BOWL.replace(
        "batch_norm = {{ choices = [true, false] }}", "batch_norm = {{ choices = [false] }}"
    )
    text = text.format(lr_low=1e-5, lr_high=1e-1, per_round=20, extra="", grow="")
    path = tmp_path / "grid.toml"
    path.write_text(text)
    study = run(parse_spec(text, path), None, 80, [])
    rounds = round_ranges(study)
    last = rounds[max(rounds)]["dropout"]
    assert 0.1 <= last["low"] <= OPT_DROPOUT <= last["high"] <= 0.5
    assert last["high"] - last["low"] < 0.4
    values = {round(t.params["dropout"], 6) for t in study.trials}
    assert values <= {0.1, 0.2, 0.3, 0.4, 0.5}
    assert spec["dropout"].step == 0.1


def test_pruned_and_failed_trials(tmp_path: Path) -> None:
    study = run(bowl_spec(tmp_path), None, 60, [], fail_every=5, prune_every=4)
    states = {t.state.name for t in study.trials}
    assert states == {"COMPLETE", "PRUNED", "FAIL"}
    rounds = round_ranges(study)
    assert len(rounds) >= 3
    assert rounds[max(rounds)]["lr"]["low"] <= OPT_LR <= rounds[max(rounds)]["lr"]["high"]


def test_completed_and_pruned_trials_share_one_ranking() -> None:
    from optuna.trial import TrialState, create_trial

    from hpsearch.samplers._narrowing import rank

    good = create_trial(value=0.75, state=TrialState.COMPLETE, intermediate_values={30: 0.75})
    diverged = create_trial(value=0.18, state=TrialState.COMPLETE, intermediate_values={1: 0.18})
    learning = create_trial(state=TrialState.PRUNED, intermediate_values={8: 0.6, 9: 0.65})
    stuck = create_trial(state=TrialState.PRUNED, intermediate_values={9: 0.1})
    silent = create_trial(state=TrialState.PRUNED)
    failed = create_trial(state=TrialState.FAIL)
    trials = [silent, stuck, failed, diverged, learning, good]
    ranked, n_complete = rank(trials, maximize=True)
    assert ranked == [good, learning, diverged, stuck, silent] and n_complete == 2
    losses = [
        create_trial(value=0.9, state=TrialState.COMPLETE),
        create_trial(state=TrialState.PRUNED, intermediate_values={3: 0.5}),
    ]
    assert rank(losses, maximize=False)[0] == losses[::-1]  # lower loss first


@pytest.mark.parametrize(
    ("bn_lr", "drop_after", "kept"),
    [(1e-5, 3, [True, False]), (1e-5, 0, [False]), (1e-3, 3, [False])],
    ids=["tried-only-outside-the-box", "drop-at-once", "tried-inside-the-box"],
)
def test_choice_is_dropped_only_when_tried_inside_the_new_box(
    tmp_path: Path, bn_lr: float, drop_after: int, kept: list[bool]
) -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import TrialState, create_trial

    from hpsearch.samplers._narrowing import RoundRanges, initial_ranges, next_round

    spec = bowl_spec(tmp_path, extra=f"min_keep = 5\ndrop_after = {drop_after}")
    search = {k: v for k, v in spec.search.items() if k in ("lr", "batch_norm")}
    dists = {
        "lr": FloatDistribution(1e-5, 1e-1, log=True),
        "batch_norm": CategoricalDistribution([True, False]),
    }

    def trial(lr: float, bn: bool, value: float | None) -> optuna.trial.FrozenTrial:
        state = TrialState.COMPLETE if value is not None else TrialState.PRUNED
        params = {"lr": lr, "batch_norm": bn}
        return create_trial(params=params, distributions=dists, value=value, state=state)

    good = [trial(lr, False, 0.9) for lr in (5e-4, 7e-4, 1e-3, 1.5e-3, 2e-3)]
    # a pruned trial counts as a try, like a completed one
    poor = [trial(bn_lr * (1 + i / 10), True, None if i == 0 else 0.5) for i in range(3)]
    first = RoundRanges(0, initial_ranges(search))
    rnd = next_round(first, first, good + poor, search, spec.sampler, maximize=True)
    assert rnd.ranges["batch_norm"]["choices"] == kept
    assert rnd.ranges["lr"]["low"] < 5e-4 and rnd.ranges["lr"]["high"] > 2e-3


def test_a_retried_trial_keeps_the_round_its_parameters_came_from(tmp_path: Path) -> None:
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    spec, url = bowl_spec(tmp_path, per_round=5), f"sqlite:///{tmp_path / 'retry.db'}"
    study = run(spec, url, 10, [])
    original = study.trials[3]  # round 0; as if its worker had died
    RetryHeartbeatStaleTrialCallback()(study, original)
    study = run(spec, url, 11, [])
    retry = study.trials[10]  # number 10 would be round 2
    assert retry.system_attrs["failed_trial"] == 3 and retry.params == original.params
    assert retry.user_attrs["narrowing_round"] == 0
    assert retry.user_attrs["narrowing_ranges"] == original.user_attrs["narrowing_ranges"]


def test_too_few_completed_keeps_ranges_and_says_so(tmp_path: Path) -> None:
    notes: list[str] = []
    study = run(
        bowl_spec(tmp_path, per_round=5, extra="min_complete = 3"), None, 10, notes, prune_every=1
    )
    rounds = round_ranges(study)
    assert rounds[1] == rounds[0]
    assert any("only 0 of 5 earlier trials completed" in n for n in notes)
    assert "ranges stay as in round 0" in study.trials[5].user_attrs["narrowing_notes"][0]


def test_edge_message_when_optimum_lies_outside(tmp_path: Path) -> None:
    notes: list[str] = []
    study = run(bowl_spec(tmp_path, lr_low=1e-2, lr_high=1e-1, per_round=5), None, 40, notes)
    edge = "lr: the best values lie at the lower edge 0.01; consider widening"
    assert [n for n in notes if edge in n] == [
        f'round 1: {edge} (or set grow = "low" on search.lr)'
    ]
    # printed once, but each round whose best still sit there records it on its trials
    recorded = {
        t.user_attrs["narrowing_round"]
        for t in study.trials
        if any(edge in n for n in t.user_attrs.get("narrowing_notes", []))
    }
    assert 1 in recorded and len(recorded) >= 3


def test_grow_moves_past_the_initial_edge(tmp_path: Path) -> None:
    notes: list[str] = []
    study = run(bowl_spec(tmp_path, lr_low=1e-2, lr_high=1e-1, grow="low"), None, 80, notes)
    rounds = round_ranges(study)
    assert rounds[max(rounds)]["lr"]["low"] < 1e-2
    assert any("growing the range" in n for n in notes)
    assert min(t.params["lr"] for t in study.trials) < 1e-2


def test_grow_needs_the_narrowing_sampler(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"search\.lr\.grow needs sampler kind 'narrowing'"):
        parse_spec(
            '[search]\nlr = { low = 1e-3, high = 1e-1, log = true, grow = "low" }\n',
            tmp_path / "x.toml",
        )


@pytest.mark.slow
def test_two_workers_on_one_sqlite_file_agree(tmp_path: Path) -> None:
    spec = bowl_spec(tmp_path, per_round=6)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    from hpsearch.storages._rdb import open_storage

    open_storage(url)  # creates the tables and switches the file to WAL once
    script = Path(__file__).with_name("narrowing_bowl.py")
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), str(spec.path), url, "24", "0.05"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for worker in workers:
        _out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
    study = optuna.load_study(study_name="bowl", storage=url)
    rounds = round_ranges(study)  # asserts every trial of a round recorded identical ranges
    assert len(rounds) >= 4
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert 24 <= len(complete) <= 25  # each worker stops at the total; overshoot ≤ workers - 1
    assert len(study.trials) == len(complete)


# ------------------------------------------------------------------ through the CLI


@pytest.mark.slow
def test_cli_narrowing_study_and_ranges_table(
    cli: Callable[..., Result], make_study: Callable[..., Path], storage_url: str
) -> None:
    text = (
        "seed = 2\n[data]\ntrain_size = 2400\nvalid_size = 600\n[model]\nhidden = [64]\n"
        "[training]\nmax_epochs = 1\n[search]\nlr = { low = 1e-4, high = 1e-1, log = true }\n"
        "batch_norm = { choices = [true, false] }\n"
        "[sampler]\nkind = 'narrowing'\nrounds = 3\nmin_keep = 2\n[pruner]\nkind = 'none'\n"
    )
    study = make_study(name="narrow", text=text)
    result = cli("run", "--study", str(study), "--trials", "9", "--storage", storage_url)
    assert result.exit_code == 0, result.output
    stored = optuna.load_study(study_name="narrow", storage=storage_url)
    assert stored.user_attrs["narrowing_trials_per_round"] == 3
    table = cli("ranges", "--study", str(study), "--storage", storage_url)
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split() == ["round", "trials", "completed", "best", "lr", "batch_norm"]
    assert [line.split()[:3] for line in lines[1:4]] == [
        ["0", "3", "3"],
        ["1", "3", "3"],
        ["2", "3", "3"],
    ]
    assert lines[1].split()[4] == "0.0001..0.1"
    # Resuming with a larger total keeps the recorded round length.
    more = cli("run", "--study", str(study), "--trials", "12", "--storage", storage_url)
    assert more.exit_code == 0, more.output
    rounds = round_ranges(optuna.load_study(study_name="narrow", storage=storage_url))
    assert sorted(rounds) == [0, 1, 2, 3]


@pytest.mark.slow
def test_ranges_on_a_non_narrowing_study(
    cli: Callable[..., Result], make_study: Callable[..., Path], storage_url: str
) -> None:
    study = make_study()
    cli("run", "--study", str(study), "--trials", "1", "--storage", storage_url)
    result = cli("ranges", "--study", str(study), "--storage", storage_url)
    assert result.exit_code != 0 and "has no narrowing rounds" in result.output


def test_best_values_outside_the_previous_range_keep_it(tmp_path: Path) -> None:
    """Seen: dropout best at 0.4 with the previous range 0.1-0.2 gave a sliver, 0.2-0.2."""
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from hpsearch.samplers._narrowing import RoundRanges, initial_ranges, next_round

    spec = bowl_spec(tmp_path, extra="min_keep = 2\nmin_complete = 1")
    search = {"dropout": spec.search["dropout"]}
    dist = {"dropout": FloatDistribution(0.1, 0.5, step=0.1)}
    done = TrialState.COMPLETE
    best = [
        create_trial(params={"dropout": 0.4}, distributions=dist, value=value, state=done)
        for value in (0.9, 0.8)
    ]
    first = RoundRanges(0, initial_ranges(search))
    previous = RoundRanges(1, {"dropout": {"low": 0.1, "high": 0.2}})
    rnd = next_round(previous, first, best, search, spec.sampler, maximize=True)
    assert rnd.ranges["dropout"] == {"low": 0.1, "high": 0.2}
    assert any("best values 0.4 lie outside round 1's range" in note for note in rnd.notes)


def test_a_retry_draws_a_parameter_its_original_never_reached_from_its_round(
    tmp_path: Path,
) -> None:
    """Not from the whole allowed domain: the inherited round's range."""
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from hpsearch.samplers._factory import make_sampler

    spec = bowl_spec(tmp_path, per_round=5)
    sampler = make_sampler(spec, spec.seed, 5)
    narrow = {"low": 1e-3, "high": 1.1e-3}
    retry = create_trial(
        state=TrialState.WAITING,
        user_attrs={"narrowing_round": 1, "narrowing_ranges": {"lr": narrow}},
        system_attrs={"failed_trial": 7},
    )
    retry.number = 40  # round 8 by number; this process never computed round 8
    study = optuna.create_study(direction="maximize", sampler=sampler)
    dist = FloatDistribution(1e-5, 1e-1, log=True)
    drawn = [sampler.sample_independent(study, retry, "lr", dist) for _ in range(5)]
    assert all(narrow["low"] <= value <= narrow["high"] for value in drawn)


USER_EDGE = """\
[objective]
entry = "objective.py:objective"
metric = "score"
direction = "maximize"
[search]
lr = { low = 0.01, high = 1.0, log = true }
[sampler]
kind = "narrowing"
trials_per_round = 10
"""


@pytest.mark.parametrize("user", [False, True], ids=["built-in", "user"])
def test_the_edge_note_offers_grow_only_where_the_study_file_takes_it(
    tmp_path: Path, user: bool
) -> None:
    """A user objective's parameters cannot grow (no hard limits): its note says widen, not grow.

    The built-in note's grow, followed as printed, is a study file that parses.
    """
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    from hpsearch.samplers._factory import make_sampler

    text = USER_EDGE if user else bowl_spec(tmp_path, lr_low=1e-2, lr_high=1.0).path.read_text()
    path = tmp_path / "edge.toml"
    path.write_text(text)
    spec = parse_spec(text, path)
    notes: list[str] = []
    sampler = make_sampler(spec, spec.seed, 10, notes.append)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    dist = FloatDistribution(1e-2, 1.0, log=True)
    lrs = [0.01, 0.0102, 0.0105, 0.011, 0.012, 0.3, 0.4, 0.5, 0.8, 0.9]  # the best at the edge
    for i, lr in enumerate(lrs):
        study.add_trial(
            create_trial(params={"lr": lr}, distributions={"lr": dist}, value=1 - i / 20)
        )
    study.ask({"lr": dist})  # trial 10: round 1 is computed
    (note,) = [n for n in notes if "lower edge 0.01" in n]
    if user:
        assert note.endswith("consider widening search.lr in the study file"), note
        with pytest.raises(SpecError, match="grow needs hard limits"):
            parse_spec(text.replace("log = true", 'log = true, grow = "low"'), path)
    else:
        assert note.endswith('(or set grow = "low" on search.lr)'), note
        grown = parse_spec(text.replace("log = true", 'log = true, grow = "low"'), path)
        assert grown.search["lr"].grow == "low"
