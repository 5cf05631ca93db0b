"""mia staff add | link | list | remove: the accounts of the staff desk on the web (/staff)."""

from __future__ import annotations

import asyncio
import sys
import time

from bot.cli.records import _with_store


def _link(settings, token: str) -> str:
    return f"{settings.web_public_url}/staff/masuk?t={token}"


def _known_office(settings, office: str) -> bool:
    from bot.core.content import Content

    from bot.channels.desk import OPERATORS

    offices = {o.id: o for o in Content.load(settings.mia_content_dir).knowledge.offices}
    if office in offices or office == OPERATORS:
        return True
    print(f"error: unknown office {office!r}; offices: {', '.join(sorted(offices))} (or {OPERATORS}: the review "
          "queue of MIA's operators)", file=sys.stderr)
    return False


def _cmd_staff_add(args, settings) -> int:
    from bot.channels.desk import LINK_SECONDS, new_link_token, token_hash

    name = " ".join(args.name.split())
    if not name or len(name) > 80:
        print("error: give the staff member's name (at most 80 characters)", file=sys.stderr)
        return 2
    if not _known_office(settings, args.office):
        return 2
    token = new_link_token()
    added = asyncio.run(_with_store(settings, lambda store: store.add_staff(
        name, args.office, token_hash(token), time.time() + LINK_SECONDS)))
    if not added:
        print(f"error: {name!r} already has an account (mia staff link {name!r} gives a new sign-in link)",
              file=sys.stderr)
        return 1
    print(f"Akun petugas {name} ({args.office}) dibuat. Tautan masuk sekali pakai, berlaku 24 jam:")
    print(f"Staff account {name} ({args.office}) created. One-time sign-in link, valid for 24 hours:")
    print(_link(settings, token))
    return 0


def _cmd_staff_link(args, settings) -> int:
    from bot.channels.desk import LINK_SECONDS, new_link_token, token_hash

    token = new_link_token()
    renewed = asyncio.run(_with_store(settings, lambda store: store.renew_staff_link(
        args.name, token_hash(token), time.time() + LINK_SECONDS)))
    if not renewed:
        print(f"error: no staff account named {args.name!r} (mia staff list)", file=sys.stderr)
        return 1
    print(f"Tautan masuk baru untuk {args.name} (sekali pakai, 24 jam) / new sign-in link:")
    print(_link(settings, token))
    return 0


def _cmd_staff_list(args, settings) -> int:
    rows = asyncio.run(_with_store(settings, lambda store: store.list_staff()))
    if not rows:
        print("Belum ada akun petugas / no staff accounts (mia staff add NAME --office OFFICE)")
        return 0
    now = time.time()
    for r in rows:
        signed_in = "masuk / signed in" if r["session_until"] and r["session_until"] > now else "-"
        print(f"{r['office']:<14} {r['name']:<30} {signed_in}")
    return 0


def _cmd_staff_remove(args, settings) -> int:
    removed = asyncio.run(_with_store(settings, lambda store: store.remove_staff(args.name)))
    if not removed:
        print(f"error: no staff account named {args.name!r}", file=sys.stderr)
        return 1
    print(f"Akun {args.name} dihapus; sesinya berakhir / account removed, its sessions ended.")
    return 0


def add_parser(sub) -> None:
    staff = sub.add_parser("staff", help="accounts of the staff desk on the web (/staff)")
    ssub = staff.add_subparsers(dest="staff_command")
    add = ssub.add_parser("add", help="create an account and print its one-time sign-in link")
    add.add_argument("name")
    add.add_argument("--office", required=True, help="office id, e.g. palembang or muaraenim; 'operators' for "
                                                     "MIA's operators (the review queue)")
    add.set_defaults(func=_cmd_staff_add)
    link = ssub.add_parser("link", help="a new one-time sign-in link for an account")
    link.add_argument("name")
    link.set_defaults(func=_cmd_staff_link)
    ls = ssub.add_parser("list", help="the accounts, by office")
    ls.set_defaults(func=_cmd_staff_list)
    remove = ssub.add_parser("remove", help="remove an account and end its sessions")
    remove.add_argument("name")
    remove.set_defaults(func=_cmd_staff_remove)
