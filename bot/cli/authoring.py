"""What operators run on the content they edit: mia intents check | add-example | test, mia facts."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from bot.cli.records import _with_store

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
    from bot.content.checks import check_content, print_report

    report = check_content(settings.mia_content_dir, progress=_progress("checking examples"))
    print_report(report, show_warnings=not args.quiet)
    return 1 if report.errors else 0


def _cmd_facts(args, settings) -> int:
    from bot.core.content import Content

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
    from bot.content.checks import check_content, print_report
    from bot.content.editing import EditError, add_example, restore

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
    from bot.core.assistant import Assistant
    from bot.core.content import Content
    from bot.content.evaluation import LabelledFileError, evaluate, format_result, load_cases

    try:
        cases = load_cases(args.file)
    except LabelledFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.with_confirmed:
        from bot.content.evaluation import Case

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
