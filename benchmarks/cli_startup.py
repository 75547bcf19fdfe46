"""Wall time of `hpsearch --help` against bare Python and `import torch`, in the same run.

python benchmarks/cli_startup.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def wall(cmd: list[str], repeats: int) -> float:
    """Median wall time of a command over several runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Print the three medians and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    bare = wall([sys.executable, "-c", "pass"], args.repeats)
    helped = wall([sys.executable, "-m", "hpsearch", "--help"], args.repeats)
    torch_import = wall([sys.executable, "-c", "import torch"], args.repeats)
    print(f"python -c pass: {bare * 1000:.0f} ms")
    print(f"hpsearch --help: {helped * 1000:.0f} ms ({helped / bare:.1f}x bare python)")
    print(f"import torch:   {torch_import * 1000:.0f} ms ({torch_import / helped:.1f}x --help)")


if __name__ == "__main__":
    main()
