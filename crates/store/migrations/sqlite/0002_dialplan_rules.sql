-- Dialplan rules managed at run time (SQLite). They come after the rules of
-- the configuration file, in `position` order (1, 2, ... without gaps; the
-- repository keeps it dense). Keep in step with
-- ../postgres/0002_dialplan_rules.sql.

CREATE TABLE dialplan_rules (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    position   INTEGER NOT NULL CHECK (position >= 1),
    name       TEXT    NOT NULL CHECK (length(name) > 0),
    -- `100`, `prefix:9`, `_9NXXNXXXXXX` or `regex:...`, as in the config.
    pattern    TEXT    NOT NULL,
    class      TEXT    NOT NULL DEFAULT 'internal'
               CHECK (class IN ('internal', 'national', 'international')),
    strip      INTEGER NOT NULL DEFAULT 0 CHECK (strip >= 0),
    prepend    TEXT    NOT NULL DEFAULT '',
    rewrite    TEXT,
    action     TEXT    NOT NULL CHECK (action IN ('extension', 'trunk', 'reject')),
    -- JSON array of trunk names, tried in order (action 'trunk').
    trunks     TEXT    NOT NULL DEFAULT '[]',
    -- SIP status for action 'reject' (NULL: 403).
    status     INTEGER CHECK (status IS NULL OR status BETWEEN 400 AND 699),
    enabled    INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX dialplan_rules_position ON dialplan_rules (position);

-- One row: bumped in the same transaction as every change to
-- dialplan_rules, so a running server polls one integer to notice changes.
CREATE TABLE dialplan_revision (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
);
INSERT INTO dialplan_revision (id, revision) VALUES (1, 0);
