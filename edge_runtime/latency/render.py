"""Human output of a bench report: a table (rich when installed, plain text otherwise) and an
optional latency chart (matplotlib, an optional extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable


def _fmt_ms(v: float) -> str:
    return f"{v * 1e3:.1f} µs" if v < 1 else f"{v:.2f} ms"


def table_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    batches: list[int] = []
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
        echo(title)
        for line in fold_table(head, rows, _width()):
            echo(line)
    else:
        width = _width()

        class _Console(Console):
            def on_broken_pipe(self) -> None:
                # rich exits 1 when the reader goes (`| head`); the CLI turns this into a quiet 0
                raise BrokenPipeError

        console = _Console(width=width)
        # one table per group of columns that fits (rich's borders take 3 characters a column)
        for n, group in enumerate(column_groups(head, rows, width, pad=3)):
            t = Table(title=title if n == 0 else None)
            for i in (0, *group):
                t.add_column(head[i], justify="left" if head[i] in ("backend", "prec") else "right",
                             overflow="fold")
            for r in rows:
                t.add_row(*(r[i] for i in (0, *group)))
            console.print(t)
    mismatch = report.get("machine_mismatch")
    for b in report.get("budgets") or []:
        verdict = "PASS" if b["latency_ok"] and b["memory_ok"] else "FAIL"
        echo(f"{verdict} {b['backend']}/{b['precision']} on {report['profile']}: p99 {b['p99_ms']:.3f} ms "
             f"(budget {b['latency_budget_ms']:g} ms) {'ok' if b['latency_ok'] else 'OVER'}; peak RSS "
             f"{b['peak_rss_mb']:.0f} MiB (budget {b['memory_budget_mb']:g} MiB) "
             f"{'ok' if b['memory_ok'] else 'OVER'}" + (" [measured on this machine, not the device]"
                                                        if mismatch else ""))
    if mismatch:
        echo(f"warning: {mismatch}")


def _width() -> int:
    import shutil

    return max(40, shutil.get_terminal_size((100, 24)).columns)


def column_groups(head: list[str], rows: list[list[str]], width: int, pad: int = 2) -> list[list[int]]:
    """Columns 1.. cut into groups that each fit ``width`` beside column 0 (the row's name),
    each column taking its widest cell plus ``pad``."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    groups: list[list[int]] = []
    current: list[int] = []
    used = widths[0] + pad
    for i in range(1, len(head)):
        if current and used + pad + widths[i] > width:
            groups.append(current)
            current, used = [], widths[0] + pad
        current.append(i)
        used += pad + widths[i]
    groups.append(current)
    return groups


def fold_table(head: list[str], rows: list[list[str]], width: int) -> list[str]:
    """A plain-text table cut into column groups that each fit ``width`` (the first column,
    the row's name, repeated in every group), instead of one line wider than the terminal."""
    if not head:
        return []
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    lines: list[str] = []
    for n, group in enumerate(column_groups(head, rows, width)):
        cols = [0, *group]
        if n:
            lines.append("")
        lines.append("  ".join(head[i].ljust(widths[i]) for i in cols).rstrip())
        lines += ["  ".join(r[i].ljust(widths[i]) for i in cols).rstrip() for r in rows]
    return lines


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
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.6))
    xs = range(len(labels))
    ax1.bar([x - 0.2 for x in xs], p50, width=0.4, label="p50")
    ax1.bar([x + 0.2 for x in xs], p99, width=0.4, label="p99")
    ax1.set_xticks(list(xs), labels)
    budgets = report.get("budgets") or []
    budget_us = budgets[0]["latency_budget_ms"] * 1e3 if budgets else None
    top = max(p99 + ([budget_us] if budget_us else []))
    if top > 10 * min(p50):  # log only when the bars (and the budget) span orders of magnitude
        ax1.set_yscale("log")
        ax1.set_ylabel("single-row latency (µs, log)")
    else:
        ax1.set_ylim(0, top * 1.15)
        ax1.set_ylabel("single-row latency (µs)")
    if budget_us:  # the profile's p99 budget, in the same unit as the bars, always in view
        ax1.axhline(budget_us, color="red", ls="--",
                    label=f"p99 budget ({budgets[0]['latency_budget_ms']:g} ms)")
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
    _cold_and_memory(ax3, entries, budgets)
    m = report["machine"]
    where = (f"measured on {m.get('cpu') or m.get('machine')} ({m.get('machine')}, {m.get('cpu_count')} "
             f"cores)" + (f", profile {report['profile']}" if report.get("profile") else ""))
    if report.get("machine_mismatch"):
        where += ": NOT the profile's device"
    fig.suptitle(f"{report['bundle']['name']} {report['bundle']['version']} — {where}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cold_and_memory(ax: Any, entries: list[dict[str, Any]], budgets: list[dict[str, Any]]) -> None:
    """Cold start (import + load + first prediction, median) as bars; peak RSS on a second axis,
    with the profile's memory budget when there is one."""
    labels = [f"{e['backend']}\n{e['precision']}" for e in entries]
    xs = list(range(len(entries)))
    cold = [e["cold_start"]["total_s"]["median"] * 1e3 for e in entries]
    rss = [e["cold_start"]["peak_rss_mb"]["median"] for e in entries]
    ax.bar([x - 0.2 for x in xs], cold, width=0.4, label="cold start (ms)", color="tab:green")
    ax.set_ylabel("cold start, median (ms)")
    ax.set_ylim(0, max(cold) * 1.45)  # headroom for the legend
    ax.set_xticks(xs, labels)
    mem = ax.twinx()
    mem.bar([x + 0.2 for x in xs], rss, width=0.4, label="peak RSS (MiB)", color="tab:purple")
    mem.set_ylabel("peak RSS (MiB)")
    mem_top = max(rss)
    if budgets:
        mem.axhline(budgets[0]["memory_budget_mb"], color="purple", ls="--",
                    label=f"memory budget ({budgets[0]['memory_budget_mb']:g} MiB)")
        mem_top = max(mem_top, budgets[0]["memory_budget_mb"])
    mem.set_ylim(0, mem_top * 1.45)
    handles = ax.get_legend_handles_labels()
    more = mem.get_legend_handles_labels()
    mem.legend(handles[0] + more[0], handles[1] + more[1], fontsize="small", loc="upper center",
               ncol=2, framealpha=0.9)  # on the twin axis: drawn above both sets of bars
    ax.set_title("cold start and peak memory")
