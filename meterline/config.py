"""Configuration from ``METERLINE_*`` environment variables (pydantic-settings).

Secrets are ``SecretStr`` so they never show up in a repr or a log line.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_database_url() -> str:
    # The embedded default: a SQLite file in the working directory.
    return f"sqlite:///{Path.cwd() / 'meterline.db'}"


# Rows per import transaction. Each commit writes every index page the batch touched
# (phones and dues land all over their indexes): at a million rows 20,000 wrote half
# the WAL of 2,000 and took 9 % less of the writer's CPU (docs/benchmarks.md).
IMPORT_BATCH_ROWS = 20_000


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="METERLINE_", extra="ignore")

    database_url: str = ""
    # Signs the console's session cookie; the demo makes a random one per run.
    secret_key: SecretStr = SecretStr("")
    import_max_bytes: int = 100 * 1024 * 1024
    import_batch_size: int = IMPORT_BATCH_ROWS
    # SQLite: each connection's page cache and memory-mapped window, in MB (SQLite's own
    # defaults are 2 and 0). See docs/configuration.md.
    sqlite_cache_mb: int = 2
    sqlite_mmap_mb: int = 0
    log_json: bool = False
    log_level: str = "INFO"
    # Where providers reach us: status callbacks go to {public_url}/api/v1/callbacks/{id}.
    public_url: str = "http://127.0.0.1:8000"
    # Dispatch: messages claimed per round, sends in flight, how long a claim lasts
    # before another worker may take the message over (a killed worker's messages).
    dispatch_batch: int = 500
    dispatch_concurrency: int = 256
    dispatch_claim_seconds: float = 60.0
    dispatch_max_attempts: int = 6
    # Accept browser push subscriptions whose endpoint is a local or private address (a
    # stand-in push service in development and tests); never in production.
    push_allow_local_endpoints: bool = False

    def resolved_database_url(self) -> str:
        return self.database_url or default_database_url()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
