"""The SQLite schema: each migration runs once, in order (the count applied is PRAGMA user_version)."""

from __future__ import annotations

# Each migration runs once, in order; the applied count is kept in PRAGMA user_version.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE processed_messages (
        channel TEXT NOT NULL,
        message_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (channel, message_id)
    );
    CREATE TABLE conversations (
        channel TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        lang TEXT NOT NULL DEFAULT 'id',
        pending TEXT,
        data TEXT NOT NULL DEFAULT '{}',
        updated_at REAL NOT NULL,
        PRIMARY KEY (channel, chat_id)
    );
    CREATE TABLE turns (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        channel TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        text TEXT NOT NULL,
        intent TEXT,
        confidence REAL NOT NULL,
        region TEXT,
        office TEXT,
        reply TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX turns_chat ON turns (channel, chat_id, id);
    """,
    """
    CREATE TABLE callback_requests (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ref TEXT UNIQUE,
        channel TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        office TEXT NOT NULL,
        region TEXT NOT NULL,
        fields TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'open',
        created_at REAL NOT NULL,
        claimed_by TEXT,
        claimed_at REAL,
        done_by TEXT,
        done_at REAL
    );
    CREATE INDEX callback_requests_office ON callback_requests (office, status);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        channel TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        last_error TEXT,
        created_at REAL NOT NULL,
        sent_at REAL,
        sent_message_id TEXT
    );
    CREATE INDEX outbox_due ON outbox (status, next_attempt_at, id);
    CREATE TABLE staff_messages (
        channel TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        PRIMARY KEY (channel, chat_id, message_id)
    );
    """,
    """
    CREATE TABLE web_messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL,
        role TEXT NOT NULL,
        text TEXT NOT NULL,
        buttons TEXT NOT NULL DEFAULT '[]',
        created_at REAL NOT NULL
    );
    CREATE INDEX web_messages_session ON web_messages (session_id, id);
    """,
    """
    CREATE TABLE whatsapp_inbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        body TEXT NOT NULL,
        received_at REAL NOT NULL,
        processed_at REAL,
        error TEXT
    );
    CREATE INDEX whatsapp_inbox_pending ON whatsapp_inbox (processed_at, id);
    CREATE TABLE whatsapp_contacts (
        chat_id TEXT PRIMARY KEY,
        last_inbound_at REAL NOT NULL,
        options TEXT NOT NULL DEFAULT '[]'
    );
    CREATE TABLE whatsapp_statuses (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL,
        status TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        error_code INTEGER,
        recorded_at REAL NOT NULL
    );
    """,
    """
    CREATE TABLE unanswered (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        channel TEXT NOT NULL,
        office TEXT,
        text TEXT NOT NULL,
        kind TEXT NOT NULL,
        candidates TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX unanswered_time ON unanswered (created_at);
    CREATE TABLE confirmed_examples (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        text TEXT NOT NULL,
        intent TEXT,
        decided_by TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    """,
    """
    CREATE TABLE digest_items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        example TEXT NOT NULL,
        count INTEGER NOT NULL,
        candidates TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'open',
        decided_by TEXT,
        created_at REAL NOT NULL
    );
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # The outbox worker asks, per chat, whether an older row holds a row back.
    """
    CREATE INDEX outbox_chat ON outbox (channel, chat_id, status, id);
    """,
    # Retention: staff notifications' targets ("whatsapp:62812...") leave with the rest; rows from
    # before this migration count from the migration.
    """
    ALTER TABLE staff_messages ADD COLUMN created_at REAL NOT NULL DEFAULT 0;
    UPDATE staff_messages SET created_at = CAST(strftime('%s', 'now') AS REAL);
    """,
    # The review log: what MIA answered, what the citizen chose in a menu, what an operator decided.
    """
    ALTER TABLE unanswered ADD COLUMN ref TEXT;
    ALTER TABLE unanswered ADD COLUMN answered TEXT;
    ALTER TABLE unanswered ADD COLUMN chosen TEXT;
    ALTER TABLE unanswered ADD COLUMN status TEXT NOT NULL DEFAULT 'open';
    ALTER TABLE unanswered ADD COLUMN decided_intent TEXT;
    ALTER TABLE unanswered ADD COLUMN decided_by TEXT;
    ALTER TABLE unanswered ADD COLUMN decided_at REAL;
    CREATE INDEX unanswered_ref ON unanswered (ref);
    CREATE INDEX unanswered_status ON unanswered (status, created_at);
    """,
    # A digest question remembers the review rows it stands for, so deciding it decides them.
    """
    ALTER TABLE digest_items ADD COLUMN review_ids TEXT NOT NULL DEFAULT '[]';
    """,
    # The relay budget counts what each staff chat was sent in the last minute.
    """
    CREATE INDEX outbox_recent ON outbox (channel, chat_id, created_at);
    """,
    # A replayed webhook body (same bytes, same signature) is stored once.
    """
    ALTER TABLE whatsapp_inbox ADD COLUMN body_hash TEXT;
    CREATE UNIQUE INDEX whatsapp_inbox_hash ON whatsapp_inbox (body_hash);
    """,
    # Staff desk accounts (a one-time sign-in link, kept as a hash) and their sessions (hashes too).
    """
    CREATE TABLE staff_accounts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        office TEXT NOT NULL,
        link_hash TEXT UNIQUE,
        link_expires_at REAL,
        created_at REAL NOT NULL
    );
    CREATE TABLE staff_sessions (
        session_hash TEXT PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES staff_accounts (id) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX outbox_desk ON outbox (channel, chat_id, status, id);
    """,
    # Several senders on one outbox: who holds a row's lease. Webhook updates kept before the 200
    # (Telegram), leases of jobs that one worker runs (digest, purge),
    # hits of the web chat's limits counted for all workers.
    """
    ALTER TABLE outbox ADD COLUMN leased_by TEXT;
    CREATE TABLE inbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        channel TEXT NOT NULL,
        key TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        body TEXT NOT NULL,
        received_at REAL NOT NULL,
        processed_at REAL,
        error TEXT,
        worker TEXT,
        UNIQUE (channel, key)
    );
    CREATE INDEX inbox_pending ON inbox (channel, processed_at, chat_id, id);
    CREATE INDEX inbox_time ON inbox (received_at);
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE TABLE hits (
        key TEXT NOT NULL,
        window_start REAL NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (key, window_start)
    );
    CREATE INDEX hits_time ON hits (window_start);
    """,
    # Several workers on one WhatsApp number: who kept a stored body (its worker handles it at once;
    # another only once it is 20 s old). Bodies kept before: NULL, anyone's after 20 s.
    """
    ALTER TABLE whatsapp_inbox ADD COLUMN worker TEXT;
    """,
)
