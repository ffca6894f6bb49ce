"""Probation after an activation: the new version must serve N predictions (or T minutes)
under the error-rate and p99-latency limits (judged by :meth:`LiveMetrics.breaches`, as
telemetry's live metrics are) *and* answer like a model of the same task:

- label agreement (classification) or relative error (regression) against the previous good
  version, which answers a sample of the live calls in shadow (:mod:`.shadow`);
- predicted class shares against the bundle's training class shares (``reference.classes``);
- accuracy on delayed labels (:meth:`ProbationMonitor.feedback`) against the previous version
  on the same calls, or a floor.

Else it is rolled back and marked bad; the reason carries the figure that decided.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Mapping, Optional

from ...health import LiveMetrics
from ...sampling import upper_rank
from .settings import DEFAULTS, resolve
from .significance import Z, mcnemar_z, total_variation, wilson

#: Class shares are judged from this many predicted rows on (noise of the total variation
#: distance at 100 rows and 3 classes is ~0.06, far under the 0.3 default).
MIN_CLASS_ROWS = 100
#: The hot path computes a verdict every this many calls (and after every error, and on
#: every call once the count is reached): a breach is acted on at most 15 calls late.
JUDGE_EVERY = 16
#: Latency histogram: 8 bins per octave from 1 µs (2^-20 s) to an hour.
HIST_BINS = 32 * 8
#: Delayed labels are judged from this many labelled calls on.
MIN_FEEDBACK = 30
#: Agreement / relative error are judged from this many shadowed rows on (or the whole
#: probation, when it is shorter).
MIN_SHADOWED = 50


def reference_shares(reference: Any) -> Optional[tuple[dict[str, float], str]]:
    """The training class shares of a manifest's ``reference`` (labels as strings) and their
    source ("labels" or "predicted"), or None when absent or malformed."""
    ref = reference.get("classes") if isinstance(reference, dict) else None
    if not isinstance(ref, dict):
        return None
    labels, counts = ref.get("labels"), ref.get("counts")
    if not (isinstance(labels, list) and isinstance(counts, list) and len(labels) == len(counts)
            and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)):
        return None
    total = sum(counts)
    if total <= 0:
        return None
    return {str(lab): c / total for lab, c in zip(labels, counts)}, str(ref.get("source", "labels"))


def _shares(shares: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.0%}" for k, v in sorted(shares.items()))


class ProbationMonitor:
    """Fed with calls (:meth:`observe`, :meth:`observe_call`, or both at once with
    :meth:`served`) and labels (:meth:`feedback`); :meth:`verdict` says pass / fail / pending
    and why, :meth:`due` whether asking is worth it after this call. :meth:`close` when done."""

    def __init__(self, settings: Optional[Mapping[str, Any]] = None, *, started: Optional[float] = None,
                 candidate: Any = None, previous: Any = None, previous_version: Optional[str] = None,
                 backend: str = "auto", profile: Any = None):
        cfg = resolve(settings)
        self.settings = cfg
        self.predictions = int(cfg["predictions"])
        self.minutes = float(cfg["minutes"])
        self.max_error_rate = float(cfg["max_error_rate"])
        self.max_p99_ms = float(cfg["max_p99_ms"])
        self.started = started if started is not None else time.time()
        self.count = 0
        self.errors = 0
        self._errors_due = 0
        self._ev_due: Any = None  # the worker's evidence snapshot last judged through due()
        self._hist = [0] * HIST_BINS  # successful calls' latencies, log-spaced bins
        self._hist_max = [0.0] * HIST_BINS  # the largest latency seen in each bin
        self._n_lat = 0
        self._lat_new: list[float] = []  # latencies not binned yet
        self.previous_version = previous_version or (
            Path(previous).name if previous is not None and not callable(previous) else None)
        self.task: Optional[str] = getattr(candidate, "task", None)
        manifest = getattr(candidate, "manifest", None)
        self.reference = reference_shares(getattr(manifest, "reference", None))
        self._calls = 0
        self._every = max(1, round(1 / float(cfg["shadow_share"]))) if cfg["shadow_share"] > 0 else 0
        self._rows = max(1, int(cfg["shadow_rows"]))
        self._worker: Any = None
        self._window: Optional[int] = None  # samples queued when the count was reached
        if candidate is not None and self._every:
            try:
                from .shadow import ShadowWorker
            except ImportError:  # no numpy (Pyodide's core): judged on errors and latency only
                return

            load_previous = previous if callable(previous) else None
            if previous is not None and load_previous is None:
                def load_previous() -> Any:
                    from ...loader import load

                    # one thread: the shadow must not take cores (or spinning pool threads)
                    # from the version that serves
                    return load(Path(previous), backend=backend, profile=profile, threads=1)
            self._worker = ShadowWorker(task=self.task or "classification",
                                        classes=getattr(candidate, "classes", None),
                                        load_previous=load_previous, queue_max=int(cfg["shadow_queue"]))

    @classmethod
    def from_profile(cls, probation: Optional[dict[str, Any]] = None, started: Optional[float] = None, *,
                     expect: Optional[Mapping[str, Any]] = None, candidate: Any = None,
                     previous: Any = None, backend: str = "auto", profile: Any = None
                     ) -> ProbationMonitor:
        """Settings from the signed ``expect`` over the profile's ``probation`` table over
        the defaults; ``candidate`` is the loaded new version (its task, classes, reference),
        ``previous`` the directory of the previous good version (loaded for the shadow in the
        worker thread, never on the caller's path), or a callable that returns it loaded."""
        return cls(resolve(probation, expect), started=started, candidate=candidate,
                   previous=previous, backend=backend, profile=profile)

    # --- what the hot path feeds ------------------------------------------------------------
    def observe(self, latency_s: float, error: bool = False) -> None:
        """One call's latency, or an error (a failed call, or one the app reports)."""
        self.count += 1
        if error:
            self.errors += 1
        else:
            self._lat_new.append(latency_s)  # binned when a verdict is computed
            if len(self._lat_new) > 4096:  # or now, if nobody asks for one (bounded memory)
                self._bin_latencies()

    def _bin_latencies(self) -> None:
        new, self._lat_new = self._lat_new, []
        hist, top, last = self._hist, self._hist_max, HIST_BINS - 1
        for lat in new:
            i = int((math.log2(lat) + 20) * 8) if lat > 0 else 0
            i = 0 if i < 0 else last if i > last else i
            hist[i] += 1
            if lat > top[i]:
                top[i] = lat
        self._n_lat += len(new)

    def due(self) -> bool:
        """Whether :meth:`verdict` is worth computing after this call (a few comparisons, for
        the caller's path): every :data:`JUDGE_EVERY` calls, after an error, when the shadow
        worker published new evidence, and on every call once the count is reached."""
        ev = self._worker.ev if self._worker is not None else None
        if (self.errors != self._errors_due or ev is not self._ev_due or self.count >= self.predictions
                or not self.count % JUDGE_EVERY):
            self._errors_due, self._ev_due = self.errors, ev
            return True
        return False

    def observe_call(self, method: str, X: Any, out: Any, ids: Any = None) -> None:
        """A served call's input and output: a sample of them goes to the shadow worker
        (copied, bounded; dropped and counted when its queue is full). ``ids`` (one per row)
        let :meth:`feedback` match delayed labels to this call."""
        worker = self._worker
        if worker is None:
            return
        self._calls += 1
        if self._every > 1 and self._calls % self._every:
            return
        worker.submit_call(method, X, out, ids, self._rows)

    def served(self, latency_s: float, method: str, X: Any, out: Any, ids: Any = None) -> bool:
        """:meth:`observe` + :meth:`observe_call` + :meth:`due` in one call: the hot-swap's
        path for a successful call, as short as it can be (every call during probation)."""
        self.count += 1
        self._lat_new.append(latency_s)
        if len(self._lat_new) > 4096:
            self._bin_latencies()
        worker = self._worker
        if worker is None:
            return self.due()
        self._calls += 1
        if self._every == 1 or not self._calls % self._every:
            worker.submit_call(method, X, out, ids, self._rows)
        if worker.ev is self._ev_due and self.count % JUDGE_EVERY and self.count < self.predictions \
                and self.errors == self._errors_due:
            return False  # due() inlined for the common case
        return self.due()

    def feedback(self, prediction_id: Any, truth: Any) -> None:
        """The true label of a row predicted with ``ids=[…, prediction_id, …]``."""
        if self._worker is not None:
            self._worker.submit(("feedback", prediction_id, truth))

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until the shadow worker handled every queued sample (tests, benchmarks)."""
        return self._worker.drain(timeout) if self._worker is not None else True

    def close(self, timeout: Optional[float] = None) -> None:
        """Stop the shadow worker; it closes the previous version's model itself."""
        if self._worker is not None:
            self._worker.close(timeout)

    # --- figures ----------------------------------------------------------------------------
    def _percentiles(self) -> tuple[Optional[float], Optional[float]]:
        """(p50, p99) in seconds: the largest latency seen in the bin holding that rank, so
        at most one bin (9%) above the exact figure, never below it; constant memory."""
        self._bin_latencies()
        n = self._n_lat
        if not n:
            return None, None
        ranks = (upper_rank(n, 50), upper_rank(n, 99))
        out: list[float] = []
        seen = 0
        for i, count in enumerate(self._hist):
            if count:
                seen += count
                while len(out) < 2 and seen > ranks[len(out)]:
                    out.append(self._hist_max[i])
                if len(out) == 2:
                    break
        return out[0], out[1]

    def metrics(self, model: str = "model", version: str = "new") -> LiveMetrics:
        """These observations as live metrics; a p99 only once 50 latencies (or all the
        predictions probation asks for) make it meaningful."""
        p50, p99 = self._percentiles()
        enough = self._n_lat >= min(50, self.predictions)  # binned by _percentiles just above
        return LiveMetrics(model, version, self.count, self.errors, self.errors / self.count if self.count else 0.0,
                           p50, p99 if enough else None)

    def figures(self) -> dict[str, Any]:
        """The evidence so far (counts, agreement, shares, feedback), for logs and tests."""
        out: dict[str, Any] = {"calls": self.count, "errors": self.errors}
        w = self._worker
        if w is not None:
            out.update(w.ev.__dict__, dropped=w.dropped, submitted=w.submitted, handled=w.handled)
        return out

    # --- the verdict ------------------------------------------------------------------------
    def _min_shadowed(self) -> int:
        # never more rows than a window of ``predictions`` calls samples (every ``_every``-th
        # call: with shadow_share 0.5, a 5-call window compares only 2 or 3)
        return min(MIN_SHADOWED, max(1, self.predictions // max(1, self._every)))

    def _evidence_ready(self) -> bool:
        """Probation ends by count only once the worker handled every sample queued until the
        count was reached (the verdict covers the whole window, not the part the worker had
        caught up with) and, with a shadow, compared enough rows."""
        w = self._worker
        if w is None:
            return True
        if self._window is None:
            self._window = w.submitted
        ev = w.ev
        if ev.shadow == "none" and (self.reference is None or self._window < MIN_CLASS_ROWS):
            return True  # nothing the worker counts could be judged: no reason to wait for it
        if w.handled < self._window:
            return False
        return ev.shadow in ("none",) or ev.shadow.startswith("failed") or ev.compared >= self._min_shadowed()

    def _judge_shadow(self, final: bool, fails: list[str], notes: list[str]) -> None:
        ev = self._worker.ev
        prev = f"previous {self.previous_version}" if self.previous_version else "previous version"
        if ev.shadow.startswith("failed"):
            notes.append(f"no shadow ({prev} {ev.shadow})")
            return
        n, need = ev.compared, self._min_shadowed()
        if n < need:
            if final and ev.shadow == "ready":
                notes.append(f"agreement not judged: {n} of {need} shadowed predictions"
                             f" ({self._worker.dropped} samples dropped)")
            return
        if self.task == "regression":
            bar = float(self.settings["max_relative_error"])
            rel = float("inf") if ev.nonfinite else (
                ev.abs_diff / ev.abs_prev if ev.abs_prev > 0 else (0.0 if ev.abs_diff == 0 else float("inf")))
            line = f"relative error {rel:.3f} {'>' if rel > bar else '≤'} {bar:g} against {prev} over {n} " \
                   f"shadowed predictions" + (f" ({ev.nonfinite} non-finite answers)" if ev.nonfinite else "")
            (fails if rel > bar else notes).append(line)
            return
        bar = float(self.settings["min_agreement"])
        rate = ev.agreed / n
        hi = wilson(ev.agreed, n)[1]
        if hi < bar or (final and rate < bar):
            fails.append(f"label agreement {rate:.3f} < {bar:g} with {prev} over {n} shadowed "
                         f"predictions" + ("" if final else f" (99% upper bound {hi:.3f})"))
        elif final:
            notes.append(f"label agreement {rate:.3f} ≥ {bar:g} with {prev} over {n} shadowed predictions")

    def _judge_shares(self, final: bool, fails: list[str], notes: list[str]) -> None:
        if self.reference is None or self._worker is None:
            return
        shares, source = self.reference
        ev = self._worker.ev
        counts = ev.labels
        n = sum(counts.values())
        if n < MIN_CLASS_ROWS:
            if final:
                notes.append(f"class shares not judged: {n} of {MIN_CLASS_ROWS} predictions")
            return
        bar = float(self.settings["max_class_shift"])
        tv = total_variation(counts, shares)
        what = "training labels" if source == "labels" else "training-set predictions"
        prev = ev.prev_labels
        if tv > bar and sum(prev.values()) >= MIN_CLASS_ROWS and total_variation(prev, shares) > bar:
            # the previous version departs as far on the same calls: the traffic changed, not the model
            if final:
                notes.append(f"class shares: total variation {tv:.2f} from the {what}, previous version "
                             f"{total_variation(prev, shares):.2f} on the same calls (traffic unlike training)")
            return
        if tv > bar:
            live = {k: v / n for k, v in counts.items()}
            fails.append(f"class shares depart from the {what}: total variation {tv:.2f} > {bar:g} "
                         f"over {n} predictions (live {_shares(live)}; training {_shares(shares)})")
        elif final:
            notes.append(f"class shares: total variation {tv:.2f} ≤ {bar:g} over {n} predictions")

    def _judge_feedback(self, final: bool, fails: list[str], notes: list[str]) -> None:
        ev = self._worker.ev if self._worker is not None else None
        if ev is None or self.task != "classification" or ev.fb_n == 0:
            return
        floor = self.settings.get("min_accuracy")
        acc = ev.fb_new_right / ev.fb_n
        if ev.fb_paired >= MIN_FEEDBACK:
            prev_acc = ev.fb_prev_right / ev.fb_paired
            new_acc = (ev.fb_prev_right - ev.fb_worse + ev.fb_better) / ev.fb_paired
            z = mcnemar_z(ev.fb_worse, ev.fb_better)
            drop = prev_acc - new_acc
            if drop > float(self.settings["max_accuracy_drop"]) and z > Z:
                fails.append(f"feedback accuracy {new_acc:.3f} < previous version's {prev_acc:.3f} on the "
                             f"same {ev.fb_paired} labelled predictions (McNemar z {z:.1f})")
            elif final:
                notes.append(f"feedback accuracy {new_acc:.3f} (previous {prev_acc:.3f}) over "
                             f"{ev.fb_paired} labelled predictions")
        if floor is not None and ev.fb_n >= MIN_FEEDBACK:
            hi = wilson(ev.fb_new_right, ev.fb_n)[1]
            if hi < float(floor) or (final and acc < float(floor)):
                fails.append(f"feedback accuracy {acc:.3f} < floor {float(floor):g} over {ev.fb_n} "
                             "labelled predictions")
        elif final and ev.fb_paired < MIN_FEEDBACK:
            notes.append(f"feedback not judged: {ev.fb_n} of {MIN_FEEDBACK} labelled predictions")

    def _judge(self, final: bool) -> tuple[list[str], list[str]]:
        fails: list[str] = []
        notes: list[str] = []
        if self._worker is not None:
            if self._worker.ev.shadow != "none":
                self._judge_shadow(final, fails, notes)
            self._judge_shares(final, fails, notes)
            self._judge_feedback(final, fails, notes)
        return fails, notes

    def verdict(self) -> tuple[str, str]:
        """("pass" | "fail" | "pending", reason); the reason names the figures that decided."""
        breaches = self.metrics().breaches({"max_error_rate": self.max_error_rate, "max_p99_ms": self.max_p99_ms,
                                            "min_predictions": min(20, self.predictions)})
        if breaches:
            return "fail", "; ".join(b.split(": ", 1)[1] for b in breaches)
        fails, _ = self._judge(final=False)
        if fails:
            return "fail", "; ".join(fails)
        by_count = self.count >= self.predictions
        by_time = time.time() - self.started >= self.minutes * 60 and self.count > 0
        if (by_count and self._evidence_ready()) or by_time:
            fails, notes = self._judge(final=True)
            if fails:
                return "fail", "; ".join(fails)
            head = f"{self.count} predictions within limits" if by_count else f"{self.minutes:g} minutes within limits"
            return "pass", "; ".join([head, *notes])
        if by_count:
            ev = self._worker.ev
            return "pending", (f"{self.count} predictions; waiting for the shadow ({ev.shadow}): "
                               f"{self._worker.handled}/{self._window} samples handled, {ev.compared} rows compared")
        return "pending", f"{self.count}/{self.predictions} predictions"


__all__ = ["DEFAULTS", "ProbationMonitor", "reference_shares"]
