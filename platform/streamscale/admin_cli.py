"""`streamscale admin`: the operator's tools on the configured store.

    streamscale admin grant USERNAME | revoke USERNAME | list
    streamscale admin words list | add WORD | remove WORD

Run on the host by whoever operates it (so no sign-in): this is the only way to make a
platform admin. Every change is audited in the platform-wide log with the actor
"operator". Exit status: 0 done (or already so), 1 no such user or word, 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import trio

from .backends.storage import open_store
from .config import load
from .services.chat.platform_admin import OPERATOR, PlatformAdmin, set_admin
from .services.errors import ApiError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = sub.add_parser("admin", help="platform admins and the global banned-word list")
    admin.add_argument("--config", type=Path, help="TOML config file (default: none)")
    actions = admin.add_subparsers(dest="admin_command", required=True, metavar="ACTION")
    for name, help_text in [("grant", "make a user a platform admin"),
                            ("revoke", "take the platform-admin role away")]:
        actions.add_parser(name, help=help_text).add_argument("username")
    actions.add_parser("list", help="list the platform admins")
    words = actions.add_parser("words", help="the global banned-word list")
    word_actions = words.add_subparsers(dest="words_command", required=True, metavar="ACTION")
    word_actions.add_parser("list", help="list the global banned words")
    for name, help_text in [("add", "ban a word (or prefix*) in every channel"),
                            ("remove", "remove a word from the global list")]:
        word_actions.add_parser(name, help=help_text).add_argument("word")


def run(args: argparse.Namespace) -> int:
    config = load(args.config)
    return trio.run(_run, config.storage_url, args)


async def _run(url: str, args: argparse.Namespace) -> int:
    async with await open_store(url) as store:
        try:
            if args.admin_command in ("grant", "revoke"):
                grant = args.admin_command == "grant"
                user, changed = await set_admin(store, args.username, grant)
                state = "is now" if grant else "is no longer"
                if not changed:
                    state = "was already" if grant else "was not"
                print(f"{user.username} ({user.id}) {state} a platform admin")
            elif args.admin_command == "list":
                for user_id in await store.list_platform_admins():
                    admin_user = await store.get_user(user_id)
                    print(f"{admin_user.username if admin_user else '?'} ({user_id})")
            else:
                admin = PlatformAdmin(store, trusted=True)
                if args.words_command == "list":
                    for word in await admin.words(OPERATOR):
                        print(word)
                elif args.words_command == "add":
                    stored, added = await admin.add_word(OPERATOR, args.word)
                    print(f"{stored}: {'added' if added else 'already on the list'}")
                else:
                    print(f"{await admin.remove_word(OPERATOR, args.word)}: removed")
        except ApiError as exc:
            print(f"streamscale admin: {exc.message}", file=sys.stderr)
            return 1 if exc.status == 404 else 2
    return 0
