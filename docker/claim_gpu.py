#!/usr/bin/env python3
"""Claim one GPU that no other worker on this host holds, then exec the given command on it.

Why: Compose cannot give each replica of a scaled service its own GPU. A device reservation
with `count: 1` makes Docker pass GPU 0 to every replica (docker/compose#11863,
NVIDIA/nvidia-container-toolkit#521), so `--scale worker=4` would stack four workers on one
GPU. Instead each worker container sees all GPUs (`count: all`) and this entrypoint picks the
first GPU whose lock file it can flock, on a volume shared by all workers, then runs the
command with CUDA_VISIBLE_DEVICES set to that GPU. The lock is held by an inherited file
descriptor for the life of the command, so it is released when the worker exits or dies, and
a restarted worker claims a free GPU again.

Usage: claim-gpu COMMAND [ARGS...]   (in the image: claim-gpu hpsearch worker --study NAME)
Environment: GPU_LOCK_DIR (default /gpu-locks); GPU_COUNT overrides the detected count;
a CUDA_VISIBLE_DEVICES already set limits the choice to those GPUs.
"""

from __future__ import annotations

import fcntl
import os
import sys

EXIT_NO_GPU = 3  # no GPU visible at all: a configuration error
EXIT_ALL_CLAIMED = 0  # every GPU has a worker: this one is surplus and stays down


def visible_gpus() -> list[str]:
    """CUDA ids of the GPUs this container may use.

    CUDA_VISIBLE_DEVICES when already set (a subset chosen by the user), else 0..N-1 with N from
    GPU_COUNT or from CUDA itself.
    """
    preset = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if preset:
        return [d.strip() for d in preset.split(",") if d.strip()]
    override = os.environ.get("GPU_COUNT", "").strip()
    if override:
        count = int(override)
    else:
        import torch

        count = int(torch.cuda.device_count())
    return [str(i) for i in range(count)]


def claim(lock_dir: str, gpus: list[str]) -> tuple[str, int] | None:
    """(gpu id, locked fd) for the first GPU no other process holds, or None when all are."""
    os.makedirs(lock_dir, exist_ok=True)
    for gpu in gpus:
        name = "gpu" + "".join(c if c.isalnum() or c in "-_" else "_" for c in gpu) + ".lock"
        fd = os.open(os.path.join(lock_dir, name), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return gpu, fd
    return None


def main(argv: list[str]) -> int:
    """Claim a GPU and exec argv on it; a clear one-line error when there is none to claim."""
    if not argv:
        print("usage: claim-gpu COMMAND [ARGS...]", file=sys.stderr)
        return 2
    lock_dir = os.environ.get("GPU_LOCK_DIR", "/gpu-locks")
    gpus = visible_gpus()
    count = len(gpus)
    if count == 0:
        print(
            "claim-gpu: no GPU is visible in this container; install the NVIDIA Container "
            "Toolkit on the host, or run `hpsearch worker --device cpu` without Docker",
            file=sys.stderr,
        )
        return EXIT_NO_GPU
    claimed = claim(lock_dir, gpus)
    if claimed is None:  # exit cleanly: `restart: on-failure` must not start it again forever
        print(
            f"claim-gpu: all {count} GPU(s) already have a worker, so this one stays down; "
            f"scale the workers to at most {count} (docker compose up --scale worker={count})",
            file=sys.stderr,
        )
        return EXIT_ALL_CLAIMED
    gpu, fd = claimed
    os.set_inheritable(fd, True)  # the lock lives as long as the exec'd command
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    print(f"claim-gpu: GPU {gpu} (of {count}) -> {' '.join(argv)}", file=sys.stderr, flush=True)
    os.execvp(argv[0], argv)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
