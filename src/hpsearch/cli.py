"""Thin click commands; the library raises HPSearchError and this module prints one line."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from hpsearch.errors import HPSearchError
from hpsearch.storage import DEFAULT_STORAGE

F = TypeVar("F", bound=Callable[..., Any])

storage_option = click.option(
    "--storage",
    envvar="HPSEARCH_STORAGE",
    default=DEFAULT_STORAGE,
    show_default=True,
    help="SQLAlchemy URL of the trial database (env HPSEARCH_STORAGE).",
)
study_option = click.option(
    "--study",
    "study",
    required=True,
    help="A study name from studies/ (see `hpsearch studies`) or a path to a .toml file.",
)


def translate_errors(func: F) -> F:
    """Turn library errors into click's one-line 'Error: ...' and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HPSearchError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hpsearch")
def main() -> None:
    """Hyperparameter search for PyTorch models, on Optuna."""


@main.command()
@study_option
@click.option(
    "--trials",
    type=int,
    required=True,
    help="The study's TOTAL number of finished (complete or pruned) trials. Trials already in "
    "storage count toward it, so re-running the same command after an interruption runs only "
    "the remainder.",
)
@storage_option
@click.option(
    "--data-dir",
    envvar="HPSEARCH_DATA_DIR",
    default="data",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder holding the data sets (env HPSEARCH_DATA_DIR); MNIST is downloaded there "
    "when absent and online.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:<i>.")
@click.option("--seed", type=int, default=None, help="Override the study file's seed.")
@click.option(
    "--timeout", type=float, default=None, help="Stop starting trials after this many seconds."
)
@click.option("--max-epochs", type=int, default=None, help="Override training.max_epochs.")
@click.option("--progress/--no-progress", default=True, help="Show the live progress bar.")
@translate_errors
def run(
    study: str,
    trials: int,
    storage: str,
    data_dir: Path,
    device: str,
    seed: int | None,
    timeout: float | None,
    max_epochs: int | None,
    progress: bool,
) -> None:
    """Run a study until it holds --trials finished trials."""
    from hpsearch.report import describe_run
    from hpsearch.search import RunOptions, run_study
    from hpsearch.spec import load_spec

    spec = load_spec(study)
    opts = RunOptions(trials, storage, data_dir, device, seed, timeout, max_epochs, progress)
    try:
        summary = run_study(spec, opts)
    except KeyboardInterrupt:
        click.echo(
            "\ninterrupted: finished trials are stored, the running one is marked failed; "
            "re-run the same command to resume",
            err=True,
        )
        sys.exit(130)
    click.echo("\n".join(describe_run(summary, spec.training.metric)))


@main.command()
def studies() -> None:
    """List the shipped study files, one line each."""
    from hpsearch.spec import list_study_files, load_spec

    for path in list_study_files():
        try:
            spec = load_spec(str(path))
        except HPSearchError as exc:
            click.echo(f"{path.stem:<16} (invalid: {exc})")
            continue
        kind = f"{spec.data.dataset}, {spec.sampler.kind}, {spec.pruner.kind} pruner"
        click.echo(f"{spec.name:<16} {kind:<32} {spec.description}")


@main.command()
@study_option
@storage_option
@translate_errors
def best(study: str, storage: str) -> None:
    """Show the best trial: value, parameters, epochs and time."""
    from hpsearch.errors import StorageError
    from hpsearch.report import describe_trial
    from hpsearch.spec import load_spec
    from hpsearch.storage import load_study

    spec = load_spec(study)
    loaded = load_study(storage, spec.name)
    try:
        trial = loaded.best_trial
    except ValueError:
        raise StorageError(
            f"study '{spec.name}' has no completed trial yet; run `hpsearch run --study {study}` "
            "first"
        ) from None
    click.echo("\n".join(describe_trial(trial, spec.training.metric)))


@main.command()
@study_option
@storage_option
@translate_errors
def ranges(study: str, storage: str) -> None:
    """Show how a narrowing study's ranges shrank, round by round."""
    from hpsearch.errors import StorageError
    from hpsearch.report import ranges_table
    from hpsearch.spec import load_spec
    from hpsearch.storage import load_study

    spec = load_spec(study)
    loaded = load_study(storage, spec.name)
    lines = ranges_table(loaded.get_trials(deepcopy=False), spec.direction == "maximize")
    if not lines:
        raise StorageError(
            f"study '{spec.name}' has no narrowing rounds; its sampler is '{spec.sampler.kind}' "
            '(use a study file with sampler kind = "narrowing", e.g. mnist-narrow)'
        )
    click.echo("\n".join(lines))


@main.command()
@click.option("--study", "study", default=None, help="Check that this study exists first.")
@storage_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=int, default=8080, show_default=True)
@translate_errors
def dashboard(study: str | None, storage: str, host: str, port: int) -> None:
    """Serve optuna-dashboard on the storage (trial histories and narrowing ranges included)."""
    from hpsearch.dashboard import serve

    if study is not None:
        from hpsearch.spec import load_spec
        from hpsearch.storage import load_study

        load_study(storage, load_spec(study).name)
    serve(storage, host, port)
