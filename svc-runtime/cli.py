"""Command line for a service: every settings field is a flag (--host, --port,
--metrics-port, --device, ...), flags win over environment variables."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings, CliApp, SettingsConfigDict

S = TypeVar("S", bound=BaseSettings)


def settings_from_cli(settings_cls: type[S], argv: Sequence[str] | None, prog: str) -> S:
    """Builds settings from env + flags (flags win). `--help` lists every flag
    with its env variable name and default."""

    class _Cli(settings_cls):  # type: ignore[misc,valid-type]
        model_config = SettingsConfigDict(
            cli_prog_name=prog,
            cli_kebab_case=True,
            cli_implicit_flags=True,
            cli_exit_on_error=True,
        )

    _Cli.__name__ = settings_cls.__name__
    try:
        return CliApp.run(_Cli, cli_args=list(argv) if argv is not None else None)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        print(f"{prog}: invalid settings: {problems}", file=sys.stderr)
        raise SystemExit(2) from None
