"""Thin click commands; the library raises HPSearchError and this module prints one line."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from hpsearch.errors import INTERRUPTED_EXIT, HPSearchError
from hpsearch.storages._rdb import DEFAULT_STORAGE

if TYPE_CHECKING:
    import optuna

    from hpsearch.spec import StudySpec

F = TypeVar("F", bound=Callable[..., Any])

storage_option = click.option(
    "--storage",
    envvar="HPSEARCH_STORAGE",
    default=DEFAULT_STORAGE,
    show_default=True,
    help="SQLAlchemy URL of the trial database (env HPSEARCH_STORAGE).",
)
data_dir_option = click.option(
    "--data-dir",
    envvar="HPSEARCH_DATA_DIR",
    default="data",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder holding the data sets (env HPSEARCH_DATA_DIR); MNIST is downloaded there "
    "when absent and online.",
)
artifacts_option = click.option(
    "--artifacts",
    envvar="HPSEARCH_ARTIFACTS",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the best trials' weights (env HPSEARCH_ARTIFACTS; default: <db>-artifacts "
    "beside a SQLite file). Workers on several machines need a shared one.",
)
study_option = click.option(
    "--study",
    "study",
    required=True,
    help="A study name from studies/ (see `hpsearch studies`) or a path to a .toml file.",
)


def stored_study(
    study: str, storage: str, with_code: bool = False
) -> tuple[StudySpec, optuna.Study]:
    """The study file's spec and its stored study (a clear error when it is not there).

    `with_code` also imports the objective's code, for the commands that run it.
    """
    from hpsearch.study._connect import load_stored

    return load_stored(study, storage, with_code)


def translate_errors(func: F) -> F:
    """Turn library errors into click's one-line 'Error: ...' and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HPSearchError as exc:
            raise click.ClickException(exc.for_command_line()) from None

    return wrapper  # type: ignore[return-value]


class OneLineErrors(click.Group):
    """click's usage errors (a bad option value) as one 'Error:' line, like every other error."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a reader that closed the pipe (`| head -1`) ends it quietly, with 0."""
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            import os

            # Python would flush stdout again at exit and fail on the closed pipe once more.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Run with click's own error printing off, then print usage errors on one line."""
        import atexit
        import gc

        from click.exceptions import NoArgsIsHelpError

        # Registered first, so it runs last: the objects torch, Optuna and SQLAlchemy made are
        # not traversed again at exit (about 2 s of teardown); storage is closed by then.
        atexit.unregister(gc.freeze)  # once, however often main runs in this process
        atexit.register(gc.freeze)
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except NoArgsIsHelpError as exc:  # bare `hpsearch`: the help, as click prints it
            click.echo(exc.format_message(), err=True)
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
            click.echo(f"Error: {exc.format_message()}{where}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hpsearch")
def main() -> None:
    """Hyperparameter search for PyTorch models, on Optuna."""


DASHBOARD_PORT = 8080
COUNT = click.IntRange(min=1)  # trials, epochs, threads, workers: at least one
TRIALS_HELP = (
    "The study's TOTAL number of finished (complete or pruned) trials. Trials already in "
    "storage count toward it, so re-running the same command after an interruption runs only "
    "the remainder."
)


def training_options(func: F) -> F:
    """Options shared by `run` and `worker`: data, device, overrides, heartbeats."""
    options = [
        data_dir_option,
        click.option(
            "--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:<i>."
        ),
        click.option("--seed", type=int, default=None, help="Override the study file's seed."),
        click.option(
            "--timeout", type=float, default=None, help="Stop starting trials after S seconds."
        ),
        click.option(
            "--max-epochs", type=COUNT, default=None, help="Override training.max_epochs."
        ),
        click.option("--progress/--no-progress", default=True, help="Show the live progress line."),
        click.option("-v", "--verbose", is_flag=True, help="Show Optuna's own log lines."),
        click.option(
            "--log-file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="Also write Optuna's log lines to this file (appended).",
        ),
        click.option(
            "--heartbeat",
            type=int,
            default=10,
            show_default=True,
            help="Seconds between a running trial's heartbeats.",
        ),
        artifacts_option,
        click.option(
            "--allow-changed-spec",
            is_flag=True,
            help="Resume even though the study file or data changed since the study was "
            "created; the change is recorded on the study.",
        ),
        click.option(
            "--grace-period",
            type=int,
            default=60,
            show_default=True,
            help="A trial silent this long (its worker died) is marked failed and retried.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def interrupted() -> NoReturn:
    """The Ctrl-C message: what is kept and how to resume."""
    click.echo(
        "\ninterrupted: finished trials are stored, cut-off ones are marked failed; "
        "re-run the same command to resume",
        err=True,
    )
    sys.exit(INTERRUPTED_EXIT)


@main.command()
@study_option
@click.option("--trials", type=COUNT, required=True, help=TRIALS_HELP)
@storage_option
@training_options
@click.option(
    "--workers",
    type=COUNT,
    default=None,
    help="Run K workers on the storage (on CPU this process and K-1 more). Default: one per "
    "GPU on GPUs, else one single-thread worker per CPU core, since separate processes train "
    "small models faster than one process with several threads. --workers 1 keeps one process.",
)
@click.option("--gpus", default=None, help="GPUs for the workers: 'all' or indices like 0,1.")
@click.option(
    "--workers-per-gpu", type=COUNT, default=1, show_default=True, help="Pack small models."
)
@click.option(
    "--threads",
    type=COUNT,
    default=None,
    help="torch CPU threads per worker (default: the cores shared equally among the workers). "
    "Lower it when other jobs share the machine: oversubscribed threads slow training sharply.",
)
@click.option(
    "--dashboard",
    is_flag=True,
    help="Serve optuna-dashboard on 127.0.0.1 while the run goes on; it stops with the run.",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="The dashboard's port, with --dashboard.  [default: 8080]",
)
@translate_errors
def run(study: str, trials: int, dashboard: bool, port: int | None, **kwargs: Any) -> None:
    """Run a study until it holds --trials finished trials."""
    from hpsearch.reporting._summaries import describe_run
    from hpsearch.spec import load_spec
    from hpsearch.study._run import run as run_study

    if port is not None and not dashboard:
        raise click.UsageError("--port sets the dashboard's port; add --dashboard or drop --port")
    spec = load_spec(study)
    try:
        summary = run_study(
            spec, trials, dashboard_port=(port or DASHBOARD_PORT) if dashboard else None, **kwargs
        )
    except KeyboardInterrupt:
        interrupted()
    click.echo("\n".join(describe_run(summary, spec.metric)))


@main.command()
@study_option
@click.option("--trials", type=COUNT, required=True, help=TRIALS_HELP)
@storage_option
@click.option("--seed", type=int, default=None, help="Override the study file's seed.")
@click.option(
    "--allow-changed-spec", is_flag=True, help="Accept (and record) a changed study file."
)
@translate_errors
def create(
    study: str, trials: int, storage: str, seed: int | None, allow_changed_spec: bool
) -> None:
    """Create a study (or change its total) without running trials, for workers to join."""
    from hpsearch.study._run import create as create_study

    summary = create_study(
        study, trials, storage=storage, seed=seed, allow_changed_spec=allow_changed_spec
    )
    click.echo(
        f"study {summary.name}: total {summary.target} trials, {summary.finished} finished so far"
    )


@main.command()
@study_option
@click.option(
    "--trials",
    type=COUNT,
    default=None,
    help="Override the total recorded on the study by `create` or `run`.",
)
@storage_option
@training_options
@click.option("--threads", type=COUNT, default=None, help="torch CPU threads for this worker.")
@click.option(
    "--tag",
    envvar="HPSEARCH_WORKER_TAG",
    default=None,
    help="This worker's name on its trials and in `status`, also mixed into its sampler's seed "
    "(env HPSEARCH_WORKER_TAG; default: host name and process id).",
)
@click.option(
    "--launched",
    is_flag=True,
    hidden=True,
    help="Started by `run`, which prints the interrupt and the summary, once.",
)
@translate_errors
def worker(study: str, launched: bool, **kwargs: Any) -> None:
    """Join an existing study and run trials until its total is reached."""
    from hpsearch.reporting._summaries import describe_run
    from hpsearch.spec import load_spec
    from hpsearch.study._run import join

    spec = load_spec(study)
    try:
        summary = join(spec, **kwargs)
    except KeyboardInterrupt:
        if launched:
            sys.exit(INTERRUPTED_EXIT)
        interrupted()
    if not launched:
        click.echo("\n".join(describe_run(summary, spec.metric)))


@main.command()
def studies() -> None:
    """List the shipped study files, one line each."""
    from hpsearch.spec import list_study_files, read_spec

    for path in list_study_files():
        try:
            spec = read_spec(str(path))  # without importing each study's own code
        except HPSearchError as exc:
            click.echo(f"{path.stem:<16} (invalid: {exc})")
            continue
        model = "own objective" if spec.objective else spec.data.dataset
        kind = f"{model}, {spec.sampler.kind}, {spec.pruner.kind} pruner"
        click.echo(f"{spec.name:<16} {kind:<40} {spec.description}")


@main.command()
@study_option
@storage_option
@translate_errors
def best(study: str, storage: str) -> None:
    """Show the best trial: value, parameters, epochs and time."""
    from hpsearch.errors import StorageError
    from hpsearch.reporting._summaries import describe_failures, describe_trial

    spec, loaded = stored_study(study, storage)
    try:
        trial = loaded.best_trial
    except ValueError:
        pruned = sum(t.state.name == "PRUNED" for t in loaded.get_trials(deepcopy=False))
        fix = (
            f"all {pruned} finished trials were pruned; loosen [pruner] (e.g. a larger "
            "n_warmup_steps) or raise --trials to run more"
            if pruned
            else f"run `hpsearch run --study {study}` first"
        )
        raise StorageError(f"study '{spec.name}' has no completed trial yet; {fix}") from None
    click.echo("\n".join(describe_trial(trial, spec.metric)))
    failures = describe_failures(loaded.get_trials(deepcopy=False))
    if failures:
        click.echo("\n".join(failures))


@main.command()
@study_option
@storage_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object, for scripts.")
@click.option("--watch", is_flag=True, help="Refresh in place every few seconds until Ctrl-C.")
@click.option(
    "--grace-period",
    type=click.FloatRange(min=0, min_open=True),
    default=60,
    show_default=True,
    help="A running trial whose heartbeat is older than this is marked stale.",
)
@translate_errors
def status(study: str, storage: str, as_json: bool, watch: bool, grace_period: float) -> None:
    """Show finished/total, the best value, the rate, each running trial and recent failures."""
    import json
    import time

    from hpsearch.reporting._status import status_lines, study_status

    spec, loaded = stored_study(study, storage)
    try:
        while True:
            now = study_status(loaded, spec.metric, grace_period)
            text = json.dumps(now) if as_json else "\n".join(status_lines(now))
            if watch and sys.stdout.isatty():
                click.echo("\x1b[H\x1b[2J", nl=False)  # in place: home and clear the screen
            click.echo(text)
            if not watch:
                return
            time.sleep(WATCH_S)
    except KeyboardInterrupt:
        click.echo("stopped watching", err=True)
        sys.exit(INTERRUPTED_EXIT)


WATCH_S = 3.0


@main.command()
@study_option
@storage_option
@translate_errors
def ranges(study: str, storage: str) -> None:
    """Show how a narrowing study's ranges shrank, round by round."""
    from hpsearch.errors import StorageError
    from hpsearch.reporting._summaries import ranges_table

    spec, loaded = stored_study(study, storage)
    lines = ranges_table(loaded.get_trials(deepcopy=False), spec.direction == "maximize")
    if not lines:
        raise StorageError(
            f"study '{spec.name}' has no narrowing rounds; its sampler is '{spec.sampler.kind}' "
            '(use a study file with sampler kind = "narrowing", e.g. mnist-narrow)'
        )
    click.echo("\n".join(lines))


@main.command()
@study_option
@storage_option
@translate_errors
def show(study: str, storage: str) -> None:
    """Print the study file the stored study really runs with, every default filled in."""
    from hpsearch.spec import to_toml
    from hpsearch.study._manifest import recorded_spec

    spec, loaded = stored_study(study, storage)
    effective = recorded_spec(loaded, spec)
    click.echo(
        f"# study '{effective.name}' as stored: every default filled in, with --seed, "
        "--max-epochs and any change allowed by --allow-changed-spec applied"
    )
    click.echo(to_toml(effective), nl=False)


@main.command()
@click.option("--study", "study", default=None, help="Check that this study exists first.")
@storage_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=DASHBOARD_PORT, show_default=True)
@artifacts_option
@translate_errors
def dashboard(
    study: str | None, storage: str, host: str, port: int, artifacts: Path | None
) -> None:
    """Serve optuna-dashboard on the storage (trial histories and narrowing ranges included)."""
    from hpsearch.reporting._dashboard import serve
    from hpsearch.storages._artifacts import default_dir

    if study is not None:
        stored_study(study, storage)  # fails clearly when the study is not there
    serve(storage, host, port, artifacts or default_dir(storage))


@main.command()
@study_option
@storage_option
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file instead of standard output.",
)
@translate_errors
def export(study: str, storage: str, fmt: str, output: Path | None) -> None:
    """Write one record per trial (parameters, state, value, epochs, time, host; JSON: history)."""
    from hpsearch.errors import UsageError
    from hpsearch.reporting._export import to_csv, to_json, write_whole

    _, loaded = stored_study(study, storage)
    text = to_csv(loaded) if fmt == "csv" else to_json(loaded)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        write_whole(output, text)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror}; choose another -o path") from None
    click.echo(f"wrote {len(loaded.trials)} trials to {output}")


@main.command()
@study_option
@click.option("--trial", "number", type=int, required=True, help="The trial number to retrain.")
@storage_option
@data_dir_option
@click.option("--device", default="cpu", show_default=True, help="cpu reproduces exactly.")
@click.option(
    "--threads", type=COUNT, default=None, help="torch CPU threads (use the trial's own)."
)
@translate_errors
def rerun(
    study: str, number: int, storage: str, data_dir: Path, device: str, threads: int | None
) -> None:
    """Retrain a trial from its recorded parameters and seed, and compare with the stored value."""
    from hpsearch.objectives._train import set_threads
    from hpsearch.reporting._rerun import rerun as retrain

    set_threads(threads)  # checks the value before anything loads
    spec, loaded = stored_study(study, storage, with_code=True)
    result = retrain(loaded, spec, number, data_dir, device, threads)
    stored = "none" if result.stored is None else f"{result.stored!r}"
    click.echo(f"trial #{result.number} ({result.state}): stored {spec.metric} = {stored}")
    click.echo(f"retrained on {result.device} with {result.threads} threads: {result.retrained!r}")
    if result.stored is None:
        click.echo("the trial has no stored value to compare (pruned or failed)")
    elif result.retrained == result.stored:
        click.echo("identical: the trial reproduces exactly")
    else:
        click.echo(f"difference: {result.retrained - result.stored:+.6g}{result.hint()}")


@main.command()
@study_option
@storage_option
@data_dir_option
@artifacts_option
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Report folder (default: reports/<study>).",
)
@click.option(
    "--retest",
    is_flag=True,
    help="Evaluate the shown trials on test again, replacing their records (after fixing test).",
)
@translate_errors
def report(
    study: str,
    storage: str,
    data_dir: Path,
    artifacts: Path | None,
    output: Path | None,
    retest: bool,
) -> None:
    """Write reports/<study>/index.html: best trial on test (once), figures, tables, manifest."""
    from hpsearch.reporting._html import build_report, default_out, describe, manifest_lines
    from hpsearch.storages._artifacts import default_dir, store_for
    from hpsearch.study._manifest import recorded_spec

    spec, loaded = stored_study(study, storage, with_code=True)
    spec = recorded_spec(loaded, spec)
    store = store_for(artifacts or default_dir(storage))  # report only reads
    out = output or default_out(spec.name)
    written = build_report(loaded, spec, store, data_dir, out, retest=retest)
    click.echo("manifest:")
    click.echo("\n".join(manifest_lines(loaded)))
    click.echo("\n".join(describe(written, spec.metric)))
