"""Detection quality benchmark: driftline's drift decision on cases with known truth.

    python benchmarks/detection.py            # full run (a few minutes on 2 cores)
    python benchmarks/detection.py --quick    # small run, for a smoke test

Every case draws a reference sample and a current sample of the same size ``n`` from seeded
generators, profiles both (``driftline.profile``; the current one binned into the reference's
bins, as the serving path does) and asks ``decide_drift`` with the default ``DriftPolicy``. A
case alarms when the feature comes out "warning" or "critical". The same samples also go through
the usual recipes, side by side:

* **scipy p<.05**: ``scipy.stats.ks_2samp`` on numeric features, ``chi2_contingency`` over the
  categories for categorical ones, alarm at p < 0.05 (no effect size, no correction);
* **PSI>0.1** / **PSI>0.2**: population stability index over 10 reference deciles (numeric) or
  the categories, alarm above the rule-of-thumb thresholds.

The baselines see present values only (as they usually do after ``dropna``), so they cannot see
a change of the missing rate; driftline tests the missing rate as well.

Sections and targets (from issue 3):

1. no drift, n = 200 ... 200k, on normal, skewed (log-normal), multimodal, tied-integer
   (Poisson), zero-inflated and categorical (5, 50 and 1,000 long-tailed categories) features:
   false alarms <= 5% at every size and on every distribution;
2. negligible shifts (mean +0.02 SD; total variation 0.02 over 50 or 1,000 categories):
   alarms <= 5% at 200k;
3. real drift (mean +0.1 / +0.25 / +0.5 SD, variance x1.5, a new mode, a category mix change,
   a new category, missing rate 0 -> 5% and 0 -> 20%): mean detection >= 90% at n >= 20k and
   >= 75% at 2k;
4. concept drift and label-free accuracy estimation, from ``benchmarks/detection_concept.py``
   when that module exists.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing as mp
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from driftline.drift import decide_drift, psi_counts
from driftline.profile import (
    CategoricalProfile,
    DatasetProfile,
    FeatureProfile,
    NumericProfile,
    quantile_edges,
)

Generator = Callable[[np.random.Generator, int], np.ndarray]
METHODS = ("driftline", "scipy p<.05", "PSI>0.1", "PSI>0.2")

# --- generators -----------------------------------------------------------------------------


def normal(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(0.0, 1.0, n)


def skewed(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.lognormal(0.0, 1.0, n)


def multimodal(rng: np.random.Generator, n: int) -> np.ndarray:
    part = rng.choice(3, size=n, p=[0.3, 0.5, 0.2])
    return np.array([-2.0, 1.0, 4.0])[part] + np.array([0.5, 1.0, 0.7])[part] * rng.normal(
        size=n
    )


def tied_integer(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.poisson(3.0, n).astype(np.float64)


def zero_inflated(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.where(rng.random(n) < 0.7, 0.0, rng.exponential(2.0, n))


def zipf(k: int, a: float = 1.1) -> np.ndarray:
    weights = 1.0 / np.arange(1, k + 1) ** a
    return weights / weights.sum()


def categorical(p: np.ndarray, labels: np.ndarray | None = None) -> Generator:
    names = labels if labels is not None else np.array([f"v{i}" for i in range(len(p))], object)

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        return names[rng.choice(len(p), size=n, p=p)]

    return draw


def shifted(base: Generator, by: float) -> Generator:
    return lambda rng, n: base(rng, n) + by


def scaled(base: Generator, factor: float) -> Generator:
    return lambda rng, n: base(rng, n) * factor


def with_new_mode(base: Generator, share: float, at: float, sd: float) -> Generator:
    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        x = base(rng, n)
        new = rng.random(n) < share
        x[new] = rng.normal(at, sd, int(new.sum()))
        return x

    return draw


def with_missing(base: Generator, rate: float) -> Generator:
    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        x = base(rng, n)
        x[rng.random(n) < rate] = np.nan
        return x

    return draw


def moved(p: np.ndarray, amount: float, source: int, target: int) -> np.ndarray:
    q = p.copy()
    q[source] -= amount
    q[target] += amount
    return q


def with_new_category(k: int, share: float) -> tuple[np.ndarray, np.ndarray]:
    p = np.append(zipf(k) * (1 - share), share)
    labels = np.array([f"v{i}" for i in range(k)] + ["brand-new"], dtype=object)
    return p, labels


@dataclass(frozen=True)
class Case:
    name: str
    reference: Generator
    current: Generator
    kind: str  # "numeric" | "categorical"


CAT5, CAT50, CAT1000 = zipf(5), zipf(50), zipf(1000)
NO_DRIFT = [
    Case("normal", normal, normal, "numeric"),
    Case("skewed", skewed, skewed, "numeric"),
    Case("multimodal", multimodal, multimodal, "numeric"),
    Case("tied-integer", tied_integer, tied_integer, "numeric"),
    Case("zero-inflated", zero_inflated, zero_inflated, "numeric"),
    Case("cat-5", categorical(CAT5), categorical(CAT5), "categorical"),
    Case("cat-50", categorical(CAT50), categorical(CAT50), "categorical"),
    Case("cat-1000", categorical(CAT1000), categorical(CAT1000), "categorical"),
]
NEGLIGIBLE = [
    Case("mean +0.02 SD", normal, shifted(normal, 0.02), "numeric"),
    Case("skewed +0.02 SD", skewed, shifted(skewed, 0.02 * float(np.sqrt((np.e - 1) * np.e))),
         "numeric"),
    Case("cat-50 TV 0.02", categorical(CAT50), categorical(moved(CAT50, 0.02, 0, 1)),
         "categorical"),
    Case("cat-1000 TV 0.02", categorical(CAT1000), categorical(moved(CAT1000, 0.02, 0, 1)),
         "categorical"),
]
_NEW_P, _NEW_LABELS = with_new_category(50, 0.10)
REAL = [
    Case("mean +0.1 SD", normal, shifted(normal, 0.1), "numeric"),
    Case("mean +0.25 SD", normal, shifted(normal, 0.25), "numeric"),
    Case("mean +0.5 SD", normal, shifted(normal, 0.5), "numeric"),
    Case("variance x1.5", normal, scaled(normal, float(np.sqrt(1.5))), "numeric"),
    Case("new mode (10% at +3 SD)", normal, with_new_mode(normal, 0.10, 3.0, 0.3), "numeric"),
    Case("category mix (TV 0.1)", categorical(CAT5), categorical(moved(CAT5, 0.10, 0, 2)),
         "categorical"),
    Case("new category (10%)", categorical(CAT50), categorical(_NEW_P, _NEW_LABELS),
         "categorical"),
    Case("missing 0 -> 5%", normal, with_missing(normal, 0.05), "numeric"),
    Case("missing 0 -> 20%", normal, with_missing(normal, 0.20), "numeric"),
]
SECTIONS = {"no drift": NO_DRIFT, "negligible": NEGLIGIBLE, "real drift": REAL}


# --- one repetition -------------------------------------------------------------------------


def _profiles(
    case: Case, reference: np.ndarray, current: np.ndarray, rng: np.random.Generator
) -> tuple[DatasetProfile, DatasetProfile]:
    template: FeatureProfile
    if case.kind == "numeric":
        present = reference[np.isfinite(reference)]
        template = NumericProfile.empty(
            quantile_edges(present),
            reference_minimum=float(present.min()),
            reference_maximum=float(present.max()),
            sample_size=0,
        )
        ref, cur = template.empty_like(), template.empty_like()
        ref.add(reference, rng)
        cur.add(current, rng)
    else:
        values, counts = np.unique(reference.astype(str), return_counts=True)
        order = np.lexsort((values, -counts))
        template = CategoricalProfile.empty(values[order].tolist())
        ref, cur = template.empty_like(), template.empty_like()
        ref.add(reference)
        cur.add(current)
    return DatasetProfile({"f": ref}), DatasetProfile({"f": cur})


def _baselines(case: Case, reference: np.ndarray, current: np.ndarray) -> tuple[bool, bool, bool]:
    if case.kind == "numeric":
        r = reference[np.isfinite(reference)]
        c = current[np.isfinite(current)]
        p = float(stats.ks_2samp(r, c).pvalue)
        edges = np.unique(np.quantile(r, np.arange(1, 10) / 10))
        rc = np.bincount(np.searchsorted(edges, r, side="right"), minlength=len(edges) + 1)
        cc = np.bincount(np.searchsorted(edges, c, side="right"), minlength=len(edges) + 1)
    else:
        values = np.unique(np.concatenate([reference, current]).astype(str))
        rc = np.bincount(np.searchsorted(values, reference.astype(str)), minlength=len(values))
        cc = np.bincount(np.searchsorted(values, current.astype(str)), minlength=len(values))
        keep = (rc + cc) > 0
        p = float(stats.chi2_contingency(np.vstack([rc[keep], cc[keep]])).pvalue)
        # PSI over the reference categories and one bucket for values it never had.
        seen = rc > 0
        rc = np.append(rc[seen], 0)
        cc = np.append(cc[seen], cc[~seen].sum())
    value = psi_counts(rc, cc).statistic
    return p < 0.05, value > 0.1, value > 0.2


def run_cell(task: tuple[str, str, int, int]) -> tuple[str, str, int, int, list[int], float]:
    """Alarm counts of every method over ``reps`` repetitions of one case at one size."""
    section, name, n, reps = task
    case = next(c for c in SECTIONS[section] if c.name == name)
    rng = np.random.default_rng(zlib.crc32(f"{section}|{name}|{n}".encode()))
    alarms = [0, 0, 0, 0]
    start = time.perf_counter()
    for _ in range(reps):
        reference = case.reference(rng, n)
        current = case.current(rng, n)
        ref, cur = _profiles(case, reference, current, rng)
        report = decide_drift(ref, cur)
        flags = (report.drifted, *_baselines(case, reference, current))
        for i, flag in enumerate(flags):
            alarms[i] += int(flag)
    return section, name, n, reps, alarms, time.perf_counter() - start


# --- the run --------------------------------------------------------------------------------


def plan(quick: bool) -> list[tuple[str, str, int, int]]:
    if quick:
        sizes = {"no drift": (200, 2_000, 20_000), "negligible": (200_000,),
                 "real drift": (2_000, 20_000)}
        reps = {200: 40, 2_000: 40, 20_000: 20, 200_000: 6}
    else:
        sizes = {"no drift": (200, 2_000, 20_000, 200_000), "negligible": (20_000, 200_000),
                 "real drift": (200, 2_000, 20_000, 200_000)}
        reps = {200: 400, 2_000: 300, 20_000: 150, 200_000: 40}
    tasks = []
    for section, cases in SECTIONS.items():
        for case in cases:
            for n in sizes[section]:
                r = reps[n]
                if section == "real drift" and n == 200_000:
                    r = max(4, r // 2)
                tasks.append((section, case.name, n, r))
    # Longest first, so that two workers finish together.
    return sorted(tasks, key=lambda t: -t[2] * t[3])


def _pct(count: int, reps: int) -> str:
    return f"{100.0 * count / reps:5.1f}%"


def print_section(
    title: str, rows: list[tuple[str, int, int, list[int]]], note: str = ""
) -> None:
    print(f"\n== {title} ==")
    if note:
        print(note)
    print(f"{'case':<26}{'n':>8}{'reps':>6}  " + "".join(f"{m:>13}" for m in METHODS))
    for name, n, reps, alarms in rows:
        print(
            f"{name:<26}{n:>8}{reps:>6}  " + "".join(f"{_pct(a, reps):>13}" for a in alarms)
        )


def _load_concept() -> Any | None:
    path = Path(__file__).with_name("detection_concept.py")
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("detection_concept", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules["detection_concept"] = module
    spec.loader.exec_module(module)
    return module


def print_records(title: str, records: list[dict[str, Any]]) -> None:
    print(f"\n== {title} ==")
    if not records:
        print("(no cases)")
        return
    columns = list(dict.fromkeys(k for r in records for k in r))
    widths = {
        c: max(len(c), *(len(_cell(r.get(c))) for r in records)) + 2 for c in columns
    }
    print("".join(f"{c:<{widths[c]}}" for c in columns))
    for r in records:
        print("".join(f"{_cell(r.get(c)):<{widths[c]}}" for c in columns))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "" if value is None else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small run for a smoke test")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    args = parser.parse_args(argv)
    tasks = plan(args.quick)
    start = time.perf_counter()
    results: dict[tuple[str, str, int], tuple[int, list[int]]] = {}
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        for section, name, n, reps, alarms, _ in pool.imap_unordered(run_cell, tasks):
            results[(section, name, n)] = (reps, alarms)
    elapsed = time.perf_counter() - start

    def rows(section: str) -> list[tuple[str, int, int, list[int]]]:
        out = []
        for case in SECTIONS[section]:
            for (s, name, n), (reps, alarms) in sorted(results.items(), key=lambda kv: kv[0][2]):
                if s == section and name == case.name:
                    out.append((name, n, reps, alarms))
        return out

    print(f"driftline detection benchmark ({'quick' if args.quick else 'full'} run, "
          f"{args.jobs} workers, {elapsed:.0f} s)")
    print("Alarm rate per method; driftline = decide_drift(reference, window) with the "
          "default DriftPolicy.")
    verdicts: list[str] = []

    no_drift = rows("no drift")
    print_section("1. No drift: false alarms (target <= 5% at every size and distribution)",
                  no_drift)
    worst = max(no_drift, key=lambda r: r[3][0] / r[2])
    ok = all(a[0] / r <= 0.05 for _, _, r, a in no_drift)
    verdicts.append(
        f"false alarms <= 5% everywhere: {'MET' if ok else 'MISSED'} "
        f"(worst {worst[0]} n={worst[1]}: {_pct(worst[3][0], worst[2]).strip()})"
    )
    for i, method in enumerate(METHODS[1:], start=1):
        worst_b = max(no_drift, key=lambda r, i=i: r[3][i] / r[2])
        verdicts.append(
            f"   baseline {method}: worst {worst_b[0]} n={worst_b[1]}: "
            f"{_pct(worst_b[3][i], worst_b[2]).strip()}"
        )

    negligible = rows("negligible")
    print_section("2. Negligible shifts: alarms (target <= 5% at 200k)", negligible)
    big = [r for r in negligible if r[1] >= 200_000]
    if big:
        worst = max(big, key=lambda r: r[3][0] / r[2])
        ok = all(a[0] / r <= 0.05 for _, _, r, a in big)
        verdicts.append(
            f"negligible-shift alarms <= 5% at 200k: {'MET' if ok else 'MISSED'} "
            f"(worst {worst[0]}: {_pct(worst[3][0], worst[2]).strip()})"
        )

    real = rows("real drift")
    print_section("3. Real drift: detection rate", real,
                  "(baselines see present values only, so they miss missing-rate changes)")
    print()
    for n in sorted({r[1] for r in real}):
        at_n = [r for r in real if r[1] == n]
        means = [np.mean([a[i] / reps for _, _, reps, a in at_n]) for i in range(len(METHODS))]
        print(f"mean detection at n={n:>7}: " + "  ".join(
            f"{m} {100 * v:5.1f}%" for m, v in zip(METHODS, means, strict=True)))
        target = 0.90 if n >= 20_000 else 0.75 if n >= 2_000 else None
        if target is not None:
            verdicts.append(
                f"mean detection at n={n}: {100 * means[0]:.1f}% (target >= {target:.0%}): "
                f"{'MET' if means[0] >= target else 'MISSED'}"
            )

    concept = _load_concept()
    if concept is None:
        print("\n== 4. Concept drift and label-free accuracy ==")
        print("section missing: benchmarks/detection_concept.py does not exist yet")
    else:
        print_records("4a. Concept drift (detection_concept.run_concept_cases)",
                      concept.run_concept_cases(args.quick))
        print_records("4b. Label-free accuracy (detection_concept.run_cbpe_cases)",
                      concept.run_cbpe_cases(args.quick))

    print("\n== Targets ==")
    for line in verdicts:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
