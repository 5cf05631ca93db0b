"""Settings read from the environment and .env (pydantic-settings); see .env.example."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Every setting MIA reads. Names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    mia_content_dir: Path = Field(default=PROJECT_ROOT, description="folder holding intents/, responses/, data/")
    mia_db_path: Path = Field(default=PROJECT_ROOT / "var" / "mia.db", description="SQLite database file")
    mia_log_level: str = "INFO"


def load_settings() -> Settings:
    """Read settings now (never at import time)."""
    return Settings()
