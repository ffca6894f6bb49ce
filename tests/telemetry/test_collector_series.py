"""The report's series over time: windows from several devices add up per window, a long
history is summed into at most MAX_POINTS buckets, and no call is lost or counted twice."""

from __future__ import annotations

from collector.series import MAX_POINTS, bucket_segments, point, slim


def _seg(start: float, calls: int, errors: int = 0, correct: int = 0, n: int = 0) -> dict:
    return {"model": "m", "version": "1.0.0", "window_start": start, "window_end": start + 60,
            "calls": calls, "rows": calls, "errors": {"InputError": errors} if errors else {},
            "latency": {"40": calls}, "classes": {"a": calls}, "outputs": {},
            "feedback": {"n": n, "correct": correct}, "shadow": {},
            "features": {"names": ["x"], "bins": [[calls]], "missing": [0]}}


def test_same_window_from_two_devices_is_one_point():
    got = bucket_segments([slim(_seg(0, 10)), slim(_seg(60, 5)), slim(_seg(0, 7, errors=3))])
    assert [(b["window_start"], b["calls"], b["errors"]) for b in got] == [
        (0, 17, {"InputError": 3}), (60, 5, {})]
    assert "features" not in got[0]  # a point does not carry (or sum) the feature bins


def test_long_history_is_bucketed_without_losing_calls():
    segs = [slim(_seg(60.0 * i, i % 7 + 1, correct=i % 3, n=3)) for i in range(1000)]
    got = bucket_segments(segs)
    assert 0 < len(got) <= MAX_POINTS
    assert sum(b["calls"] for b in got) == sum(s["calls"] for s in segs)
    assert sum(b["feedback"]["n"] for b in got) == 3000
    starts = [b["window_start"] for b in got]
    assert starts == sorted(starts) and got[0]["window_start"] == 0
    assert got[-1]["window_end"] == 60.0 * 1000
    for a, b in zip(got, got[1:]):
        assert a["window_end"] <= b["window_start"]  # buckets do not overlap


def test_point_keeps_the_plotted_figures():
    summary = {"window_start": 0, "window_end": 60, "calls": 9, "errors": 1, "error_rate": 0.1,
               "latency_s": {"p50": 0.001, "p90": 0.002, "p99": 0.003},
               "feedback": {"accuracy": 0.5, "n": 4}}
    assert point(summary) == {"window_start": 0, "window_end": 60, "calls": 9, "errors": 1,
                              "error_rate": 0.1, "p50_s": 0.001, "p99_s": 0.003,
                              "accuracy": 0.5, "feedback_n": 4}
