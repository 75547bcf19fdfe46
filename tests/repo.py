"""Where the checkout's folders are, for tests in any sub-folder of tests/."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
TEST_DATA = TESTS / "data"  # the committed real MNIST and flowers subsets
