"""`hpsearch report`: one self-contained index.html with figures, tables and the manifest."""

from __future__ import annotations

import base64
import html
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hpsearch import _keys
from hpsearch.errors import StorageError, UsageError
from hpsearch.reporting import _figures as figures
from hpsearch.reporting._summaries import (
    NO_ERROR,
    Anytime,
    anytime,
    anytime_text,
    epochs_run,
    epochs_text,
    format_duration,
    format_value,
    trial_epochs,
)
from hpsearch.reporting._testset import BadRecord
from hpsearch.samplers._ranking import completed_best_first
from hpsearch.storages._artifacts import NoWeights

if TYPE_CHECKING:
    import optuna
    from optuna.artifacts._protocol import ArtifactStore
    from optuna.trial import FrozenTrial

    from hpsearch.reporting._testset import HeldOutResult
    from hpsearch.spec import StudySpec


STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
    "img{max-width:100%}.warn{color:#a40}pre{background:#f6f6f6;padding:1em;overflow:auto}"
)
# Marks how many images decoded, so a headless browser (and the tests) can check them all.
COUNT_IMAGES = (
    "window.addEventListener('load', () => {"
    "const images = [...document.images];"
    "document.body.dataset.imagesLoaded = images.filter(i => i.naturalWidth > 0).length;"
    "document.body.dataset.imagesTotal = images.length; });"
)
REGULARIZER_HEADER = [
    "setting",
    "trials (failed included)",
    "completed",
    "best validation",
    "median validation",
    "test result of its best trial",
]
NO_TEST = (
    "No test evaluation is configured: set objective.test in the study file to evaluate the "
    "selected trial's weights on held-out data."
)


@dataclass(frozen=True)
class Report:
    """What `hpsearch report` wrote and found."""

    index: Path
    figures: list[Path]
    best: FrozenTrial
    test: HeldOutResult | None
    running: bool  # short of its total: still running, or stopped early
    status: str
    economy: list[str]  # epochs against full trials; when the best came
    untested: str = "no test evaluation configured (objective.test)"  # why test is None


def build_report(
    study: optuna.Study,
    spec: StudySpec,
    store: ArtifactStore,
    data_dir: Path,
    out: Path,
    retest: bool = False,
) -> Report:
    """Evaluate the validation-selected best trial on test (once), draw, and write index.html.

    `retest` evaluates every trial the report shows on test again, replacing their records.
    """
    trials = study.get_trials(deepcopy=False)
    maximize = spec.direction == "maximize"
    ranked = completed_best_first(trials, maximize)
    if not ranked:
        raise StorageError(
            f"study '{spec.name}' has no completed trial yet; run it first, then report"
        )
    made = [folder for folder in (out, *out.parents) if not folder.exists()]
    _writable(out)
    tester = _Tester(study, spec, store, data_dir, retest)
    reason = None  # why there is no test figure, where it is not a missing objective.test
    if spec.objective is None:
        reason = "no test evaluation: the study has no test split (data.test_fraction = 0)"
    try:
        test = tester.result(ranked[0])
    except BadRecord as exc:  # an older version's record: the rest of the report still shows
        test, reason = None, exc.for_command_line()
    except NoWeights as exc:  # an objective that saves none: the rest of the report still shows
        test, reason = None, f"no test evaluation: {exc}"
    except BaseException:
        _remove_empty(made)  # a failed report leaves no empty folder behind
        raise
    best = ranked[0]
    curve = anytime(trials, maximize)
    pngs = _draw(study, trials, ranked, test, maximize, out, spec.metric, curve)
    rows = regularizer_rows(study, spec, ranked, tester)
    target = int(study.user_attrs.get(_keys.TARGET_TRIALS, 0))
    status, running = study_status(trials, target)
    economy = economy_lines(trials, curve, target, spec.max_epochs)
    costs = cost(trials, spec)
    page = _page(study, spec, best, (test, reason), pngs, rows, costs, economy, running, status)
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return Report(index, pngs, best, test, running, status, economy, reason or Report.untested)


def study_status(trials: list[FrozenTrial], target: int) -> tuple[str, bool]:
    """One sentence on where the study stands, and whether it is short of its total."""
    finished = sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    running = sum(t.state.name == "RUNNING" for t in trials)
    if running:
        return (
            f"This study is still running: {finished} of {target} trials finished, {running} "
            "running; the figures and tables show the trials so far.",
            True,
        )
    if finished < target:
        return (
            f"This study is not finished: {finished} of {target} trials, none running now "
            "(stopped or interrupted); re-run it to finish. The figures and tables show the "
            "trials so far.",
            True,
        )
    if target and finished > target:
        return f"Finished: {finished} trials (the total is now {target}).", False
    return f"Finished: {finished} of {target or finished} trials.", False


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders this report created (deepest first) while they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _writable(out: Path) -> None:
    """Create the output folder, or say why it cannot be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write the report to {out}: {exc.strerror}; pass -o DIR") from None


def _draw(
    study: optuna.Study,
    trials: list[FrozenTrial],
    ranked: list[FrozenTrial],
    test: HeldOutResult | None,
    maximize: bool,
    out: Path,
    metric: str,
    curve: Anytime | None,
) -> list[Path]:
    """Every figure as a PNG in `out`."""
    pngs = [figures.loss_curves(ranked, out / "loss_curves.png", metric)]
    if test is not None and test.confusion:
        pngs.append(figures.confusion(test.confusion, test.classes, out / "confusion_matrix.png"))
    pngs.append(figures.best_so_far(trials, maximize, out / "best_so_far.png"))
    if curve is not None:
        pngs.append(figures.best_over_time(trials, curve, maximize, out / "best_over_time.png"))
    pngs.append(figures.metric_vs_params(trials, out / "metric_vs_params.png"))
    values = figures.param_importances(study)
    if values:
        pngs.append(figures.importances(values, out / "importances.png"))
    ranges = figures.narrowing_ranges(trials, out / "narrowing_ranges.png")
    return pngs + ([ranges] if ranges else [])


def discrete_params(trials: list[FrozenTrial]) -> list[str]:
    """Parameters with a handful of settings: categorical, or a short grid (each dropout value).

    An integer range (hidden = 8..128) is a grid of step 1 but not a handful: it gets no rows.
    """
    from optuna.distributions import CategoricalDistribution

    names = set()
    for trial in trials:
        for name, dist in trial.distributions.items():
            step = getattr(dist, "step", None)
            if isinstance(dist, CategoricalDistribution) or (
                step and (dist.high - dist.low) / step < _HANDFUL  # type: ignore[attr-defined]
            ):
                names.add(name)
    return sorted(names)


_HANDFUL = 10  # a grid of at most this many settings gets a row per setting


@dataclass
class _Tester:
    """Test results for one report: each trial evaluated (or retested) at most once."""

    study: optuna.Study
    spec: StudySpec
    store: ArtifactStore
    data_dir: Path
    retest: bool
    done: dict[int, HeldOutResult | None] = field(default_factory=dict)

    def result(self, trial: FrozenTrial) -> HeldOutResult | None:
        """The trial's test result: recorded, evaluated now, or retested once in this report."""
        from hpsearch.reporting._testset import evaluate_on_test

        if trial.number not in self.done:
            self.done[trial.number] = evaluate_on_test(
                self.study, self.spec, trial, self.store, self.data_dir, self.retest
            )
        return self.done[trial.number]


def regularizer_rows(
    study: optuna.Study, spec: StudySpec, ranked: list[FrozenTrial], tester: _Tester
) -> list[list[str]]:
    """One row per setting of each discrete parameter, as in the classic experiment tables."""
    trials = study.get_trials(deepcopy=False)
    rows = []
    for name in discrete_params(trials):
        for value in sorted({t.params[name] for t in trials if name in t.params}, key=str):
            group = [t for t in trials if t.params.get(name) == value]
            done = [t for t in ranked if t.params.get(name) == value]
            values = [float(t.value or 0.0) for t in done]
            test = "-"
            if done:
                try:
                    test = _headline(tester.result(done[0]))
                except BadRecord:
                    test = "bad record (see --retest)"
                except NoWeights:
                    test = "no weights saved"
                except StorageError:
                    test = "weights not kept"
            rows.append(
                [
                    f"{name} = {format_value(value)}",
                    str(len(group)),
                    str(len(done)),
                    f"{max(values) if spec.direction == 'maximize' else min(values):.4f}"
                    if values
                    else "-",
                    f"{statistics.median(values):.4f}" if values else "-",
                    f"#{done[0].number}: {test}" if done else "-",
                ]
            )
    return rows


def economy_lines(
    trials: list[FrozenTrial], curve: Anytime | None, target: int, max_epochs: int
) -> list[str]:
    """Epochs spent against the study's total of full trials, and when the best came."""
    lines = [epochs_text(epochs_run(trials), target, max_epochs)]
    if curve is not None:
        best = curve.points[-1][1]
        lines.append(
            anytime_text(best, curve.found_at, curve.best_trial, curve.since, curve.trials_since)
        )
    return lines


def cost(trials: list[FrozenTrial], spec: StudySpec) -> list[tuple[str, str]]:
    """What the study cost: trial time, epochs (failed trials' too), pruning's saving, rate."""
    histories = [t.user_attrs.get(_keys.HISTORY, []) for t in trials]
    epochs = epochs_run(trials)
    timed = sum(len(h) for h in histories)
    per_epoch = sum(e.get("seconds", 0.0) for h in histories for e in h) / timed if timed else 0.0
    saved, basis = pruning_saved(trials, spec.max_epochs)
    busy_h = busy_seconds(trials) / 3600
    finished = sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    return [
        ("trial time (start to end, summed over trials)", format_duration(trial_seconds(trials))),
        ("epochs run (failed trials included)", str(epochs)),
        (
            "epochs saved by pruning (estimate)",
            f"{saved:.0f} (about {format_duration(saved * per_epoch)}; {basis})",
        ),
        ("finished trials per hour of running time", f"{finished / busy_h:.1f}" if busy_h else "-"),
        ("time per epoch", f"{per_epoch:.2f} s"),
    ]


def trial_seconds(trials: list[FrozenTrial]) -> float:
    """Each trial's wall time from start to end (building and saving included), summed."""
    return sum(
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in trials
        if t.datetime_start and t.datetime_complete
    )


def pruning_saved(trials: list[FrozenTrial], max_epochs: int) -> tuple[float, str]:
    """Epochs pruned trials did not run, had they run as long as the completed ones did.

    Completed trials stop early too, so max_epochs would overstate the saving; it is only the
    fallback when no trial completed.
    """
    done = [trial_epochs(t) for t in trials if t.state.name == "COMPLETE"]
    expected = sum(done) / len(done) if done else float(max_epochs)
    basis = (
        f"as if each pruned trial ran {expected:.1f} epochs, the completed trials' mean"
        if done
        else f"an upper bound, {max_epochs} epochs each: no trial completed"
    )
    ran = [trial_epochs(t) for t in trials if t.state.name == "PRUNED"]
    return sum(max(0.0, expected - n) for n in ran), basis


def busy_seconds(trials: list[FrozenTrial]) -> float:
    """Time during which some trial was running: the union of the trials' intervals.

    Parallel workers overlap and a resumed study has idle gaps; neither should count.
    """
    spans = sorted(
        (t.datetime_start, t.datetime_complete)
        for t in trials
        if t.datetime_start and t.datetime_complete
    )
    total, end = 0.0, None
    for start, stop in spans:
        if end is None or start > end:
            total, end = total + (stop - start).total_seconds(), stop
        elif stop > end:
            total, end = total + (stop - end).total_seconds(), stop
    return total


def _table(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table with escaped cells."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _image(path: Path) -> str:
    """An <img> with the PNG embedded, so index.html needs no other file, server or network."""
    data = base64.b64encode(path.read_bytes()).decode()
    image = f'<img src="data:image/png;base64,{data}" alt="{path.stem}">'
    return f"<figure>{image}<figcaption>{path.name}</figcaption></figure>"


def _headline(result: HeldOutResult | None) -> str:
    """'accuracy 0.9801', or a dash when the study has no test function."""
    if result is None:
        return "no test configured"
    name, value = result.headline
    return f"{name} {value:.4f}"


def _test_html(test: HeldOutResult | None, reason: str | None = None) -> str:
    """The test paragraph and tables, or the sentence saying why there is none."""
    if test is None:
        return f"<p>{html.escape(reason or NO_TEST)}</p>"
    name, value = test.headline
    others = [[k, f"{v:.4f}"] for k, v in test.metrics.items() if k != name]
    per_class = [[c, f"{a:.4f}"] for c, a in zip(test.classes, test.per_class, strict=False)]
    return (
        f'<p><b>Test {html.escape(name)}: <span id="test-{html.escape(name)}">{value:.4f}</span>'
        "</b> on the held-out data (evaluated once, recorded on the study for trial "
        f"#{test.trial}).</p>"
        + (_table(["test metric", "value"], others) if others else "")
        + (
            f"<h3>Per-class test accuracy</h3>{_table(['class', 'accuracy'], per_class)}"
            if per_class
            else ""
        )
    )


def _economy_html(lines: list[str]) -> str:
    """The economy lines as paragraphs, the same words `hpsearch status` prints."""
    ids = ("economy-epochs", "economy-best")
    return "".join(
        f'<p id="{id_}">{html.escape(line)}</p>' for id_, line in zip(ids, lines, strict=False)
    )


def _failures_html(trials: list[FrozenTrial]) -> str:
    """Each failed trial and its error; nothing when none failed."""
    rows = [
        [
            f"#{t.number}",
            str(t.user_attrs.get(_keys.ERROR, NO_ERROR)),
        ]
        for t in trials
        if t.state.name == "FAIL"
    ]
    return f"<h2>Failed trials</h2>{_table(['trial', 'error'], rows)}" if rows else ""


def _page(
    study: optuna.Study,
    spec: StudySpec,
    best: FrozenTrial,
    tested: tuple[HeldOutResult | None, str | None],
    pngs: list[Path],
    rows: list[list[str]],
    costs: list[tuple[str, str]],
    economy: list[str],
    running: bool,
    status_text: str,
) -> str:
    """The whole page; `tested` is the test result, or None and why there is none."""
    manifest = dict(study.user_attrs.get(_keys.MANIFEST) or {})
    file_text = manifest.pop("study_file", spec.text)
    status = f"<p{' class=warn' if running else ''}>{html.escape(status_text)}</p>"
    params = [[k, format_value(v)] for k, v in sorted(best.params.items())]
    changes = study.user_attrs.get(_keys.SPEC_CHANGES) or []
    manifest_rows = [
        [k, json.dumps(v) if isinstance(v, dict) else str(v)] for k, v in manifest.items()
    ]
    change_rows = [[f"{c['time']}: {'; '.join(c['changes'])}"] for c in changes]
    change_table = _table(["recorded change"], change_rows) if changes else ""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>hpsearch report: {html.escape(spec.name)}</title>
<style>{STYLE}</style></head>
<body><h1>Study {html.escape(spec.name)}</h1>{status}
<h2>Best trial (selected by validation)</h2>
<p>Trial #{best.number}: validation {html.escape(spec.metric)} = {best.value:.4f}.</p>
{_test_html(*tested)}
{_table(["parameter", "value"], params)}
<h2>Regularizers</h2>
{_table(REGULARIZER_HEADER, rows)}
{_failures_html(study.get_trials(deepcopy=False))}
<h2>Economy</h2>{_economy_html(economy)}
<h2>Cost</h2>{_table(["", ""], [list(c) for c in costs])}
<h2>Figures</h2>{"".join(_image(p) for p in pngs)}
<h2>Manifest</h2>{_table(["key", "value"], manifest_rows)}{change_table}
<h3>Study file</h3><pre>{html.escape(file_text)}</pre>
<script>{COUNT_IMAGES}</script>
</body></html>
"""


def manifest_lines(study: optuna.Study) -> list[str]:
    """The manifest as text lines for the terminal."""
    record = dict(study.user_attrs.get(_keys.MANIFEST) or {})
    record.pop("study_file", None)
    return [f"  {k}: {json.dumps(v) if isinstance(v, dict) else v}" for k, v in record.items()]


def default_out(name: str) -> Path:
    """reports/<study>/ in the working directory."""
    return Path("reports") / name


def describe(report: Report, metric: str) -> list[str]:
    """The terminal summary of a written report."""
    test = report.test
    if test is None:
        tested = report.untested
    else:
        how = "as recorded"
        if test.evaluated_now:
            how = "evaluated now and recorded" + (", replacing the earlier record" * test.replaced)
        tested = f"test {_headline(test)} ({how})"
    lines = [
        f"best trial #{report.best.number}: validation {metric} = {report.best.value:.4f}",
        tested,
        *report.economy,
        f"wrote {report.index} and {len(report.figures)} figures",
    ]
    if report.running:
        lines.insert(0, f"note: {report.status}")
    return lines
