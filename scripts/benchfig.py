# Figures shared by the parts of scripts/bench that read ollamax-workload's
# JSON: a row of the tables, percentiles as ollamax-workload ranks them,
# latencies pooled over seeds.
import math

TIERS = ("reasoning", "coding", "light")
ARMS = ("direct", "ollamax")


def verdict(value, target):
    """Whether ollamax's value meets a target as the table shows it:
    '<= 1684', '>= 0.95', '< 86.9', or a number to equal."""
    for op, holds in (("<=", lambda v, t: v <= t), (">=", lambda v, t: v >= t),
                      ("<", lambda v, t: v < t)):
        if target.startswith(op):
            return "met" if holds(value, float(target[len(op):])) else "missed"
    return "met" if value == float(target) else "missed"


def row(label, d, o, fmt="{:.1f}", target=""):
    mark = f" {verdict(o, target)}" if target else ""
    print(f"{label:<44} {fmt.format(d):>12} {fmt.format(o):>12} {target:>18}{mark}")


def percentile(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, math.floor(q * len(v)))] if v else 0.0


def rank_from_top(n, q):
    """Which of n latencies percentile(v, q) is, counted from the longest."""
    rank = n - min(n - 1, math.floor(q * n))
    if rank == 1:
        return "the longest"
    suffix = "th" if 10 <= rank % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(rank % 10, "th")
    return f"the {rank}{suffix} longest"


def pooled(runs, seeds, scen, arm):
    """Each tier's latencies over every seed of runs[seed][scen][arm]."""
    tiers = {}
    for n in seeds:
        for t, lat in runs[n][scen][arm]["latencies_ms"].items():
            tiers.setdefault(t, []).extend(lat)
    return {t: {"requests": len(v), "p50_ms": percentile(v, 0.50),
                "p95_ms": percentile(v, 0.95), "p99_ms": percentile(v, 0.99)}
            for t, v in tiers.items()}
