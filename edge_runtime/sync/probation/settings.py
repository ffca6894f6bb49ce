"""Probation settings: what the publisher signed, else the device profile, else defaults.

The publisher's expectations travel as the ``probation`` custom field of the signed TUF target
(``edgert publish --min-agreement 0.8``). Canonical JSON has no floats, so shares travel in
basis points (``min_agreement_bp: 8000``); :func:`encode_expectations` writes them and
:func:`decode_expectations` reads them back on the device. A field with a wrong type or out of
range is ignored with a warning and the device's own setting applies: ``publish`` never writes
one (it refuses such values), so only a hand-made or newer-format target carries it, and
refusing the whole update for it would keep the device on an older model.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional

log = logging.getLogger("edge_runtime.sync")

#: Device defaults. ``min_agreement`` 0.9: two honest trainings of the same task on
#: overlapping data agree on well over 95% of rows (iris / breast_cancer retrains: 0.97–1.0),
#: so 0.9 leaves room for a retrain that moves a few boundary rows, while a model wrong on
#: one row in four (the shuffled-label case of issue 13: 0.72) is ~8 standard errors below
#: it over 200 rows. ``max_relative_error`` 0.1: regression answers within 10% of the previous
#: version's on average (sum |new - old| / sum |old|). ``max_class_shift`` 0.3: total-variation
#: distance between predicted and training class shares; live traffic may be less balanced
#: than training data, but a model that drops or invents a third of its answers' mass is not
#: the same model. ``max_accuracy_drop`` 0.02: delayed labels may show the new version at most
#: 2 points less accurate than the previous one on the same calls (and significantly so).
#: ``shadow_share`` 0.5: every other call is sampled for the shadow. That halves the caller's
#: cost (a copy of the rows and an append: ~1.5 µs of a ~15 µs call) and still gives 100 rows
#: in a 200-call window (standard error of an agreement near 0.9: 0.03).
DEFAULTS: dict[str, Any] = {
    "predictions": 200, "minutes": 60.0, "max_error_rate": 0.05, "max_p99_ms": 1000.0,
    "min_agreement": 0.9, "max_relative_error": 0.1, "max_class_shift": 0.3,
    "max_accuracy_drop": 0.02, "min_accuracy": None,
    "shadow_share": 0.5, "shadow_queue": 256, "shadow_rows": 64,
}

#: Signed fields: name on the wire -> (setting, kind, low, high). ``bp`` = basis points.
SIGNED: dict[str, tuple[str, str, float, float]] = {
    "min_agreement_bp": ("min_agreement", "bp", 0, 10_000),
    "max_relative_error_bp": ("max_relative_error", "bp", 0, 1_000_000),
    "max_class_shift_bp": ("max_class_shift", "bp", 0, 10_000),
    "min_accuracy_bp": ("min_accuracy", "bp", 0, 10_000),
    "predictions": ("predictions", "int", 1, 10_000_000),
    "minutes": ("minutes", "int", 1, 7 * 24 * 60),
}
_BY_SETTING = {setting: (wire, kind, lo, hi) for wire, (setting, kind, lo, hi) in SIGNED.items()}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def decode_expectations(raw: Any) -> tuple[dict[str, Any], list[str]]:
    """The signed ``probation`` custom field as settings (shares as floats), and one warning
    per field that was ignored (unknown, wrong type, out of range)."""
    if raw is None:
        return {}, []
    if not isinstance(raw, dict):
        return {}, [f"signed probation field is a {type(raw).__name__}, not an object: ignored"]
    out: dict[str, Any] = {}
    warnings = []
    for key, value in raw.items():
        spec = SIGNED.get(key)
        if spec is None:
            warnings.append(f"signed probation field {key!r} is unknown: ignored")
            continue
        setting, kind, lo, hi = spec
        if not _is_int(value) or not lo <= value <= hi:
            warnings.append(f"signed probation field {key!r} = {value!r} is not an integer in "
                            f"[{lo:g}, {hi:g}]: ignored, the device setting applies")
            continue
        out[setting] = value / 10_000 if kind == "bp" else value
    return out, warnings


def encode_expectations(values: Mapping[str, Optional[float]]) -> dict[str, int]:
    """Settings (``min_agreement=0.8``, ``predictions=500``, …) as the signed field; None
    values are left out.

    Raises:
        ValueError: an unknown setting, or a value of the wrong type or out of range (the
            message names it).
    """
    out: dict[str, int] = {}
    for setting, value in values.items():
        if value is None:
            continue
        if setting not in _BY_SETTING:
            raise ValueError(f"probation expectation {setting!r} is unknown; known: "
                             f"{', '.join(sorted(_BY_SETTING))}")
        wire, kind, lo, hi = _BY_SETTING[setting]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"probation expectation {setting} must be a number, got {value!r}")
        encoded = round(value * 10_000) if kind == "bp" else int(value)
        if kind == "int" and encoded != value:
            raise ValueError(f"probation expectation {setting} must be a whole number, got {value!r}")
        if not lo <= encoded <= hi:
            scale = 10_000 if kind == "bp" else 1
            raise ValueError(f"probation expectation {setting} = {value!r} is outside "
                             f"[{lo / scale:g}, {hi / scale:g}]")
        out[wire] = encoded
    return out


def resolve(profile: Optional[Mapping[str, Any]] = None,
            expect: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """Effective settings: signed expectations over the profile's ``probation`` table over
    :data:`DEFAULTS`. Keys this module does not know are left to their owner; a known key
    whose value is not a non-negative number is ignored with a logged warning (a typo in a
    profile must not stop the model from serving)."""
    cfg = dict(DEFAULTS)
    for source in (profile or {}), (expect or {}):
        for key, value in source.items():
            if key not in DEFAULTS or value is None:  # None: unset, the next source applies
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                log.warning("probation setting %s = %r is not a non-negative number: ignored", key, value)
                continue
            cfg[key] = value
    return cfg
