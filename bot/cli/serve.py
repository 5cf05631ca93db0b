"""mia run, mia chat (the console channel), mia ask."""

from __future__ import annotations

import asyncio
import json
import logging
import sys

from bot.channels.console import render
from bot.core.messages import Incoming, Reply
from bot.core.yamlfile import ContentErrors

log = logging.getLogger(__name__)


# -- run / chat -------------------------------------------------------------------------


def _cmd_run(args, settings) -> int:
    problems = settings.start_problems()
    if problems:
        for problem in problems:
            print(f"MIA cannot start: {problem}", file=sys.stderr)
        return 1
    return _run_app(settings)


def _cmd_chat(args, settings) -> int:
    """The console channel in the app `mia run` builds: the same store, rate limit and outbox."""
    return _run_app(settings, console_chat=args.chat_id)


def _run_app(settings, console_chat: str | None = None) -> int:
    """Run the app until it is stopped; a failed start is one line naming its cause, exit 1."""
    from bot.app import MiaApp, start_error

    app = MiaApp(settings, console_chat=console_chat)
    try:
        asyncio.run(app.run_until_stopped())
    except (KeyboardInterrupt, ContentErrors):
        raise
    except Exception as exc:  # noqa: BLE001 - one line naming the cause, exit non-zero
        log.debug("start failed", exc_info=True)
        print(f"MIA cannot start: {start_error(exc, settings)}", file=sys.stderr)
        return 1
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
                    print(render(reply))

    asyncio.run(answer_all())
    return 0
