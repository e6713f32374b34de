"""GPU check: svc-llm's continuous batching and svc-embedder's batching on CUDA,
with random-weight models of the bundled models' shapes, in one short run.

    python3 bench/gpu_check/run.py --device cuda [--out FILE]     # make gpu-check
    python3 bench/gpu_check/run.py --device cpu --tiny             # seconds; a test runs it

Needs python3 with torch and numpy, nothing else from the project (no
virtualenv, no network, no downloads: models are built from their configs).
Uses transformers and sentence-transformers when present (the usual PyTorch
stack); without transformers the LLM part runs a Llama-shaped model written in
plain PyTorch (bench/gpu_check/tiny_llama.py) and the embedder part is skipped.
The services' engine code (svc_llm's scheduler, runner and ragged KV cache;
svc_embedder's TextEmbedder; svc_runtime's DynamicBatcher) runs in-process, as
imported from this checkout: those modules need only the standard library,
torch, numpy and their model library. The gRPC servers are not started (their
stack, grpc, structlog, prometheus_client and pydantic-settings, is not on a
bare machine).

Writes one JSON file: --out, else $OUT/gpu_check.json, else
bench/results/gpu_check.json. Exit status 0 when every part ran (parity
figures are reported, not judged: fp16 may round differently when batched).
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.util
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's root: `bench.gpu_check.*`

SERVING_STACK = ("grpc", "structlog", "prometheus_client", "pydantic", "pydantic_settings")
MODEL_LIBRARIES = ("transformers", "sentence_transformers")
BARE_HIDDEN = {*SERVING_STACK, *MODEL_LIBRARIES}


def import_engines_from_checkout() -> None:
    """The services' folders are hyphenated (svc-llm holds package svc_llm): each package
    is imported from its folder, whatever else is installed."""
    for package in ("svc_runtime", "svc_llm", "svc_embedder"):
        folder = ROOT / package.replace("_", "-")
        spec = importlib.util.spec_from_file_location(
            package, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[package] = module
        spec.loader.exec_module(module)


class _Hidden(importlib.abc.MetaPathFinder):
    """Makes the named top-level packages unimportable (--simulate-bare)."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"{fullname} is hidden (--simulate-bare)", name=fullname)
        return None


def available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    parser.add_argument(
        "--dtypes", default="", help="comma-separated (default: float32,float16 on CUDA, float32 on CPU)"
    )
    parser.add_argument("--tiny", action="store_true", help="tiny models and sizes (seconds, for CPU)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    parser.add_argument(
        "--simulate-bare",
        action="store_true",
        help=f"hide {', '.join(sorted(BARE_HIDDEN))} (rehearses a bare PyTorch machine)",
    )
    args = parser.parse_args()
    if args.simulate_bare:
        sys.meta_path.insert(0, _Hidden(BARE_HIDDEN))
    started = time.perf_counter()
    import_engines_from_checkout()
    modules = {name: "real" if available(name) else "absent" for name in (*SERVING_STACK, *MODEL_LIBRARIES)}
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    has_transformers = modules["transformers"] == "real"
    has_st = has_transformers and modules["sentence_transformers"] == "real"
    dtypes = (
        args.dtypes.split(",")
        if args.dtypes
        else (["float32", "float16"] if args.device.startswith("cuda") else ["float32"])
    )
    report: dict = {
        "device": args.device,
        "device_name": torch.cuda.get_device_name(args.device)
        if args.device.startswith("cuda")
        else platform.processor(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "modules": modules,
        "tiny": args.tiny,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "llm": {},
        "embedder": {},
    }
    failed = False
    from bench.gpu_check import embedder_check, llm_check

    for name in dtypes:
        dtype = getattr(torch, name)
        try:
            report["llm"][name] = llm_check.run(
                args.device,
                dtype,
                args.tiny,
                has_transformers,
                streams=4 if args.tiny else 8,
                max_new_tokens=8 if args.tiny else 64,
            )
        except Exception as exc:  # noqa: BLE001 - reported, and the other parts still run
            failed = True
            report["llm"][name] = {"error": repr(exc), "traceback": traceback.format_exc()}
        _say(f"llm {name}", report["llm"][name])
        if not has_st:
            report["embedder"][name] = {"skipped": "needs transformers and sentence-transformers"}
        else:
            try:
                report["embedder"][name] = embedder_check.run(
                    args.device,
                    dtype,
                    args.tiny,
                    texts_count=48 if args.tiny else 512,
                    concurrency=8 if args.tiny else 32,
                )
            except Exception as exc:  # noqa: BLE001 - reported, and the other parts still run
                failed = True
                report["embedder"][name] = {"error": repr(exc), "traceback": traceback.format_exc()}
        _say(f"embedder {name}", report["embedder"][name])
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    # The engines ran without the serving stack, also where it is installed.
    report["serving_stack_imported"] = sorted({m.split(".")[0] for m in sys.modules} & set(SERVING_STACK))
    report["seconds"] = round(time.perf_counter() - started, 1)
    out = args.out or (
        Path(os.environ["OUT"]) / "gpu_check.json"
        if os.environ.get("OUT")
        else HERE.parent / "results" / "gpu_check.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {out} ({report['seconds']} s){'; some parts FAILED' if failed else ''}")
    return 1 if failed else 0


def _say(what: str, figures: dict) -> None:
    keys = (
        "parity",
        "batched_vs_alone",
        "alone_vs_stock",
        "batcher_vs_one_by_one",
        "batcher_vs_in_process_batched",
        "max_abs_diff_batched_vs_single",
        "skipped",
        "error",
    )
    shown = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in figures.items() if k in keys}
    print(f"{what}: {shown}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
