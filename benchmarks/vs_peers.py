"""The best model per minute: hpsearch against the tools a user would pick instead (issue #30).

One tuning job, run under each system in turn on this machine, for the same wall-clock budget:
the mnist-reg MLP (hidden 500-400-300-200-100-50, LeakyReLU 0.01, BatchNorm or dropout, He init,
Adam, cosine schedule over 20 epochs), its split (train and validation drawn from the 60,000
MNIST training images with split seed 0), its search space (lr 1e-4..1e-1 log, weight decay
1e-6..1e-2 log, batch size 32..512, BatchNorm on/off, dropout 0.1..0.5 step 0.1 only without
BatchNorm) and at most 20 epochs per trial. Every system runs 2 trials at a time, one torch
thread each, and its clock starts when its processes are launched (start-up included).

Systems (`--systems`, default all):
  hpsearch            `hpsearch run --study <file> --trials 10000 --timeout <budget>` with its
                      defaults (2 workers here), <file> being studies/mnist-reg.toml as it is at
                      run time, with only the data sizes (cheap profiles), the seed, and
                      keep_weights (so every completed trial keeps its weights) overridden.
  hpsearch-narrowing  the same from studies/mnist-narrow.toml.
  optuna              Optuna alone, as a user would write it: TPESampler (group=True for the
                      conditional dropout; Optuna 5's multivariate TPE and constant liar are
                      its defaults) and HyperbandPruner(min_resource=1, max_resource=20), 2
                      worker processes on one journal-file storage, a plain PyTorch loop.
  ray-asha            Ray Tune: ASHAScheduler(max_t=20, grace_period=1) with its default search
                      (BasicVariantGenerator: random), 2 concurrent trials of 1 CPU each,
                      reuse_actors=True.
  ray-asha-optuna     the same with ray.tune.search.optuna.OptunaSearch (its TPE).
The peers' loop is what a competent user writes: whole tensors in memory, batches by a seeded
permutation, torch.optim.Adam with its default flags, nn.Dropout; hpsearch's own speed-ups
(fused Adam, its cheaper dropout mask) are part of hpsearch and are not given to the peers.
The peers' trial returns (and keeps the weights of) its best epoch, as hpsearch's does.

Selection rule (the same for every system): at each checkpoint t, among the trials that had
COMPLETED by t (ran to their own end: 20 epochs, or hpsearch's own early stopping; trials
stopped by a pruner or scheduler, or still running, do not count), take the one with the
highest validation accuracy of its kept (best-epoch) weights; ties go to the earlier one. Its
score is those weights' accuracy on the 10,000 MNIST test images. With no completed trial by
t, the system has nothing to offer: "none", which ranks below every number in the median.
Test accuracy is computed only after the run (from hpsearch's stored weights, via the code
behind `hpsearch report`; from the weights each peer trial saved on completion), and only for
the trials that were the pick at some moment: selection never reads it. Also recorded per
checkpoint: epochs trained by then (both workers together) and trials started by then.
hpsearch's epoch end times are rebuilt from each trial's per-epoch seconds, anchored at its
end (finished trials) or start (unfinished); the peers log a timestamp per epoch.

Each system and seed runs in its own fresh temp folder with its own storage, one at a time;
at the budget its processes get SIGINT, then SIGKILL after 30 s. Ctrl-C stops the current run
the same way and keeps the finished runs. The table gives the median and range (min-max) over
seeds per system and checkpoint.

Profiles: full (48,000 train / 12,000 valid, 20 min, checkpoints 2.5, 5, 10, 20 min: what
benchmarks/RESULTS.md reports), cheap (12,000 / 3,000, 4 min, checkpoints 0.5, 1, 2, 4 min:
for iterating) and smoke (2,000 / 1,000, 40 s: only checks that every system runs end to end).

Set-up (peers live in their own venv, never in hpsearch's):
    python3 -m venv .venv-peers
    .venv-peers/bin/pip install torch==2.14.1 torchvision==0.29.1 optuna==5.1.0 \\
        -r benchmarks/requirements-peers.txt
Commands (from the repository root, hpsearch's venv active, nothing else running):
    HPSEARCH_DATA_DIR=../shared/data python benchmarks/vs_peers.py --profile full --seeds 3 \\
        --peer-python .venv-peers/bin/python --out reports/vs-peers-full      # about 5.5 h
    HPSEARCH_DATA_DIR=../shared/data python benchmarks/vs_peers.py --profile cheap --seeds 3 \\
        --peer-python .venv-peers/bin/python --out reports/vs-peers-cheap     # about 1.2 h
    python benchmarks/vs_peers.py --summarize reports/vs-peers-full   # table.md, vs_peers.png
--out gets results.json (every run's raw per-trial curves), table.md and vs_peers.png; a
rerun with the same --out and profile skips the system-seed runs already in results.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
import warnings
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    import torch
    from torch import nn

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SYSTEMS = ("hpsearch", "hpsearch-narrowing", "optuna", "ray-asha", "ray-asha-optuna")
STUDY_FILES = {"hpsearch": "mnist-reg.toml", "hpsearch-narrowing": "mnist-narrow.toml"}
HIDDEN = (500, 400, 300, 200, 100, 50)
NEGATIVE_SLOPE = 0.01
MAX_EPOCHS = 20
BATCH_SIZES = (32, 64, 128, 256, 512)
DROPOUTS = (0.1, 0.2, 0.3, 0.4, 0.5)
SPLIT_SEED = 0
WORKERS = 2
GRACE_S = 30.0  # after SIGINT, before SIGKILL
KEEP_ALL = 100_000  # keep_weights for the hpsearch runs: every completed trial keeps its weights
Trial = dict[str, Any]  # one trial's raw record in results.json
Run = dict[str, Any]  # one system-seed run in results.json
DASH = "\u2013"  # between a range's ends


@dataclass(frozen=True)
class Profile:
    """The data sizes, the budget and the checkpoints of one profile."""

    name: str
    train_size: int
    valid_size: int
    budget_s: float
    checkpoints_s: tuple[float, ...]


PROFILES = {
    "full": Profile("full", 48000, 12000, 1200.0, (150.0, 300.0, 600.0, 1200.0)),
    "cheap": Profile("cheap", 12000, 3000, 240.0, (30.0, 60.0, 120.0, 240.0)),
    "smoke": Profile("smoke", 2000, 1000, 40.0, (10.0, 20.0, 30.0, 40.0)),
}


# ---------------------------------------------------------------- the peers' job (stdlib + torch)


@dataclass(frozen=True)
class Split:
    """Train and validation tensors, flattened and normalized with the train split's statistics."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_valid: torch.Tensor
    y_valid: torch.Tensor


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file of unsigned bytes (MNIST's format) as a uint8 tensor."""
    import numpy as np
    import torch

    with path.open("rb") as file:
        header = file.read(4)
        shape = [int(d) for d in np.frombuffer(file.read(4 * header[3]), dtype=">u4")]
        return torch.from_numpy(np.fromfile(file, dtype=np.uint8).reshape(shape))


def mnist(data_dir: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as float N x 784 in [0, 1] and int64 labels, from data_dir/MNIST/raw."""
    raw = data_dir / "MNIST" / "raw"
    stem = "train" if train else "t10k"
    images = read_idx(raw / f"{stem}-images-idx3-ubyte")
    labels = read_idx(raw / f"{stem}-labels-idx1-ubyte").long()
    return images.reshape(len(images), -1).float().div_(255.0), labels


def load_split(data_dir: Path, train_size: int, valid_size: int) -> tuple[Split, float, float]:
    """hpsearch's split (validation first in a seeded permutation), and the train mean and std."""
    import torch

    x, y = mnist(data_dir, train=True)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(SPLIT_SEED))
    valid, train = order[:valid_size], order[valid_size : valid_size + train_size]
    x_train = x[train]
    mean, std = float(x_train.mean()), float(x_train.std())
    split = Split((x_train - mean) / std, y[train], (x[valid] - mean) / std, y[valid])
    return split, mean, std


def load_test(
    data_dir: Path, train_size: int, valid_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The 10,000 test images, normalized with the train split's statistics."""
    _, mean, std = load_split(data_dir, train_size, valid_size)
    x, y = mnist(data_dir, train=False)
    return (x - mean) / std, y


def build_model(batch_norm: bool, dropout: float) -> nn.Sequential:
    """The mnist-reg MLP: Linear, LeakyReLU, then BatchNorm1d or Dropout per block; He init."""
    from torch import nn

    layers: list[nn.Module] = []
    width = 28 * 28
    for size in HIDDEN:
        norm: nn.Module = nn.BatchNorm1d(size) if batch_norm else nn.Dropout(dropout)
        layers += [nn.Linear(width, size), nn.LeakyReLU(NEGATIVE_SLOPE), norm]
        width = size
    layers.append(nn.Linear(width, 10))
    model = nn.Sequential(*layers)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight, a=NEGATIVE_SLOPE, nonlinearity="leaky_relu")
            nn.init.zeros_(module.bias)
    return model


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy in eval mode, in batches of 4,096."""
    import torch

    model.eval()
    with torch.inference_mode():
        hits = sum(
            int((model(x[i : i + 4096]).argmax(1) == y[i : i + 4096]).sum())
            for i in range(0, len(x), 4096)
        )
    return hits / len(x)


class Trainer:
    """One peer trial: the model, Adam and a per-epoch cosine schedule, an epoch at a time."""

    def __init__(self, params: dict[str, Any], split: Split, seed: int) -> None:
        """Build the model and optimizer for these hyperparameters, seeded."""
        import torch

        torch.manual_seed(seed)
        self.split = split
        self.batch_size = int(params["batch_size"])
        self.model = build_model(bool(params["batch_norm"]), float(params.get("dropout", 0.0)))
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"]
        )
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, MAX_EPOCHS)
        self.generator = torch.Generator().manual_seed(seed)
        self.best_valid = -1.0
        self.best_state: dict[str, torch.Tensor] = {}

    def epoch(self) -> float:
        """Train one pass, step the schedule, keep the best epoch; its validation accuracy."""
        self.train_pass()
        self.schedule.step()
        valid = accuracy(self.model, self.split.x_valid, self.split.y_valid)
        if valid > self.best_valid:
            self.best_valid = valid
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return valid

    def train_pass(self) -> None:
        """One pass over the shuffled train split with cross-entropy."""
        import torch
        import torch.nn.functional as F

        self.model.train()
        x, y = self.split.x_train, self.split.y_train
        order = torch.randperm(len(y), generator=self.generator)
        for start in range(0, len(y), self.batch_size):
            idx = order[start : start + self.batch_size]
            if len(idx) < 2:
                continue  # BatchNorm cannot train on a batch of one
            loss = F.cross_entropy(self.model(x.index_select(0, idx)), y.index_select(0, idx))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            self.optimizer.step()

    def save_best(self, path: Path) -> None:
        """The best epoch's weights, for the test evaluation after the run."""
        import torch

        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.best_state, path)


class Events:
    """Timestamped JSON lines, one file per process, that the parent reads after the run."""

    def __init__(self, folder: Path) -> None:
        """Events go to folder/events-<pid>.jsonl."""
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"events-{os.getpid()}.jsonl"

    def write(self, **record: Any) -> None:
        """Append one event, stamped with the wall clock."""
        with self.path.open("a") as file:
            file.write(json.dumps({"t": time.time(), **record}) + "\n")


def trial_seed(run_seed: int, trial: str) -> int:
    """A torch seed for one peer trial."""
    return zlib.crc32(f"{run_seed}:{trial}".encode())


def suggest(trial: optuna.Trial) -> dict[str, Any]:
    """The mnist-reg space, define-by-run: dropout only without BatchNorm."""
    params: dict[str, Any] = {
        "lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", list(BATCH_SIZES)),
        "batch_norm": trial.suggest_categorical("batch_norm", [True, False]),
    }
    if not params["batch_norm"]:
        params["dropout"] = trial.suggest_float("dropout", 0.1, 0.5, step=0.1)
    return params


def optuna_objective(trial: optuna.Trial, split: Split, job: dict[str, Any]) -> float:
    """Train one trial, reporting validation accuracy per epoch to the Hyperband pruner."""
    import optuna

    events, name = Events(Path(job["folder"]) / "events"), str(trial.number)
    params = suggest(trial)
    events.write(kind="start", trial=name, params=params)
    trainer = Trainer(params, split, trial_seed(job["seed"], name))
    for epoch in range(1, MAX_EPOCHS + 1):
        valid = trainer.epoch()
        events.write(kind="epoch", trial=name, epoch=epoch, valid=valid)
        trial.report(valid, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned
    trainer.save_best(Path(job["folder"]) / "weights" / f"{name}.pt")
    events.write(kind="done", trial=name, value=trainer.best_valid)
    return trainer.best_valid


def optuna_worker(job: dict[str, Any]) -> None:
    """One of the Optuna system's two worker processes, until the deadline."""
    import optuna
    import torch
    from optuna.storages.journal import JournalFileBackend

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    split, _, _ = load_split(Path(job["data_dir"]), job["train_size"], job["valid_size"])
    storage = optuna.storages.JournalStorage(JournalFileBackend(job["storage"]))
    study = optuna.create_study(
        study_name="vs-peers",
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=job["seed"] * WORKERS + job["index"], group=True),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=MAX_EPOCHS),
        direction="maximize",
        load_if_exists=True,
    )
    remaining = max(job["deadline"] - time.time(), 1.0)
    study.optimize(lambda trial: optuna_objective(trial, split, job), timeout=remaining)


_SPLITS: dict[tuple[str, int, int], Split] = {}  # a reused Ray actor loads the data once


def ray_trainable(config: dict[str, Any], job: dict[str, Any]) -> None:
    """One Ray Tune trial: report validation accuracy per epoch; ASHA may stop it."""
    import torch
    from ray import tune  # type: ignore[import-not-found]

    torch.set_num_threads(1)
    events, name = Events(Path(job["folder"]) / "events"), uuid.uuid4().hex[:12]
    params = {k: config[k] for k in ("lr", "weight_decay", "batch_size", "batch_norm")}
    if not params["batch_norm"]:
        params["dropout"] = config["dropout"]
    events.write(kind="start", trial=name, params=params)
    key = (job["data_dir"], job["train_size"], job["valid_size"])
    if key not in _SPLITS:
        _SPLITS[key] = load_split(Path(job["data_dir"]), job["train_size"], job["valid_size"])[0]
    trainer = Trainer(params, _SPLITS[key], trial_seed(job["seed"], name))
    for epoch in range(1, MAX_EPOCHS + 1):
        valid = trainer.epoch()
        events.write(kind="epoch", trial=name, epoch=epoch, valid=valid)
        if epoch == MAX_EPOCHS:  # before the last report: Ray may end the function there
            trainer.save_best(Path(job["folder"]) / "weights" / f"{name}.pt")
            events.write(kind="done", trial=name, value=trainer.best_valid)
        tune.report({"valid_accuracy": valid})


def ray_space(trial: optuna.Trial) -> None:
    """OptunaSearch's define-by-run space: the same as the Optuna system's."""
    suggest(trial)


def ray_driver(job: dict[str, Any]) -> None:
    """Ray Tune with ASHA, its default random search or OptunaSearch, until the deadline."""
    import ray  # type: ignore[import-not-found]
    from ray import tune  # type: ignore[import-not-found]
    from ray.tune.schedulers import ASHAScheduler  # type: ignore[import-not-found]
    from ray.tune.search import BasicVariantGenerator  # type: ignore[import-not-found]

    ray.init(num_cpus=WORKERS, include_dashboard=False, _temp_dir=job["ray_temp"])
    space: dict[str, Any] | None = None
    if job["search"] == "optuna":
        from ray.tune.search.optuna import OptunaSearch  # type: ignore[import-not-found]

        search: Any = OptunaSearch(ray_space, "valid_accuracy", "max", seed=job["seed"])
    else:
        search = BasicVariantGenerator(random_state=job["seed"], max_concurrent=WORKERS)
        space = {
            "lr": tune.loguniform(1e-4, 1e-1),
            "weight_decay": tune.loguniform(1e-6, 1e-2),
            "batch_size": tune.choice(list(BATCH_SIZES)),
            "batch_norm": tune.choice([True, False]),
            "dropout": tune.choice(list(DROPOUTS)),  # used only without BatchNorm
        }
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(ray_trainable, job=job), {"cpu": 1}),
        param_space=space,
        tune_config=tune.TuneConfig(
            metric="valid_accuracy",
            mode="max",
            scheduler=ASHAScheduler(max_t=MAX_EPOCHS, grace_period=1),
            search_alg=search,
            num_samples=-1,
            max_concurrent_trials=WORKERS if job["search"] == "optuna" else None,  # else: above
            time_budget_s=max(job["deadline"] - time.time(), 1.0),
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(storage_path=job["folder"] + "/ray_results", verbose=0),
    )
    tuner.fit()
    ray.shutdown()


def worker_main(kind: str, job: dict[str, Any]) -> None:
    """The entry point of a peer's process (run by --peer-python)."""
    if kind == "optuna":
        optuna_worker(job)
    elif kind == "ray":
        ray_driver(job)
    else:
        raise SystemExit(f"unknown worker kind {kind!r}")


# ---------------------------------------------------------------- running one system-seed


def set_toml(text: str, table: str, key: str, value: str) -> str:
    """`key = value` in [table] ('' for the top level), the rest of the file kept as it is."""
    lines = text.splitlines()
    headers = [i for i, line in enumerate(lines) if re.match(r"\s*\[", line)]
    if table:
        at = next(i for i in headers if re.match(rf"\s*\[{re.escape(table)}\]", lines[i]))
        begin, end = at + 1, next((i for i in headers if i > at), len(lines))
    else:
        begin, end = 0, headers[0] if headers else len(lines)
    new = f"{key} = {value}   # set by benchmarks/vs_peers.py"
    for i in range(begin, end):
        if re.match(rf"\s*{re.escape(key)}\s*=", lines[i]):
            lines[i] = new
            return "\n".join(lines) + "\n"
    lines.insert(begin if table else end, new)
    return "\n".join(lines) + "\n"


def study_file(system: str, profile: Profile, folder: Path) -> Path:
    """The system's study file as it is now, with the profile's data sizes and all weights kept."""
    text = (REPO / "studies" / STUDY_FILES[system]).read_text()
    text = set_toml(text, "data", "train_size", str(profile.train_size))
    text = set_toml(text, "data", "valid_size", str(profile.valid_size))
    text = set_toml(text, "", "keep_weights", str(KEEP_ALL))
    parsed = tomllib.loads(text)
    got = (parsed["data"]["train_size"], parsed["data"]["valid_size"], parsed["keep_weights"])
    assert got == (profile.train_size, profile.valid_size, KEEP_ALL), got
    note_job_changes(system, parsed)
    path = folder / STUDY_FILES[system]
    path.write_text(text)
    return path


def note_job_changes(system: str, parsed: dict[str, Any]) -> None:
    """Say so when the study file's job no longer matches the one the peers run."""
    hidden = tuple(parsed.get("model", {}).get("hidden", HIDDEN))
    epochs = parsed.get("training", {}).get("max_epochs", MAX_EPOCHS)
    if hidden != HIDDEN or epochs != MAX_EPOCHS:
        print(
            f"note: {STUDY_FILES[system]} now has hidden {hidden}, max_epochs {epochs}; the "
            f"peers still run hidden {HIDDEN}, {MAX_EPOCHS} epochs",
            flush=True,
        )


def launch(
    system: str, seed: int, args: argparse.Namespace, folder: Path, log: Any, deadline: float
) -> list[subprocess.Popen[bytes]]:
    """Start the system's processes (the clock has started); the peers get the deadline."""
    profile = PROFILES[args.profile]
    job: dict[str, Any] = {
        "folder": str(folder),
        "data_dir": str(args.data_dir.resolve()),
        "train_size": profile.train_size,
        "valid_size": profile.valid_size,
        "seed": seed,
        "deadline": deadline,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPSEARCH_")}
    env |= {"HPSEARCH_DATA_DIR": job["data_dir"], "PYTHONUNBUFFERED": "1"}
    if system in STUDY_FILES:
        cmd = hpsearch_command(study_file(system, profile, folder), seed, profile)
        return [spawn(cmd, env, folder, log)]
    env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    script = [args.peer_python, str(Path(__file__).resolve()), "_worker"]
    if system == "optuna":
        job["storage"] = str(folder / "journal.log")
        return [
            spawn([*script, "optuna", json.dumps(job | {"index": i})], env, folder, log)
            for i in range(WORKERS)
        ]
    job["search"] = "optuna" if system == "ray-asha-optuna" else "random"
    job["ray_temp"] = str(folder / "ray")
    return [spawn([*script, "ray", json.dumps(job)], env, folder, log)]


def spawn(cmd: list[str], env: dict[str, str], folder: Path, log: Any) -> subprocess.Popen[bytes]:
    """One process in its own session (Ctrl-C reaches only this script), output to the log."""
    return subprocess.Popen(
        cmd, env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def hpsearch_command(path: Path, seed: int, profile: Profile) -> list[str]:
    """`hpsearch run` with its defaults, in the run's folder."""
    return [
        sys.executable, "-m", "hpsearch", "run", "--study", str(path), "--trials", "10000",
        "--timeout", f"{profile.budget_s:g}", "--seed", str(seed), "--no-progress",
        "--storage", f"sqlite:///{path.parent / 'hpsearch.db'}",
    ]  # fmt: skip


def process_tree(roots: Iterable[int]) -> dict[int, str]:
    """Every live process under the roots (the roots too), by pid, with its start time."""
    children: dict[int, list[int]] = {}
    started: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        started[int(entry.name)] = fields[19]
    found: dict[int, str] = {}
    stack = list(roots)
    while stack:
        pid = stack.pop()
        if pid in started and pid not in found:
            found[pid] = started[pid]
            stack += children.get(pid, [])
    return found


def wait_until(
    procs: Sequence[subprocess.Popen[bytes]], deadline: float, seen: dict[int, str]
) -> bool:
    """Until the deadline or until all have exited, noting every process they start.

    False when one failed before the deadline (it exited with an error).
    """
    while time.time() < deadline and any(p.poll() is None for p in procs):
        seen.update(process_tree(p.pid for p in procs))
        if any(p.poll() for p in procs):
            return False
        time.sleep(min(2.0, max(deadline - time.time(), 0.0)))
    return not any(p.poll() for p in procs)


def stop(procs: Sequence[subprocess.Popen[bytes]], seen: dict[int, str]) -> None:
    """SIGINT to each process group, then SIGKILL to whatever of theirs is left after GRACE_S."""
    seen.update(process_tree(p.pid for p in procs))
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
    limit = time.time() + GRACE_S
    while time.time() < limit and any(p.poll() is None for p in procs):
        seen.update(process_tree(p.pid for p in procs))
        time.sleep(0.5)
    now = process_tree(seen)
    ours = [pid for pid, started in seen.items() if now.get(pid) == started]  # not a reused pid
    for pid in process_tree(ours):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for proc in procs:
        proc.wait()


def run_one(system: str, seed: int, profile: Profile, args: argparse.Namespace) -> Run:
    """One system-seed run in a fresh temp folder: its raw per-trial record."""
    folder = Path(tempfile.mkdtemp(prefix="vsp-"))  # short: Ray's socket paths must fit
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    started = time.time()
    try:
        with (folder / "log.txt").open("wb") as log:
            seen: dict[int, str] = {}
            procs = launch(system, seed, args, folder, log, started + profile.budget_s)
            try:
                ok = wait_until(procs, started + profile.budget_s, seen)
            finally:
                stop(procs, seen)
        wall = time.time() - started
        if not ok:
            tail = (folder / "log.txt").read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError(
                f"{system} seed {seed} failed after {wall:.0f} s (exit codes "
                f"{[p.returncode for p in procs]}); its log ends:\n" + "\n".join(tail)
            )
        codes = [p.returncode for p in procs]
        trials = collect(system, folder, started, profile, args.data_dir)
    finally:
        if (folder / "log.txt").exists():
            shutil.copy(folder / "log.txt", logs / f"{system}-seed{seed}.log")
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "system": system,
        "seed": seed,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "wall_s": round(wall, 2),
        "exit_codes": codes,
        "load_before": [round(x, 2) for x in load],
        "trials": trials,
    }


# ---------------------------------------------------------------- reading what a run left


def collect(
    system: str, folder: Path, started: float, profile: Profile, data_dir: Path
) -> list[Trial]:
    """Every trial of the run, with test accuracy for the trials that were ever the pick."""
    if system in STUDY_FILES:
        return hpsearch_trials(folder, folder / STUDY_FILES[system], started, data_dir)
    trials = peer_trials(folder / "events", started)
    chain = pick_chain(trials)
    if chain:
        x, y = load_test(data_dir, profile.train_size, profile.valid_size)
        for trial in chain:
            trial["test"] = peer_test(folder / "weights" / f"{trial['id']}.pt", trial, x, y)
    return trials


def peer_test(path: Path, trial: Trial, x: torch.Tensor, y: torch.Tensor) -> float:
    """A completed peer trial's kept weights evaluated on the test images."""
    import torch

    params = trial["params"]
    model = build_model(bool(params["batch_norm"]), float(params.get("dropout", 0.0)))
    model.load_state_dict(torch.load(path, weights_only=True))
    return accuracy(model, x, y)


def read_events(folder: Path) -> list[dict[str, Any]]:
    """Every event the peer processes logged, in time order (a torn last line is skipped)."""
    events = []
    for path in sorted(folder.glob("events-*.jsonl")):
        for line in path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                events.append(json.loads(line))
    return sorted(events, key=lambda e: float(e["t"]))


def new_trial(name: str) -> Trial:
    """An empty raw trial record."""
    return {
        "id": name, "start": None, "end": None, "complete": False, "value": None,
        "epoch_ends": [], "valid": [], "test": None, "params": {},
    }  # fmt: skip


def peer_trials(folder: Path, started: float) -> list[Trial]:
    """The peers' trials from their event logs, times in seconds since launch."""
    trials: dict[str, Trial] = {}
    for event in read_events(folder) if folder.is_dir() else []:
        trial = trials.setdefault(str(event["trial"]), new_trial(str(event["trial"])))
        at = round(float(event["t"]) - started, 3)
        if event["kind"] == "start":
            trial["start"], trial["params"] = at, event["params"]
        elif event["kind"] == "epoch":
            trial["epoch_ends"].append(at)
            trial["valid"].append(event["valid"])
        elif event["kind"] == "done":
            trial["end"], trial["complete"], trial["value"] = at, True, event["value"]
    for trial in trials.values():
        if not trial["complete"] and trial["epoch_ends"]:
            trial["end"] = trial["epoch_ends"][-1]
    return list(trials.values())


def hpsearch_trials(folder: Path, path: Path, started: float, data_dir: Path) -> list[Trial]:
    """hpsearch's trials from its database; test accuracy via `hpsearch report`'s code."""
    import optuna

    from hpsearch.reporting._testset import evaluate_on_test
    from hpsearch.spec import load_spec
    from hpsearch.storages._artifacts import default_dir, store_for

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    url = f"sqlite:///{folder / 'hpsearch.db'}"
    if not (folder / "hpsearch.db").exists() or not optuna.get_all_study_names(url):
        return []
    study = optuna.load_study(study_name=optuna.get_all_study_names(url)[0], storage=url)
    frozen = {str(t.number): t for t in study.get_trials(deepcopy=False)}
    trials = [hpsearch_trial(t, started) for t in frozen.values()]
    spec, store = load_spec(str(path)), store_for(default_dir(url))
    for trial in pick_chain(trials):
        result = evaluate_on_test(study, spec, frozen[trial["id"]], store, data_dir)
        trial["test"] = result.metrics["accuracy"] if result else None
    return trials


def hpsearch_trial(t: optuna.trial.FrozenTrial, started: float) -> Trial:
    """One hpsearch trial as a raw record; epoch ends rebuilt from its per-epoch seconds."""
    from optuna.trial import TrialState

    from hpsearch import _keys

    trial = new_trial(str(t.number))
    history = t.user_attrs.get(_keys.HISTORY, [])
    seconds = [float(h.get("seconds", 0.0)) for h in history]
    start = t.datetime_start.timestamp() - started if t.datetime_start else None
    end = t.datetime_complete.timestamp() - started if t.datetime_complete else None
    finished = t.state in (TrialState.COMPLETE, TrialState.PRUNED) and end is not None
    if finished:
        assert end is not None
        ends = [end - sum(seconds[i + 1 :]) for i in range(len(seconds))]
    else:
        ends = [(start or 0.0) + sum(seconds[: i + 1]) for i in range(len(seconds))]
    trial |= {"start": start, "end": end, "params": dict(t.params)}
    trial["epoch_ends"] = [round(x, 3) for x in ends]
    trial["valid"] = [h.get("valid_accuracy") for h in history]
    if t.state == TrialState.COMPLETE:
        best = int(t.user_attrs.get(_keys.BEST_EPOCH, 0))
        kept = history[best - 1].get("valid_accuracy") if 0 < best <= len(history) else t.value
        trial["complete"], trial["value"] = True, kept
    return trial


# ---------------------------------------------------------------- the selection rule and summary


def pick_at(trials: Sequence[Trial], t: float) -> Trial | None:
    """The trial picked at t: the best validation accuracy among those completed by t."""
    done = [x for x in trials if x["complete"] and x["value"] is not None and x["end"] <= t]
    return max(done, key=lambda x: (x["value"], -x["end"]), default=None)


def pick_chain(trials: Sequence[Trial]) -> list[Trial]:
    """Every trial that is the pick at some moment (the ones whose test accuracy is needed)."""
    picks = (pick_at(trials, x["end"]) for x in trials if x["complete"])
    return list({id(p): p for p in picks if p is not None}.values())


def at_checkpoint(run: Run, t: float) -> dict[str, Any]:
    """The pick's test and validation accuracy, epochs trained and trials started by t."""
    trials = run["trials"]
    pick = pick_at(trials, t)
    return {
        "test": pick["test"] if pick else None,
        "valid": pick["value"] if pick else None,
        "trial": pick["id"] if pick else None,
        "epochs": sum(e <= t for x in trials for e in x["epoch_ends"]),
        "trials": sum(x["start"] is not None and x["start"] <= t for x in trials),
    }


def ranked(values: Sequence[float | None]) -> list[float | None]:
    """Values sorted with None (no pick) below every number."""
    return sorted(values, key=lambda v: (v is not None, v or 0.0))


def median(values: Sequence[float | None]) -> float | None:
    """The median over seeds, None ranking lowest; None when it falls on a None."""
    order = ranked(values)
    middle = order[(len(order) - 1) // 2 : len(order) // 2 + 1]
    if not middle or any(v is None for v in middle):
        return None
    return statistics.fmean(v for v in middle if v is not None)


def cell(values: Sequence[float | None], fmt: Callable[[float | None], str]) -> str:
    """'median (min-max)' over seeds (an en dash in the output)."""
    order = ranked(values)
    return f"{fmt(median(values))} ({fmt(order[0])}{DASH}{fmt(order[-1])})"


def percent(value: float | None) -> str:
    """An accuracy as a percentage with two decimals, or 'none'."""
    return "none" if value is None else f"{100 * value:.2f}"


def count(value: float | None) -> str:
    """A count (a median of counts may end in .5)."""
    return "none" if value is None else f"{value:g}"


def label(seconds: float, budget: float) -> str:
    """A checkpoint's column label: minutes for budgets of 2 minutes and more, else seconds."""
    return f"{seconds / 60:g} min" if budget >= 120 else f"{seconds:g} s"


def by_system(results: dict[str, Any]) -> dict[str, list[Run]]:
    """Runs grouped by system, in SYSTEMS order, runs by seed."""
    runs = sorted(results["runs"], key=lambda r: r["seed"])
    names = [s for s in SYSTEMS if any(r["system"] == s for r in runs)]
    names += sorted({r["system"] for r in runs} - set(names))
    return {name: [r for r in runs if r["system"] == name] for name in names}


def table(results: dict[str, Any]) -> str:
    """The Markdown tables: the pick's test accuracy, epochs and trials, per checkpoint."""
    profile = results["profile"]
    checkpoints = profile["checkpoints_s"]
    groups = by_system(results)
    header = "| system | " + " | ".join(label(t, profile["budget_s"]) for t in checkpoints) + " |"
    rule = "|---|" + "---|" * len(checkpoints)
    out = [
        f"### vs peers: profile {profile['name']} ({profile['train_size']:,} train / "
        f"{profile['valid_size']:,} valid, at most {MAX_EPOCHS} epochs, 2 trials at a time, "
        f"{label(profile['budget_s'], profile['budget_s'])} per run)",
        "",
    ]
    blocks = (
        ("Test accuracy (%) of the trial picked by validation accuracy among those completed "
         "by then: median (min-max) over seeds; none: no trial had completed", "test", percent),
        ("Epochs trained by then (both workers): median (min-max)", "epochs", count),
        ("Trials started by then: median (min-max)", "trials", count),
    )  # fmt: skip
    for title, key, fmt in blocks:
        out += [title, "", header, rule]
        for name, runs in groups.items():
            cells = [cell([at_checkpoint(r, t)[key] for r in runs], fmt) for t in checkpoints]
            seeds = f"{len(runs)} seed{'s' if len(runs) != 1 else ''}"
            out.append(f"| {name} ({seeds}) | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def plot(results: dict[str, Any], path: Path) -> None:
    """Three panels against wall-clock minutes: the pick's test accuracy, epochs, trials."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budget = float(results["profile"]["budget_s"])
    grid = [budget * i / 240 for i in range(1, 241)]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    panels = (("test", "test accuracy of the pick (%)", 100.0), ("epochs", "epochs trained", 1.0),
              ("trials", "trials started", 1.0))  # fmt: skip
    for (key, title, scale), ax in zip(panels, axes, strict=True):
        for name, runs in by_system(results).items():
            rows = [[at_checkpoint(r, t)[key] for r in runs] for t in grid]
            mid = [nan_or(median(v), scale) for v in rows]
            low = [nan_or(ranked(v)[0], scale) for v in rows]
            high = [nan_or(ranked(v)[-1], scale) for v in rows]
            minutes = [t / 60 for t in grid]
            ax.step(minutes, mid, where="post", label=f"{name} (median)")
            ax.fill_between(minutes, low, high, step="post", alpha=0.15)
        for t in results["profile"]["checkpoints_s"]:
            ax.axvline(t / 60, color="grey", linestyle=":", linewidth=0.8)
        ax.set_xlabel("wall-clock minutes (start-up included)")
        ax.set_title(title)
    axes[0].set_ylim(*accuracy_limits(results))
    axes[0].legend(fontsize=8, loc="best")
    fig.suptitle(
        f"vs peers, profile {results['profile']['name']}: median and min-max over seeds "
        "(test accuracy shown down to 5 points below the best)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def nan_or(value: float | None, scale: float) -> float:
    """A value scaled for the plot, NaN (a gap) for None."""
    return float("nan") if value is None else value * scale


def accuracy_limits(results: dict[str, Any]) -> tuple[float, float]:
    """Y limits (%) for the checkpoints' values, at most 5 points below the best of them."""
    checkpoints = results["profile"]["checkpoints_s"]
    values = [
        at_checkpoint(r, t)["test"] for runs in by_system(results).values() for r in runs
        for t in checkpoints
    ]  # fmt: skip
    shown = [100 * v for v in values if v is not None]
    if not shown:
        return 0.0, 100.0
    return max(min(shown) - 0.5, max(shown) - 5.0, 0.0), min(max(shown) + 0.3, 100.0)


def write_outputs(results: dict[str, Any], out: Path) -> str:
    """results.json, table.md and vs_peers.png in `out`; returns the table."""
    for run in results["runs"]:
        run["checkpoints"] = {
            f"{t:g}": at_checkpoint(run, t) for t in results["profile"]["checkpoints_s"]
        }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    text = table(results)
    (out / "table.md").write_text(text)
    if results["runs"]:
        plot(results, out / "vs_peers.png")
    return text


# ---------------------------------------------------------------- the command


def check_peers(python: str, systems: Sequence[str]) -> None:
    """Fail now, not after hours, when --peer-python lacks what the chosen peers import."""
    needs = {"optuna": "optuna, torch", "ray-asha": "ray.tune, torch"}
    needs["ray-asha-optuna"] = "ray.tune.search.optuna, optuna, torch"
    for system in systems:
        if system in needs:
            done = subprocess.run([python, "-c", f"import {needs[system]}"], capture_output=True)
            if done.returncode:
                raise SystemExit(
                    f"{system}: {python} cannot import {needs[system]}; install the peers "
                    "(benchmarks/requirements-peers.txt, see this script's docstring) and pass "
                    "--peer-python .venv-peers/bin/python"
                )


def warm(data_dir: Path, systems: Sequence[str]) -> None:
    """Page-cache the MNIST files and build hpsearch's decoded cache, as any earlier run would."""
    for path in (data_dir / "MNIST" / "raw").glob("*-ubyte"):
        path.read_bytes()
    if any(s in STUDY_FILES for s in systems):
        from hpsearch.objectives._data import read_mnist

        read_mnist(data_dir, train=True)
        read_mnist(data_dir, train=False)


def machine() -> dict[str, Any]:
    """What the runs ran on."""
    cpu = ""
    with contextlib.suppress(OSError):
        found = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
        cpu = found.group(1) if found else ""
    return {"cores": len(os.sched_getaffinity(0)), "cpu": cpu, "python": platform.python_version()}


def load_results(out: Path, profile: Profile) -> dict[str, Any]:
    """The results so far in `out` for this profile, or a fresh record."""
    fresh = {"profile": asdict(profile), "machine": machine(), "command": sys.argv, "runs": []}
    path = out / "results.json"
    if not path.exists():
        return fresh
    results: dict[str, Any] = json.loads(path.read_text())
    if results["profile"]["name"] != profile.name:
        raise SystemExit(f"{path} holds profile {results['profile']['name']}; use another --out")
    return results


def run_all(args: argparse.Namespace) -> None:
    """Every chosen system for every seed, one at a time, saving after each run."""
    profile = PROFILES[args.profile]
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown:
        raise SystemExit(f"unknown systems {', '.join(unknown)}; known: {', '.join(SYSTEMS)}")
    check_peers(args.peer_python, systems)
    warm(args.data_dir, systems)
    results = load_results(args.out, profile)
    for seed in range(args.seeds):
        for system in systems:
            if any(r["system"] == system and r["seed"] == seed for r in results["runs"]):
                continue
            print(f"{system} seed {seed}: {profile.budget_s:g} s ...", flush=True)
            try:
                run = run_one(system, seed, profile, args)
            except KeyboardInterrupt:
                write_outputs(results, args.out)
                raise SystemExit(f"interrupted; the finished runs are in {args.out}") from None
            results["runs"].append(run)
            write_outputs(results, args.out)
            print(progress_line(run, profile), flush=True)
    print(write_outputs(results, args.out))


def progress_line(run: Run, profile: Profile) -> str:
    """One run's outcome at the budget."""
    end = at_checkpoint(run, profile.budget_s)
    return (
        f"  {run['system']} seed {run['seed']}: wall {run['wall_s']:.0f} s, "
        f"exit {run['exit_codes']}, {end['epochs']} epochs, {end['trials']} trials started, "
        f"pick #{end['trial']}: valid "
        f"{percent(end['valid'])} %, test {percent(end['test'])} %"
    )


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        epilog="See the module docstring for the selection rule and the exact commands.",
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per system")
    parser.add_argument("--out", type=Path, default=None, help="default reports/vs-peers-PROFILE")
    parser.add_argument("--summarize", type=Path, default=None, help="only re-make the outputs")
    parser.add_argument("--peer-python", default=sys.executable, help="python for the peers")
    data = os.environ.get("HPSEARCH_DATA_DIR", "data")
    parser.add_argument("--data-dir", type=Path, default=Path(data), help="(HPSEARCH_DATA_DIR)")
    args = parser.parse_args(argv)
    args.out = args.out or Path("reports") / f"vs-peers-{args.profile}"
    if os.sep in args.peer_python:  # the runs start in temp folders; not resolved: a venv's link
        args.peer_python = os.path.abspath(args.peer_python)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Run the systems (or only summarize a results folder) and print the table."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_worker"]:
        worker_main(argv[1], json.loads(argv[2]))
        return
    args = parse(argv)
    if args.summarize is not None:
        results = json.loads((args.summarize / "results.json").read_text())
        print(write_outputs(results, args.summarize))
        return
    run_all(args)


if __name__ == "__main__":
    main()
