"""The float 8 types, through ``ml_dtypes`` where it is installed (numpy has none).

The converters never emit float 8; these exist so a model that uses them is either run as the
spec says (Cast saturation, ``ops/cast.py``) or refused with the type's name, never run wrong.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

#: ONNX type code -> (ml_dtypes name, largest finite value)
FLOAT8 = {17: ("float8_e4m3fn", 448.0), 18: ("float8_e4m3fnuz", 240.0),
          19: ("float8_e5m2", 57344.0), 20: ("float8_e5m2fnuz", 57344.0)}
#: ml_dtypes name -> largest finite value
FLOAT8_MAX = {name: top for name, top in FLOAT8.values()}


def float8_dtype(code: int) -> Optional[np.dtype]:
    """The numpy dtype of float 8 type ``code``; None without ml_dtypes or for another code."""
    entry = FLOAT8.get(code)
    if entry is None:
        return None
    try:
        import ml_dtypes
    except ImportError:
        return None
    return np.dtype(getattr(ml_dtypes, entry[0]))
