"""The `mia` command: run | chat | ask | intents check | intents test."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import uuid
from pathlib import Path

from bot.config import load_settings
from bot.messages import Incoming, Reply
from bot.yamlfile import ContentErrors


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    settings = load_settings()
    # One-shot commands print results; only long-running ones log at the configured level.
    level = settings.mia_log_level.upper() if args.command in ("run", "chat") else "WARNING"
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args, settings) or 0
    except ContentErrors as exc:
        print("MIA cannot start: the content has errors (run `mia intents check`):", file=sys.stderr)
        for err in exc.errors:
            print(f"  {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


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

    intents = sub.add_parser("intents", help="check and test the content operators edit")
    isub = intents.add_subparsers(dest="intents_command")
    check = isub.add_parser("check", help="validate intents, templates and data; exit 1 on any error")
    check.add_argument("--quiet", action="store_true", help="print errors and the summary only")
    check.set_defaults(func=_cmd_check)
    test = isub.add_parser("test", help="evaluate a labelled file: accuracy, precision/recall, confusions")
    test.add_argument("file", type=Path)
    test.add_argument("--json", action="store_true", help="print the figures as JSON")
    test.add_argument("--min-accuracy", type=float, default=None, help="exit 1 when accuracy is below this")
    test.set_defaults(func=_cmd_test)
    return p


# -- run / chat -------------------------------------------------------------------------


def _cmd_run(args, settings) -> int:
    print("MIA: no channel is configured yet; starting the console chat. Type /keluar to quit.", file=sys.stderr)
    return _cmd_chat(argparse.Namespace(chat_id="console"), settings)


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
                if text.strip().isdigit() and 0 < int(text.strip()) <= len(buttons):
                    text = buttons[int(text.strip()) - 1].payload
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


def _cmd_test(args, settings) -> int:
    from bot.assistant import Assistant
    from bot.content import Content
    from bot.evaluation import LabelledFileError, evaluate, format_result, load_cases

    try:
        cases = load_cases(args.file)
    except LabelledFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
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
