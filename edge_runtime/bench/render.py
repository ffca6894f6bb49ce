"""Human output of a bench report: a table (rich when installed, plain text otherwise) and an
optional latency chart (matplotlib, an optional extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable


def _fmt_ms(v: float) -> str:
    return f"{v * 1e3:.1f} µs" if v < 1 else f"{v:.2f} ms"


def table_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    batches = []
    for e in report["results"]:
        batches = [t["batch"] for t in e.get("throughput", [])] or batches
    head = ["backend", "prec", "size", "import", "create", "1st pred", "cold total (min–max)", "peak RSS",
            "p50", "p90", "p99", "max"] + [f"rows/s @{b}" for b in batches]
    has_base = report.get("baseline") is not None
    if has_base:
        head += ["p50 / p99 vs sklearn"]
    rows = []
    for e in report["results"]:
        if "error" in e:
            rows.append([e["backend"], e["precision"], "-", f"error: {e['error']}"] + [""] * (len(head) - 4))
            continue
        cs, w = e["cold_start"], e["warm"]
        row = [e["backend"], e["precision"], f"{e['size_bytes']:,} B",
               f"{cs['import_s']['median'] * 1e3:.0f} ms", f"{cs['load_s']['median'] * 1e3:.1f} ms",
               f"{cs['first_predict_s']['median'] * 1e3:.2f} ms",
               f"{cs['total_s']['median'] * 1e3:.0f} ms ({cs['total_s']['min'] * 1e3:.0f}–"
               f"{cs['total_s']['max'] * 1e3:.0f})",
               f"{cs['peak_rss_mb']['median']:.0f} MiB",
               _fmt_ms(w["p50_ms"]), _fmt_ms(w["p90_ms"]), _fmt_ms(w["p99_ms"]), _fmt_ms(w["max_ms"])]
        speed = (e.get("vs_baseline") or {}).get("throughput_speedup", {})
        row += [f"{t['rows_per_s']:,.0f}" + (f" ({speed[str(t['batch'])]:.1f}×)" if str(t["batch"]) in speed else "")
                for t in e["throughput"]]
        if has_base:
            vs = e["vs_baseline"]
            row += [f"{vs['warm_p50_speedup']:.0f}× / {vs['warm_p99_speedup']:.0f}× faster"]
        rows.append(row)
    if has_base:
        b = report["baseline"]
        rows.append([b["name"], "fp64", "-", "-", "-", "-", "-", "-", _fmt_ms(b["warm"]["p50_ms"]),
                     _fmt_ms(b["warm"]["p90_ms"]), _fmt_ms(b["warm"]["p99_ms"]), _fmt_ms(b["warm"]["max_ms"])]
                    + [f"{t['rows_per_s']:,.0f}" for t in b["throughput"]] + ["1×"])
    return head, rows


def print_report(report: dict[str, Any], echo: Callable[[str], None]) -> None:
    head, rows = table_rows(report)
    m = report["machine"]
    title = (f"{report['bundle']['name']} {report['bundle']['version']} on {m.get('cpu', m['machine'])}"
             f" ({m['cpu_count']} cores), threads={report['threads'] or 'engine default'}"
             + (f", profile {report['profile']}" if report.get("profile") else ""))
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)] if rows else []
        echo(title)
        echo("  ".join(h.ljust(w) for h, w in zip(head, widths)))
        for r in rows:
            echo("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    else:
        t = Table(title=title)
        for h in head:
            t.add_column(h, justify="left" if h in ("backend", "prec") else "right")
        for r in rows:
            t.add_row(*r)
        Console(width=max(200, 15 * len(head))).print(t)
    for b in report.get("budgets") or []:
        verdict = "PASS" if b["latency_ok"] and b["memory_ok"] else "FAIL"
        echo(f"{verdict} {b['backend']}/{b['precision']} on {report['profile']}: p99 {b['p99_ms']:.3f} ms "
             f"(budget {b['latency_budget_ms']:g} ms) {'ok' if b['latency_ok'] else 'OVER'}; peak RSS "
             f"{b['peak_rss_mb']:.0f} MiB (budget {b['memory_budget_mb']:g} MiB) "
             f"{'ok' if b['memory_ok'] else 'OVER'}")


def plot_report(report: dict[str, Any], path: Path) -> None:
    """Bar chart of single-row p50/p99 per backend (log scale) plus batch throughput."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("--plot needs matplotlib: pip install 'edge-runtime[plot]'") from None
    entries = [e for e in report["results"] if "warm" in e]
    labels = [f"{e['backend']}\n{e['precision']}" for e in entries]
    p50 = [e["warm"]["p50_ms"] * 1e3 for e in entries]
    p99 = [e["warm"]["p99_ms"] * 1e3 for e in entries]
    if report.get("baseline"):
        labels.append("scikit-learn")
        p50.append(report["baseline"]["warm"]["p50_ms"] * 1e3)
        p99.append(report["baseline"]["warm"]["p99_ms"] * 1e3)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    xs = range(len(labels))
    ax1.bar([x - 0.2 for x in xs], p50, width=0.4, label="p50")
    ax1.bar([x + 0.2 for x in xs], p99, width=0.4, label="p99")
    ax1.set_xticks(list(xs), labels)
    if max(p99) > 10 * min(p50):  # log only when the bars span orders of magnitude
        ax1.set_yscale("log")
        ax1.set_ylabel("single-row latency (µs, log)")
    else:
        ax1.set_ylim(0, max(p99) * 1.15)
        ax1.set_ylabel("single-row latency (µs)")
    ax1.legend()
    ax1.set_title("warm single-row latency")
    for e in entries:
        ax2.plot([t["batch"] for t in e["throughput"]], [t["rows_per_s"] for t in e["throughput"]],
                 marker="o", label=f"{e['backend']}/{e['precision']}")
    if report.get("baseline"):
        b = report["baseline"]["throughput"]
        ax2.plot([t["batch"] for t in b], [t["rows_per_s"] for t in b], marker="s", ls="--",
                 label="scikit-learn")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("batch size (rows)")
    ax2.set_ylabel("rows / s")
    ax2.legend()
    ax2.set_title("throughput")
    fig.suptitle(f"{report['bundle']['name']} {report['bundle']['version']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
