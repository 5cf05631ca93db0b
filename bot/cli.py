"""The `mia` command: run | chat | ask | intents check | intents test."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import uuid
from pathlib import Path

from bot.config import SettingsError, load_settings
from bot.messages import Incoming, Reply, option_number
from bot.yamlfile import ContentErrors

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
    from bot.content import configure_understanding

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
    from bot.privacy import MaskingFilter, SecretFilter

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
    purge = dbsub.add_parser("purge", help="remove personal data older than MIA_RETENTION_DAYS from every table "
                                                "and from the database files")
    purge.add_argument("--dry-run", action="store_true", help="only count what would change")
    purge.set_defaults(func=_cmd_db_purge)

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


# -- run / chat -------------------------------------------------------------------------


def _cmd_run(args, settings) -> int:
    from bot.app import MiaApp

    problems = settings.start_problems()
    if problems:
        for problem in problems:
            print(f"MIA cannot start: {problem}", file=sys.stderr)
        return 1
    app = MiaApp(settings)
    try:
        asyncio.run(app.run_until_stopped())
    except (KeyboardInterrupt, ContentErrors):
        raise
    except Exception as exc:  # noqa: BLE001 - one line naming the cause, exit non-zero
        from bot.app import start_error

        log.debug("start failed", exc_info=True)
        print(f"MIA cannot start: {start_error(exc, settings)}", file=sys.stderr)
        return 1
    return 0


def _render_console(reply: Reply) -> str:
    lines = [reply.text.replace("*", "")]
    for n, b in enumerate(reply.buttons, 1):
        lines.append(f"  [{n}] {b.title}")
    return "\n".join(lines)


def _cmd_chat(args, settings) -> int:
    from bot.app import open_assistant

    async def loop() -> None:
        async with open_assistant(settings) as assistant:
            interactive = sys.stdin.isatty()
            buttons: tuple = ()
            if interactive:
                print("MIA siap. Ketik pertanyaan Anda (angka untuk memilih tombol, /keluar untuk berhenti).")
            while True:
                if interactive:
                    print("> ", end="", flush=True)
                line = await asyncio.to_thread(sys.stdin.readline)
                if not line:
                    break
                text = line.rstrip("\n")
                if text.strip() in ("/keluar", "/exit", "/quit"):
                    break
                number = option_number(text, len(buttons))
                if number is not None:
                    text = buttons[number - 1].payload
                msg = Incoming("console", args.chat_id, text, uuid.uuid4().hex)
                for reply in await assistant.handle(msg):
                    print(_render_console(reply), flush=True)
                    buttons = reply.buttons
                if not interactive:
                    print(flush=True)

    asyncio.run(loop())
    return 0


# -- ask --------------------------------------------------------------------------------


def _cmd_ask(args, settings) -> int:
    from bot.app import open_assistant

    texts = args.text
    from_stdin = texts == ["-"]

    async def answer_all() -> None:
        # Each message is a fresh conversation in a throw-away in-memory database.
        async with open_assistant(settings, db_path=":memory:") as assistant:
            lines = sys.stdin if from_stdin else [" ".join(texts)]
            for n, line in enumerate(lines):
                text = line.rstrip("\n") if from_stdin else line
                msg = Incoming("cli", f"ask-{n}", text, f"ask-{n}")
                outcome = await assistant.handle_outcome(msg)
                reply = outcome.replies[0] if outcome and outcome.replies else Reply("")
                if args.json:
                    print(json.dumps({
                        "intent": outcome.intent,
                        "confidence": outcome.confidence,
                        "region": outcome.region,
                        "office": outcome.office,
                        "reply": "\n\n".join(r.text for r in outcome.replies),
                        "buttons": [b.title for r in outcome.replies for b in r.buttons],
                    }, ensure_ascii=False))
                else:
                    print(_render_console(reply))

    asyncio.run(answer_all())
    return 0


# -- requests -----------------------------------------------------------------------------

EXPORT_COLUMNS = ("ref", "office", "region", "status", "created", "applicant_name", "relation", "phone", "address",
                  "place", "condition", "preferred_day", "channel", "claimed_by", "claimed_at", "done_by", "done_at")


async def _load_requests(settings, office, status):
    return await _with_store(settings, lambda store: store.list_requests(office=office, status=status))


def _when(ts: float | None) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else ""


def _cmd_requests_list(args, settings) -> int:
    requests = asyncio.run(_load_requests(settings, args.office, args.status))
    if not requests:
        print("Tidak ada permintaan. / No requests.")
        return 0
    print(f"{'ref':<16} {'office':<10} {'status':<8} {'created':<16} {'applicant':<24} place")
    for r in requests:
        print(f"{r.ref:<16} {r.office:<10} {r.status:<8} {_when(r.created_at):<16} "
              f"{r.fields.get('applicant_name', '')[:24]:<24} {r.fields.get('place', '')}")
    print(f"{len(requests)} request(s)")
    return 0


def _cmd_requests_export(args, settings) -> int:
    from bot.csvfile import private_csv

    requests = asyncio.run(_load_requests(settings, args.office, args.status))
    # Health and contact data: the file is readable by its owner only.
    with private_csv(args.csv) as writer:
        writer.writerow(EXPORT_COLUMNS)
        for r in requests:
            row = {"ref": r.ref, "office": r.office, "region": r.region, "status": r.status,
                   "created": _when(r.created_at), "channel": r.channel, "claimed_by": r.claimed_by or "",
                   "claimed_at": _when(r.claimed_at), "done_by": r.done_by or "", "done_at": _when(r.done_at),
                   **{k: r.fields.get(k, "") for k in EXPORT_COLUMNS if k in r.fields}}
            writer.writerow([row.get(c, "") for c in EXPORT_COLUMNS])
    print(f"{len(requests)} request(s) written to {args.csv}")
    return 0


# -- reports and maintenance -------------------------------------------------------------


async def _with_store(settings, work):
    from bot.store.sqlite import SQLiteStore

    store = SQLiteStore(settings.mia_db_path)
    await store.open()
    try:
        return await work(store)
    finally:
        await store.close()


def _cmd_report_unanswered(args, settings) -> int:
    from bot.reports import since_timestamp
    from bot.review import describe, groups_to_review

    try:
        since = since_timestamp(args.since)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from bot.content import Content

    content = Content.load(settings.mia_content_dir, progress=_stage_progress())
    rows = asyncio.run(_with_store(settings, lambda store: store.unanswered_since(since, args.office)))
    groups = groups_to_review(rows, content)
    print(f"{len(rows)} pertanyaan tak terjawab dalam {args.since} / unanswered questions, {len(groups)} kelompok / groups")
    for n, g in enumerate(groups, 1):
        print(f"{n:>3}. {g.count:>4}x  \"{g.example}\"  -> terdekat/nearest: {g.nearest_intent or '-'}  ({describe(g)})")
    if args.csv:
        from bot.csvfile import private_csv

        with private_csv(args.csv) as w:  # citizens' words: owner only
            w.writerow(["count", "example", "nearest_intent", "offices", "texts"])
            for g in groups:
                w.writerow([g.count, g.example, g.nearest_intent or "", " ".join(f"{k}:{v}" for k, v in g.offices.items()),
                            " | ".join(g.texts[:20])])
        print(f"CSV: {args.csv}")
    return 0


def _cmd_review(args, settings) -> int:
    from bot.checks import check_content
    from bot.content import Content
    from bot.reports import since_timestamp
    from bot.review import confirm, describe, drop, groups_to_review, suggest

    try:
        since = since_timestamp(args.since)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    content = Content.load(settings.mia_content_dir, progress=_stage_progress())
    titles = {it.id: it.title["id"] for it in content.intents.intents}
    by = f"operator:{os.environ.get('USER', 'console')}"
    checked = lambda root: check_content(root, cross_validate=False)  # noqa: E731 - the edit's gate

    async def run(store) -> int:
        rows = await store.review_items(since=since, office=args.office)
        groups = groups_to_review(rows, content)
        print(f"{len(rows)} pesan untuk ditinjau / messages to review, {len(groups)} kelompok / groups")
        for n, group in enumerate(groups, 1):
            s = suggest(group, content)
            print(f"\n[{n}/{len(groups)}] {group.count}x ({describe(group)})\n  \"{group.example}\"")
            for other in list(dict.fromkeys(group.texts[1:]))[:3]:
                print(f"    juga / also: \"{other}\"")
            print(f"  Saran / suggestion: {s.intent or '-'} ({titles.get(s.intent, '-')}): {s.why}")
            if args.list:
                continue
            while True:
                key = _ask("  [y] tambah sebagai contoh / add as example  [c] intent lain / other intent  "
                           "[d] buang / drop  [s] lewati / skip  [q] keluar / quit > ")
                if key == "y" and s.intent:
                    print("  " + await confirm(store, settings.mia_content_dir, group, s.intent, by, checked))
                elif key == "c":
                    intent = _pick_intent(content)
                    if intent is None:
                        continue
                    print("  " + await confirm(store, settings.mia_content_dir, group, intent, by, checked))
                elif key == "d":
                    print("  " + await drop(store, group, by))
                elif key in ("s", ""):
                    pass
                elif key in ("q", None):
                    return 0
                else:
                    continue
                break
        return 0

    return asyncio.run(_with_store(settings, run))


def _ask(prompt: str) -> str | None:
    """One answer from the operator; None at the end of input."""
    try:
        return input(prompt).strip().lower()
    except EOFError:
        return None


def _pick_intent(content) -> str | None:
    """The operator types part of an intent's id or title and picks it by number."""
    from rapidfuzz import fuzz, process

    query = _ask("  intent (id atau judul / id or title): ")
    if not query:
        return None
    names = {it.id: f"{it.id} ({it.title['id']})" for it in content.intents.intents}
    if query in names:
        return query
    hits = process.extract(query, names, scorer=fuzz.WRatio, limit=5)
    for n, (label, _, _) in enumerate(hits, 1):
        print(f"    {n}. {label}")
    choice = _ask("  nomor / number: ")
    if choice and choice.isascii() and choice.isdigit() and 1 <= int(choice) <= len(hits):
        return hits[int(choice) - 1][2]
    return None


def _stage_progress():
    """A cold build of the model prints its progress on stderr; a warm one prints nothing."""
    def show(stage: str, done: int, total: int) -> None:
        label = {"embed": "sentence vectors of new examples"}.get(stage, stage)
        end = "\n" if done >= total else ""
        print(f"\r{label}: {done}/{total}", end=end, file=sys.stderr, flush=True)
    return show


def _cmd_db_purge(args, settings) -> int:
    import time as _time

    cutoff = _time.time() - settings.mia_retention_days * 86400
    counts = asyncio.run(_with_store(settings, lambda store: store.purge(cutoff, dry_run=args.dry_run,
                                                                                vacuum=True)))
    label = "would change (dry run)" if args.dry_run else "changed"
    print(f"Retention {settings.mia_retention_days} days: {label}:")
    for name, n in counts.items():
        print(f"  {name}: {n}")
    return 0


# -- intents check / test ---------------------------------------------------------------


def _progress(label: str):
    """A progress line on stderr when it is a terminal; silent otherwise."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        width = 30
        filled = int(width * done / total) if total else width
        end = "\n" if done >= total else ""
        print(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end=end, file=sys.stderr,
              flush=True)

    return show


def _cmd_check(args, settings) -> int:
    from bot.checks import check_content, print_report

    report = check_content(settings.mia_content_dir, progress=_progress("checking examples"))
    print_report(report, show_warnings=not args.quiet)
    return 1 if report.errors else 0


def _cmd_facts(args, settings) -> int:
    from bot.content import Content

    rows = Content.load(settings.mia_content_dir).knowledge.facts_by_age()
    if args.json:
        print(json.dumps([{"file": f"data/{r.file}", "name": r.name, "as_of": r.fact.as_of.isoformat(),
                           "age_days": r.days, "confidence": r.fact.confidence, "cite": r.fact.cite,
                           "source": r.fact.source, "changes": r.fact.changes} for r in rows],
                         ensure_ascii=False, indent=1))
        return 0
    print(f"{'per':<10}  {'umur':>9}  {'keyakinan':<11}  {'fakta':<34}  sumber singkat")
    for r in rows:
        age = f"{r.days // 30} bln" if r.days >= 60 else f"{r.days} hari"
        print(f"{r.fact.as_of.isoformat():<10}  {age:>9}  {r.fact.confidence:<11}  "
              f"{(r.file + ': ' + r.name)[:34]:<34}  {r.fact.cite}")
    stale = [r for r in rows if r.days > 365]
    print(f"{len(rows)} fakta; {len(stale)} terakhir dikonfirmasi lebih dari 12 bulan lalu (periksa lebih dulu). "
          f"Sumber lengkap: mia facts --json.")
    return 0


def _cmd_add_example(args, settings) -> int:
    from bot.checks import check_content, print_report
    from bot.editing import EditError, add_example, restore

    text = " ".join(args.text)
    try:
        path, original = add_example(Path(settings.mia_content_dir) / "intents", args.intent, text)
    except EditError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report = check_content(settings.mia_content_dir)
    if report.errors:
        restore(path, original)
        print_report(report, show_warnings=False)
        print(f"Not added: the example makes the content fail its check. {path} is unchanged.", file=sys.stderr)
        return 1
    print(f"Added to {args.intent} in {path}: {text!r}")
    return 0


def _cmd_test(args, settings) -> int:
    from bot.assistant import Assistant
    from bot.content import Content
    from bot.evaluation import LabelledFileError, evaluate, format_result, load_cases

    try:
        cases = load_cases(args.file)
    except LabelledFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.with_confirmed:
        from bot.evaluation import Case

        confirmed = asyncio.run(_with_store(settings, lambda store: store.confirmed_examples()))
        cases += [Case(c["text"], c["intent"]) for c in confirmed]
    assistant = Assistant(Content.load(settings.mia_content_dir), store=None)
    result = evaluate(assistant, cases, progress=_progress("testing"))
    if args.json:
        print(json.dumps(result.as_dict(), ensure_ascii=False, indent=1))
    else:
        print(format_result(result))
    if args.min_accuracy is not None and result.accuracy < args.min_accuracy:
        print(f"FAILED: accuracy {result.accuracy:.1%} is below {args.min_accuracy:.1%}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
