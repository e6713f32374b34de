"""`python -m orchestrator.storage.db upgrade [--database-url URL]`: migrate to head."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from orchestrator.settings import OrchestratorSettings
from orchestrator.storage.db.migrate import upgrade


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.storage.db")
    parser.add_argument("command", choices=["upgrade"])
    parser.add_argument("--database-url", help="default: AIWORKER_DATABASE_URL")
    args = parser.parse_args(argv)
    settings = OrchestratorSettings()
    url = args.database_url or settings.database_url
    upgrade(url, embedding_dimension=settings.embedding_dimension)
    print(f"database at head: {url.rsplit('@', 1)[-1]}")


if __name__ == "__main__":
    main()
