"""How many generated files each test tries: a bounded, reproducible sample in CI, more on demand.

HPSEARCH_HYPOTHESIS_PROFILE=thorough runs the on-demand profile (at least 200 valid files end to
end, 500 invalid ones); unset or "ci", every test draws the same few examples on every run.
Neither profile keeps Hypothesis's example database: a failure prints the blob to reproduce it.
"""

from __future__ import annotations

import os
from collections import Counter

from hypothesis import HealthCheck, Phase, settings

PROFILE_VARIABLE = "HPSEARCH_HYPOTHESIS_PROFILE"
_COMMON = {
    "deadline": None,  # a file runs processes: seconds, never the same twice
    "database": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("hpsearch-ci", derandomize=True, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("hpsearch-thorough", derandomize=False, **_COMMON)  # type: ignore[arg-type]


def profile() -> str:
    """The profile the environment asks for: "ci" or "thorough"."""
    name = os.environ.get(PROFILE_VARIABLE, "ci") or "ci"
    if name not in ("ci", "thorough"):
        raise ValueError(f"{PROFILE_VARIABLE}={name!r}: use ci or thorough")
    return name


def budget(ci: int, thorough: int, shrink: bool = True) -> settings:
    """Hypothesis settings of the active profile, with this test's number of examples.

    `shrink=False` reports a failing example as drawn, for tests whose examples take seconds.
    """
    name = profile()
    parent = settings.get_profile(f"hpsearch-{name}")
    phases = [p for p in Phase if shrink or p not in (Phase.shrink, Phase.explain)]
    return settings(parent, max_examples=ci if name == "ci" else thorough, phases=phases)


# What the generated-file tests did: by test, (outcome, kind of file) -> how many.
TALLY: dict[str, Counter[tuple[str, str]]] = {}


def count(test: str, outcome: str, kind: str) -> None:
    """Record one example's outcome (e.g. "tried", "clean") for the end-of-session summary.

    HPSEARCH_SPEC_TALLY=FILE also appends it there as it happens, so a long on-demand run that
    is stopped early still says how far it got.
    """
    TALLY.setdefault(test, Counter())[outcome, kind] += 1
    if os.environ.get("HPSEARCH_SPEC_TALLY"):
        with open(os.environ["HPSEARCH_SPEC_TALLY"], "a", encoding="utf-8") as out:
            out.write(f"{test}\t{outcome}\t{kind}\n")


def summary() -> list[str]:
    """Per test: its profile and each outcome's total, then each outcome by kind of file."""
    lines = []
    for test, tally in sorted(TALLY.items()):
        totals: Counter[str] = Counter()
        for (outcome, _), n in tally.items():
            totals[outcome] += n
        lines.append(f"{test} [{profile()}]: " + ", ".join(f"{n} {o}" for o, n in totals.items()))
        for outcome in totals:
            kinds = sorted((k, n) for (o, k), n in tally.items() if o == outcome)
            lines.append(f"    {outcome}: " + ", ".join(f"{k} {n}" for k, n in kinds))
    return lines
