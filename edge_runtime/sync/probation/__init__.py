"""Probation of a newly activated version: :class:`ProbationMonitor` (the verdict),
:mod:`.shadow` (the previous version answering in shadow, off the caller's path),
:mod:`.settings` (signed expectations, profile, defaults) and :mod:`.significance`."""

from __future__ import annotations

from .monitor import ProbationMonitor, reference_shares
from .settings import DEFAULTS, decode_expectations, encode_expectations, resolve

__all__ = ["DEFAULTS", "ProbationMonitor", "decode_expectations", "encode_expectations",
           "reference_shares", "resolve"]
