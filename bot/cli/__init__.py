"""The `mia` command: run | chat | ask | staff | requests | report | review | db | facts | intents."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bot.runtime.config import SettingsError, load_settings
from bot.core.yamlfile import ContentErrors
from bot.cli import staff as staff_commands  # noqa: E402
from bot.cli.serve import _cmd_run, _cmd_chat, _cmd_ask  # noqa: E402
from bot.cli.records import (_cmd_db_migrate, _cmd_db_purge, _cmd_report_unanswered, _cmd_requests_export,  # noqa: E402
                              _cmd_requests_list, _cmd_review)
from bot.cli.authoring import _cmd_check, _cmd_facts, _cmd_add_example, _cmd_test  # noqa: E402

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        settings = load_settings()
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"MIA cannot start: {problem}", file=sys.stderr)
        return 2
    # One-shot commands print results; only long-running ones log at the configured level.
    level = settings.mia_log_level.upper() if args.command in ("run", "chat") else "WARNING"
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    secure_logging(settings)
    from bot.core.content import configure_understanding

    configure_understanding(settings.mia_sentence_model, settings.mia_sentence_model_threads, settings.mia_cache_dir)
    try:
        return args.func(args, settings) or 0
    except ContentErrors as exc:
        print("MIA cannot start: the content has errors (run `mia intents check`):", file=sys.stderr)
        for err in exc.errors:
            print(f"  {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def secure_logging(settings) -> None:
    """No secret in the logs: quiet the HTTP client's per-request lines and redact the rest."""
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    secrets = [v.get_secret_value() for v in (settings.telegram_bot_token, settings.telegram_webhook_secret,
                                              settings.whatsapp_access_token, settings.whatsapp_app_secret,
                                              settings.whatsapp_verify_token) if v]
    from bot.core.privacy import MaskingFilter, SecretFilter

    for handler in logging.getLogger().handlers:
        handler.addFilter(SecretFilter(secrets))
        handler.addFilter(MaskingFilter())  # phone numbers (WhatsApp ids), NIK, e-mail


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mia", description="MIA: passport assistant of the Sumsel immigration offices")
    sub = p.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run MIA on the configured channels")
    run.set_defaults(func=_cmd_run)

    chat = sub.add_parser("chat", help="talk to MIA in this terminal (state kept in MIA_DB_PATH)")
    chat.add_argument("--chat-id", default="console", help="conversation id (default: console)")
    chat.set_defaults(func=_cmd_chat)

    ask = sub.add_parser("ask", help="print MIA's reply to one message ('-' reads one message per line)")
    ask.add_argument("text", nargs="+", help="the message, or '-' for stdin")
    ask.add_argument("--json", action="store_true", help="print one JSON object per message")
    ask.set_defaults(func=_cmd_ask)

    requests = sub.add_parser("requests", help="Lapor Rakit callback requests, for office records")
    rsub = requests.add_subparsers(dest="requests_command")
    rlist = rsub.add_parser("list", help="list requests")
    rlist.add_argument("--office", help="office id, e.g. muaraenim")
    rlist.add_argument("--status", choices=("open", "claimed", "done"))
    rlist.set_defaults(func=_cmd_requests_list)
    rexport = rsub.add_parser("export", help="export requests to a CSV file")
    rexport.add_argument("--csv", type=Path, required=True, help="file to write")
    rexport.add_argument("--office", help="office id")
    rexport.add_argument("--status", choices=("open", "claimed", "done"))
    rexport.set_defaults(func=_cmd_requests_export)

    report = sub.add_parser("report", help="operators' reports")
    repsub = report.add_subparsers(dest="report_command")
    unanswered = repsub.add_parser("unanswered", help="questions MIA could not answer, grouped")
    unanswered.add_argument("--since", default="7d", help="how far back: 7d, 24h, 30m, 2w (default 7d)")
    unanswered.add_argument("--office", help="office id")
    unanswered.add_argument("--csv", type=Path, help="write the groups to a CSV file too")
    unanswered.set_defaults(func=_cmd_report_unanswered)

    review = sub.add_parser("review", help="review what citizens asked that MIA did not understand, chose in a "
                                           "menu or said did not help; confirm each group as an example")
    review.add_argument("--since", default="30d", help="how far back: 7d, 24h, 2w (default 30d)")
    review.add_argument("--office", help="office id")
    review.add_argument("--list", action="store_true", help="only list the groups and suggestions")
    review.set_defaults(func=_cmd_review)

    db = sub.add_parser("db", help="database maintenance")
    dbsub = db.add_subparsers(dest="db_command")
    migrate = dbsub.add_parser("migrate", help="apply pending schema migrations (mia run does it too) and "
                                                "print the schema version")
    migrate.set_defaults(func=_cmd_db_migrate)
    purge = dbsub.add_parser("purge", help="remove personal data older than MIA_RETENTION_DAYS from every table "
                                                "and from the database files")
    purge.add_argument("--dry-run", action="store_true", help="only count what would change")
    purge.set_defaults(func=_cmd_db_purge)

    staff_commands.add_parser(sub)

    facts = sub.add_parser("facts", help="every fact MIA may state, with its source, age and confidence, oldest first")
    facts.add_argument("--json", action="store_true", help="print the facts as JSON")
    facts.set_defaults(func=_cmd_facts)

    intents = sub.add_parser("intents", help="check and test the content operators edit")
    isub = intents.add_subparsers(dest="intents_command")
    check = isub.add_parser("check", help="validate intents, templates and data; exit 1 on any error")
    check.add_argument("--quiet", action="store_true", help="print errors and the summary only")
    check.set_defaults(func=_cmd_check)
    add = isub.add_parser("add-example", help="add an example to an intent (keeps the file's comments); checked")
    add.add_argument("intent")
    add.add_argument("text", nargs="+")
    add.set_defaults(func=_cmd_add_example)
    test = isub.add_parser("test", help="evaluate a labelled file: accuracy, precision/recall, confusions")
    test.add_argument("file", type=Path)
    test.add_argument("--with-confirmed", action="store_true",
                      help="also use the operators' confirmed additions from the database as labelled cases")
    test.add_argument("--json", action="store_true", help="print the figures as JSON")
    test.add_argument("--min-accuracy", type=float, default=None, help="exit 1 when accuracy is below this")
    test.set_defaults(func=_cmd_test)
    return p
