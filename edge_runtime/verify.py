"""What ``edgert verify`` checks, as one function: the workstation runs it before it signs a
bundle (``publish``), so nothing is published that a device would refuse."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Union

from .bundle import Bundle


@dataclass(frozen=True)
class Verified:
    """What a verification established (for the one-line reports of ``verify`` and ``publish``)."""

    artifacts: int
    backend: str
    artifact_path: str
    figures: dict[str, float]


def verify_bundle(source: Union[str, os.PathLike[str], Bundle], backend: str = "auto") -> Verified:
    """Check the manifest schema and safe layout (open), every artifact's sha256 and size, then
    load it on ``backend`` and reproduce the golden rows, as a device does before it activates.

    Raises:
        BundleError: the bundle is malformed, unsafe or from a newer schema.
        IntegrityError: an artifact does not match its digest.
        BackendError: no backend could run it.
        GoldenMismatchError: the golden rows are not reproduced.
    """
    from .bundle import open_bundle
    from .loader import load

    b = source if isinstance(source, Bundle) else open_bundle(source)
    b.verify()
    model = load(b, backend=backend, verify=False)
    try:
        figures = model.check_golden()
        return Verified(artifacts=len(b.manifest.artifacts), backend=model.backend.name,
                        artifact_path=model.artifact.path, figures=figures)
    finally:
        model.close()
