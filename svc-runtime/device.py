"""Device choice: cpu | cuda | cuda:N | auto. CUDA asked for where none exists
is a start-up error; auto falls back to CPU with a warning."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from svc_runtime.errors import StartupError

log = logging.getLogger(__name__)
_DEVICE = re.compile(r"^(cpu|cuda|cuda:\d+|auto)$")


def torch_cuda_device_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(
    requested: str, *, cuda_capable: bool = True, cuda_device_count: Callable[[], int] = torch_cuda_device_count
) -> str:
    """Returns a concrete device string ('cpu', 'cuda:0', ...).

    `cuda_capable=False` is for services whose library only runs on the CPU
    (the parser): there `auto` means cpu and cuda is refused. Services that do
    not use torch pass their library's own CUDA probe (e.g. CTranslate2's).
    """
    requested = requested.strip().lower()
    if not _DEVICE.match(requested):
        raise StartupError(f"device {requested!r} is not one of cpu, cuda, cuda:N, auto")
    if requested == "cpu":
        return "cpu"
    if not cuda_capable:
        if requested == "auto":
            return "cpu"
        raise StartupError(f"device {requested!r} asked for, but this service runs on the CPU only")
    count = cuda_device_count()
    if requested == "auto":
        if count:
            return "cuda:0"
        log.warning("cuda_unavailable_using_cpu", extra={"requested": "auto"})
        return "cpu"
    index = int(requested.split(":")[1]) if ":" in requested else 0
    if count == 0:
        raise StartupError(f"device {requested!r} asked for, but no CUDA device is available")
    if index >= count:
        raise StartupError(f"device {requested!r} asked for, but only {count} CUDA device(s) exist")
    return f"cuda:{index}"
