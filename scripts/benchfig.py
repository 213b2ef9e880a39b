# Figures shared by the parts of scripts/bench that read ollamax-workload's
# JSON: a row of the tables, percentiles as ollamax-workload ranks them,
# latencies pooled over seeds.
import math

TIERS = ("reasoning", "coding", "light")
ARMS = ("direct", "ollamax")


def seconds(ms):
    """A figure in ms as seconds; None (nothing answered) stays None."""
    return None if ms is None else ms / 1000


def shown(value, fmt="{:.1f}"):
    return "n/a" if value is None else fmt.format(value)


def verdict(value, target, limit=None):
    """Whether ollamax's value meets a target: '<= 1684', '>= 0.95',
    '< 86.9', or a number to equal, against limit (the exact figure the
    target shows rounded) when given. A figure missing (nothing answered)
    or a limit missing misses it."""
    for op, holds in (("<=", lambda v, t: v <= t), (">=", lambda v, t: v >= t),
                      ("<", lambda v, t: v < t), ("", lambda v, t: v == t)):
        if target.startswith(op):
            try:
                bound = limit if limit is not None else float(target[len(op):])
            except ValueError:  # 'n/a': no figure to compare with
                return "missed"
            return "met" if value is not None and holds(value, bound) else "missed"


def row(label, d, o, fmt="{:.1f}", target="", limit=None):
    """A table row; limit: the exact value the target shows rounded."""
    mark = f" {verdict(o, target, limit)}" if target else ""
    print(f"{label:<44} {shown(d, fmt):>12} {shown(o, fmt):>12} {target:>18}{mark}")


def percentile(v, q):
    """Nearest rank, as ollamax-workload takes it; None with no values."""
    v = sorted(v)
    return v[min(len(v), max(1, math.ceil(q * len(v) - 1e-9))) - 1] if v else None


def rank_from_top(n, q):
    """Which of n latencies percentile(v, q) is, counted from the longest."""
    rank = n + 1 - min(n, max(1, math.ceil(q * n - 1e-9)))
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
