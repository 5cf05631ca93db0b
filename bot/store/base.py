"""The Store contract shared by every storage back end, and the conversation state it keeps."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class ConversationState:
    """What MIA remembers of one conversation between messages."""

    lang: str = "id"
    pending: str | None = None  # what MIA asked and waits for, e.g. "office_for_region"
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CallbackRequest:
    """A confirmed Lapor Rakit request: an officer is asked to visit a sick applicant."""

    ref: str
    channel: str
    chat_id: str
    office: str
    region: str
    fields: dict[str, Any]
    status: str  # "open" | "claimed" | "done"
    created_at: float
    claimed_by: str | None = None
    claimed_at: float | None = None
    done_by: str | None = None
    done_at: float | None = None


@dataclass(frozen=True)
class OutboxItem:
    """A message waiting to leave: to a staff chat or to a citizen."""

    id: int
    channel: str
    chat_id: str
    payload: dict[str, Any]
    attempts: int
    next_attempt_at: float


class Unit(Protocol):
    """Operations inside one transaction: all of it commits together, or none of it does, and no
    reader outside the unit sees any of it before the commit."""

    # -- messages and conversations
    async def claim_message(self, channel: str, message_id: str) -> bool:
        """Record a message id; False when it was already handled (a re-delivery)."""

    async def claim_and_load(self, channel: str, message_id: str, chat_id: str) -> ConversationState | None:
        """claim_message and load_state together; None for a re-delivered message."""

    async def load_state(self, channel: str, chat_id: str) -> ConversationState:
        """The conversation's state, or a fresh one."""

    async def save_state(self, channel: str, chat_id: str, state: ConversationState) -> None:
        """Write the conversation's state."""

    async def log_turn(self, channel: str, chat_id: str, text: str, intent: str | None, confidence: float,
                       region: str | None, office: str | None, reply: str) -> None:
        """Append one turn to the conversation log."""

    async def recent_turns(self, channel: str, chat_id: str, limit: int = 10) -> list[dict]:
        """The last turns of a conversation, oldest first ({text, intent, reply, created_at}); the unit's own included."""

    async def add_web_message(self, session_id: str, role: str, text: str, buttons: list[dict]) -> int:
        """Append a message ("user" or "bot") to a web chat's transcript; returns its id (ascending)."""

    # -- Lapor Rakit requests
    async def create_request(self, channel: str, chat_id: str, office: str, region: str,
                             fields: dict) -> CallbackRequest:
        """Save a confirmed request and give it its reference, RKT-<year>-<6 digits>, unique."""

    async def get_request(self, ref: str, lock: bool = True) -> CallbackRequest | None:
        """A request by its reference (case-insensitive), or None. Staff acting on it `lock` its
        conversation for the unit (PostgreSQL); a citizen only reading it (/status) does not, so two
        citizens typing each other's references at once cannot deadlock."""

    async def latest_request(self, channel: str, chat_id: str) -> CallbackRequest | None:
        """The newest request made from this chat, or None."""

    async def set_request_status(self, ref: str, status: str, by: str) -> None:
        """Record a claim ("claimed") or a close ("done"), with who and when."""

    # -- outbox
    async def enqueue(self, channel: str, chat_id: str, payload: dict) -> int:
        """Queue a message (bot.core.messages.to_payload) for the outbox worker; it leaves only if this unit commits."""

    async def enqueue_many(self, channel: str, chat_id: str, payloads: list[dict], lease_seconds: float = 0.0
                           ) -> list[int]:
        """Queue several messages, in order. With a lease the caller sends them itself after the commit and
        the worker leaves them alone until the lease ends (or release_outbox ends it)."""

    async def outbox_waiting(self, channel: str, chat_id: str) -> bool:
        """Whether an earlier message to this chat is still pending (its sender must go first)."""

    async def recent_outbox(self, channel: str, chat_id: str, since: float) -> int:
        """How many messages were queued for this chat since `since` (sent or not)."""

    async def find_staff_message(self, channel: str, chat_id: str, message_id: str) -> tuple[str, str] | None:
        """(kind, target) of a notification MIA sent to a staff chat (its payload's "bind"), or None."""

    async def staff_messages_of(self, kind: str, target: str) -> list[tuple[str, str, str]]:
        """(channel, chat id, message id) of the first staff notification about a target in each staff
        chat (a Telegram group and the web desk may both have one)."""

    # -- the operators' review log
    async def log_unanswered(self, channel: str, office: str | None, text: str, kind: str,
                             candidates: list[tuple[str, float]], ref: str | None = None,
                             answered: str | None = None) -> None:
        """A message for review (text already masked): kind "fallback" (not understood), "menu" (a menu
        was offered) or "not_helpful" (answered `answered`, and the citizen said it did not help)."""

    async def label_unanswered(self, ref: str, chosen: str) -> None:
        """The citizen chose `chosen` from the menu MIA showed for row `ref`."""

    # -- WhatsApp
    async def store_whatsapp_update(self, body: str) -> int | None:
        """Keep a raw webhook body until handled; None, and nothing stored, for a body already kept. It
        names no worker: any worker's after 20 s (the webhook keeps bodies with Store.add_whatsapp_update)."""


class Store(Protocol):
    """Where conversations live, so that a restart or a second worker continues them. Methods
    outside a unit are single transactions of their own and see only committed work."""

    worker: str  # the name this process holds leases under (MIA_WORKER_ID): unique per running worker

    async def open(self) -> None:
        """Connect, creating the schema or applying pending migrations."""

    async def close(self) -> None:
        """Disconnect."""

    def unit(self) -> AbstractAsyncContextManager[Unit]:
        """One transaction (see Unit)."""

    async def schema_version(self) -> int:
        """The number of migrations applied."""

    async def recent_turns(self, channel: str, chat_id: str, limit: int = 10) -> list[dict]:
        """The last turns of a conversation, oldest first."""

    async def list_requests(self, office: str | None = None, status: str | None = None) -> list[CallbackRequest]:
        """Requests, oldest first, optionally of one office and/or status."""

    # -- outbox
    async def due_outbox(self, now: float, limit: int = 50, channels: list[str] | None = None,
                         skip: list[tuple[str, str]] = ()) -> list[OutboxItem]:
        """Pending, unleased rows due by `now` that no older pending row of their chat holds back,
        oldest first; optionally only of `channels` and not of the chats in `skip`."""

    async def next_outbox_due(self, now: float, channels: list[str] | None = None,
                              skip: list[tuple[str, str]] = ()) -> float | None:
        """When the next chat's oldest pending row falls due after `now`, or None."""

    async def outbox_sent(self, item: OutboxItem, message_id: str | None) -> bool:
        """Mark a row this worker holds sent (False, and the row left alone, when it no longer holds it);
        a staff notification's message id is kept for find_staff_message either way."""

    async def outbox_failed(self, item: OutboxItem, error: str, retry_at: float | None) -> bool:
        """A failed attempt of a row this worker holds: retry at `retry_at`, or give up (status "failed")
        when None. False, and nothing recorded, when it no longer holds the row."""

    async def lease_outbox(self, now: float, lease_seconds: float, limit: int = 50,
                           channels: list[str] | None = None, skip: list[tuple[str, str]] = ()) -> list[OutboxItem]:
        """due_outbox, leased to this worker for `lease_seconds` in the same transaction: no other
        worker takes these rows, or the younger rows of their chats, until the lease ends."""

    async def renew_outbox(self, ids: list[int], lease_seconds: float) -> int:
        """Extend to `lease_seconds` from now the lease of those rows of `ids` this worker holds, still
        pending, whose lease has not run out (one that has may be another worker's already); how many.
        A sender renews before each send and stops when fewer come back than it asked for."""

    async def release_outbox(self, channel: str | None, ids: list[int] | None = None) -> int:
        """End leases now: of the rows of `ids` this worker holds, or (None, at start-up) every lease this
        worker (`worker`) holds on the channel's pending rows (channel None: any channel)."""

    # -- jobs one worker runs
    async def hold_worker_id(self) -> None:
        """Hold `worker` for as long as the store is open (`mia run`): a second live process under the same
        name would take the named leases too and, starting, end this one's leases, so it is refused
        (ValueError naming MIA_WORKER_ID) on PostgreSQL. SQLite serves one process: nothing to hold."""

    async def take_lease(self, name: str, seconds: float, now: float | None = None) -> bool:
        """Hold the named lease for `seconds` (taken or renewed); False while another worker's runs."""

    async def count_hit(self, key: str, window_start: float, window: float) -> tuple[int, int]:
        """Count a hit of `key` in the window starting at `window_start`: (that window's hits so far,
        the previous window's), for limits shared by workers. Older windows may go."""

    # -- webhook inbox (Telegram): kept before the 200, handled after
    async def inbox_add(self, channel: str, key: str, chat_id: str, body: str) -> bool:
        """Keep an update; False for one already kept under this key (a re-delivery)."""

    async def inbox_pending(self, channel: str, chat_id: str | None = None, received_before: float | None = None,
                            limit: int = 500, mine: bool = False) -> list[tuple[int, str, str]]:
        """Kept updates not yet handled, (id, chat id, body), oldest first; of one chat, received before a
        time, and/or (mine) kept by this worker (`worker`): at its start, what its last run left."""

    async def inbox_done(self, row_id: int, error: str | None = None) -> None:
        """A kept update was handled (or failed for good, with the error)."""

    # -- web chat
    async def web_messages(self, session_id: str, after: int = 0, limit: int = 500) -> list[dict]:
        """A web chat's transcript after message id `after`, oldest first ({id, role, text, buttons})."""

    async def web_transcript_bytes(self, session_id: str) -> int:
        """How much a web chat's transcript holds (characters of its texts and buttons)."""

    async def expire_single_turn_web(self, older_than: float, batch: int = 2000) -> int:
        """Delete web conversations idle since `older_than` that never got past one turn; how many went."""

    # -- WhatsApp
    async def add_whatsapp_update(self, body: str) -> int | None:
        """Keep a raw webhook body until handled, as kept by this worker (`worker`); its id, or None, and
        nothing stored, for a body already kept (a replay). A transaction of its own, committed on return."""

    async def pending_whatsapp_updates(self, received_before: float | None = None,
                                       mine: bool = False) -> list[tuple[int, str]]:
        """Stored webhook bodies not yet handled, (id, body) oldest first; optionally received before a time
        (another worker's, left unhandled) and/or (mine) kept by this worker: after a receive, and at start."""

    async def whatsapp_update_done(self, row_id: int, error: str | None) -> None:
        """A stored body was handled (or failed for good with `error`)."""

    async def touch_whatsapp_contact(self, chat_id: str, inbound_at: float) -> list[str]:
        """Record a citizen's message time (the 24-hour window); return the numbered options last shown."""

    async def whatsapp_contact(self, chat_id: str) -> dict | None:
        """{"last_inbound_at", "options"} of a WhatsApp chat, or None."""

    async def set_whatsapp_options(self, chat_id: str, options: list[str]) -> None:
        """The payloads a numbered answer ("2") stands for in this chat."""

    async def close_whatsapp_window(self, chat_id: str) -> None:
        """WhatsApp said the 24-hour window is closed: templates only until the citizen writes."""

    async def record_whatsapp_status(self, message_id: str, status: str, chat_id: str, error_code: int | None) -> bool:
        """Record a delivery status once; False for one already recorded (a replay)."""

    # -- review, digest, confirmed examples
    async def unanswered_since(self, since: float, office: str | None = None) -> list[dict]:
        """Review rows since a time, oldest first."""

    async def review_items(self, since: float = 0.0, office: str | None = None, status: str | None = "open",
                           kinds: tuple[str, ...] | None = None) -> list[dict]:
        """The review log, oldest first: masked text, kind, candidates, answered, chosen, decision."""

    async def decide_review(self, ids: list[int], status: str, intent: str | None, by: str) -> int:
        """An operator's decision on open review rows ("confirmed" with an intent, or "dropped"); rows changed."""

    async def add_confirmed_example(self, text: str, intent: str | None, decided_by: str) -> None:
        """An operator's labelled case for `mia intents test`."""

    async def confirmed_examples(self) -> list[dict]:
        """Every confirmed example ({text, intent}), oldest first."""

    async def add_digest_item(self, example: str, count: int, candidates: list[str],
                              review_ids: list[int] = ()) -> int:
        """A group of the weekly digest; returns its id."""

    async def digest_item(self, item_id: int) -> dict | None:
        """A digest group ({id, example, count, candidates, review_ids, status}), or None."""

    async def decide_digest_item(self, item_id: int, status: str, by: str) -> bool:
        """Mark a group decided; False when it already was."""

    # -- settings kept with the data
    async def get_meta(self, key: str) -> str | None:
        """A stored value, or None."""

    async def meta_default(self, key: str, value: str) -> str:
        """The stored value of `key`, storing `value` first if there is none (the first writer wins)."""

    async def set_meta(self, key: str, value: str) -> None:
        """Store a value."""

    # -- the staff desk on the web
    async def add_staff(self, name: str, office: str, link_hash: str, link_expires_at: float) -> bool:
        """A new staff account with the hash of its one-time sign-in link; False when the name is taken."""

    async def renew_staff_link(self, name: str, link_hash: str, link_expires_at: float) -> bool:
        """A fresh sign-in link for an account (the old one stops working); False for no such name."""

    async def list_staff(self) -> list[dict]:
        """Every account ({id, name, office, created_at, session_until}), by office and name."""

    async def remove_staff(self, name: str) -> bool:
        """Delete an account and its sessions; False for no such name."""

    async def staff_offices(self) -> list[str]:
        """Offices with at least one staff account (their notices go to the desk too)."""

    async def redeem_staff_link(self, link_hash: str, now: float) -> dict | None:
        """Spend a sign-in link that has not expired: the account ({id, name, office}), or None."""

    async def create_staff_session(self, session_hash: str, account_id: int, csrf: str, expires_at: float) -> None:
        """A desk session (its key's hash) for an account, with its CSRF token; expired ones are dropped."""

    async def staff_session(self, session_hash: str, now: float) -> dict | None:
        """The unexpired session's account ({id, name, office, csrf}), or None."""

    async def end_staff_session(self, session_hash: str) -> None:
        """Sign out: the session opens nothing any more."""

    async def desk_notices(self, office: str, threads: int = 200) -> list[dict]:
        """The office's delivered desk notices, oldest first: every notice of its `threads` most recently
        active threads (a request or a conversation), and of each of its requests still open or claimed
        however old: {id, message_id, kind, target, payload, at}."""

    # -- retention
    async def purge(self, older_than: float, dry_run: bool = False, vacuum: bool = False) -> dict[str, int]:
        """Nothing personal older than `older_than` stays; requests keep only office, region, status and
        times. Counts per table (what would go, with dry_run)."""
