import json

import pytest

from svc_runtime.device import resolve_device
from svc_runtime.errors import StartupError

torch = pytest.importorskip("torch")
NO_CUDA = not torch.cuda.is_available()


def test_cpu_is_cpu():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device(" CPU ") == "cpu"


@pytest.mark.skipif(not NO_CUDA, reason="checks the CPU fallback; this machine has CUDA")
def test_auto_falls_back_to_cpu_without_cuda():
    assert resolve_device("auto") == "cpu"


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
@pytest.mark.parametrize("requested", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_a_startup_error(requested):
    with pytest.raises(StartupError, match="no CUDA device"):
        resolve_device(requested)


def test_unknown_device_is_refused():
    with pytest.raises(StartupError, match="not one of"):
        resolve_device("tpu")


def test_cpu_only_service_refuses_cuda():
    assert resolve_device("auto", cuda_capable=False) == "cpu"
    with pytest.raises(StartupError, match="CPU only"):
        resolve_device("cuda", cuda_capable=False)


def test_auto_fallback_says_so_in_the_log(capfd):
    from svc_runtime.logs import configure_logging

    configure_logging("info", "json")
    assert resolve_device("auto", cuda_device_count=lambda: 0) == "cpu"
    [line] = [json.loads(line) for line in capfd.readouterr().err.splitlines() if "cuda_unavailable" in line]
    assert line["event"] == "cuda_unavailable_using_cpu" and line["requested"] == "auto" and line["level"] == "warning"


@pytest.mark.parametrize(("requested", "expected"), [("auto", "cuda:0"), ("cuda", "cuda:0"), ("cuda:1", "cuda:1")])
def test_gpu_choice_on_a_host_with_two_gpus(requested, expected):
    """The GPU path as a GPU host takes it (the CUDA probe is the only thing replaced)."""
    assert resolve_device(requested, cuda_device_count=lambda: 2) == expected
    with pytest.raises(StartupError, match="only 2 CUDA"):
        resolve_device("cuda:2", cuda_device_count=lambda: 2)
