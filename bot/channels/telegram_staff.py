"""Staff and operators on Telegram: buttons, replies and commands in the offices' and operators' chats."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import TelegramError

from bot.core.messages import Reply, to_payload
from bot.runtime.staff import StaffDesk, StaffEvent

log = logging.getLogger(__name__)

CHANNEL = "telegram"
ACTIONS = {"claim": "claim", "done": "done"}  # callback prefix -> staff action


class TelegramStaffConsole:
    """What staff do in their office's chat (claim, close, reply, /selesai, /reload) and operators
    in theirs (digest decisions, /reload); every action goes to the staff desk or the digest."""

    def __init__(self, desk: StaffDesk, reload=None, operator_chat: str | None = None, digest=None):
        self.desk = desk
        self.reload = reload  # async callable: /reload from a staff or the operators' chat
        self.operator_chat = operator_chat
        self.digest = digest

    def serves(self, chat_id: str) -> bool:
        """True for an office's staff chat or the operators' chat."""
        return self.desk.office_of_chat(CHANNEL, chat_id) is not None or chat_id == self.operator_chat

    async def handle(self, update: Update, chat_id: str) -> None:
        """One update in a staff or operators' chat."""
        if update.callback_query is not None:
            await self.on_button(update, chat_id)
            return
        message = update.message
        if message is None:
            return
        if (message.text or "").startswith("/reload"):
            await self._on_reload(message)
            return
        if self.desk.office_of_chat(CHANNEL, chat_id) is not None:
            await self._on_staff_message(update, chat_id)

    async def on_button(self, update: Update, chat_id: str) -> None:
        """A staff or digest button; refused (by the desk) outside the chat it belongs to."""
        query = update.callback_query
        data = query.data or ""
        user = query.from_user
        if data.startswith("dg:"):
            if chat_id != self.operator_chat or self.digest is None:
                await query.answer("Maaf, tombol ini hanya untuk grup operator MIA.", show_alert=True)
                return
            result = await self.digest.decide(data[len("dg:"):], _name(user))
            await query.answer(result[:190], show_alert=len(result) > 190)
            await self.digest.notify_payload(to_payload(Reply(result)))
            return
        prefix, _, ref = data.partition(":")
        if prefix not in ACTIONS:
            await query.answer()
            return
        event = StaffEvent(CHANNEL, chat_id, str(update.update_id), str(user.id), _name(user), ACTIONS[prefix], ref=ref)
        result = await self.desk.handle(event)
        await query.answer(result.text, show_alert=not result.ok)

    async def _on_reload(self, message) -> None:
        if self.reload is None:
            return
        result = await self.reload("/reload dari Telegram")
        try:
            await message.reply_text(result.message)
        except TelegramError as exc:
            log.warning("could not answer /reload: %s", exc)

    async def _on_staff_message(self, update: Update, chat_id: str) -> None:
        message = update.message
        if message.reply_to_message is None or not message.text:
            return  # staff talking among themselves
        text = message.text.strip()
        action = "end" if text.split()[0].split("@")[0].lower() == "/selesai" else "reply"
        event = StaffEvent(CHANNEL, chat_id, str(update.update_id), str(message.from_user.id),
                           _name(message.from_user), action, reply_to=str(message.reply_to_message.message_id),
                           text=text)
        result = await self.desk.handle(event)
        try:
            await message.reply_text(result.text)
        except TelegramError as exc:
            log.warning("could not confirm to staff chat %s: %s", chat_id, exc)


def _name(user) -> str:
    if user is None:
        return "?"
    return " ".join(filter(None, (user.first_name, user.last_name))) or (user.username or str(user.id))
