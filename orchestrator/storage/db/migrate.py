from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = database_url  # not via set_main_option: '%' in passwords
    return config


def upgrade(database_url: str, revision: str = "head", embedding_dimension: int = 384) -> None:
    """`embedding_dimension`: of the chunk vectors' column (the embedder's; fixed once migrated)."""
    config = alembic_config(database_url)
    config.attributes["embedding_dimension"] = embedding_dimension
    command.upgrade(config, revision)
