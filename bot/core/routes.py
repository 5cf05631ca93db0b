"""Where each office's staff read MIA's notices: its Telegram group and, once it has staff accounts, the web desk."""

from __future__ import annotations

DESK = "desk"


class StaffRoutes:
    """Office id -> staff destinations ((channel, chat id) pairs). The Telegram groups come from the
    settings; the desk joins for an office as soon as it has a staff account (the app refreshes it)."""

    def __init__(self, chats: dict | None = None):
        self._fixed: dict[str, tuple[tuple[str, str], ...]] = {}
        for office, value in (chats or {}).items():
            pairs = (value,) if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) else value
            self._fixed[office] = tuple((str(c), str(i)) for c, i in pairs)
        self._desk: frozenset[str] = frozenset()

    def set_desk_offices(self, offices) -> None:
        self._desk = frozenset(offices)

    def of(self, office: str) -> tuple[tuple[str, str], ...]:
        """The office's destinations, Telegram first; () when nobody reads notices for it."""
        return self._fixed.get(office, ()) + (((DESK, office),) if office in self._desk else ())

    def offices(self) -> frozenset[str]:
        """Offices whose staff read notices somewhere (MIA may promise an officer there)."""
        return frozenset(self._fixed) | self._desk

    def office_of(self, channel: str, chat_id: str) -> str | None:
        """The office whose staff chat (or desk) this is, or None for any other chat."""
        if channel == DESK:
            return chat_id if chat_id in self._desk else None
        return next((o for o, dests in self._fixed.items() if (channel, str(chat_id)) in dests), None)

    def __contains__(self, office: str) -> bool:
        return bool(self.of(office))

    def __bool__(self) -> bool:
        return bool(self._fixed or self._desk)
