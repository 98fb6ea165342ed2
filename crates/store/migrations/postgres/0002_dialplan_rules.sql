-- Dialplan rules managed at run time (PostgreSQL). They come after the rules
-- of the configuration file, in `position` order (1, 2, ... without gaps;
-- the repository keeps it dense). Keep in step with
-- ../sqlite/0002_dialplan_rules.sql.

CREATE TABLE dialplan_rules (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    position   BIGINT  NOT NULL CHECK (position >= 1),
    name       TEXT    NOT NULL CHECK (length(name) > 0),
    -- `100`, `prefix:9`, `_9NXXNXXXXXX` or `regex:...`, as in the config.
    pattern    TEXT    NOT NULL,
    class      TEXT    NOT NULL DEFAULT 'internal'
               CHECK (class IN ('internal', 'national', 'international')),
    strip      BIGINT  NOT NULL DEFAULT 0 CHECK (strip >= 0),
    prepend    TEXT    NOT NULL DEFAULT '',
    rewrite    TEXT,
    action     TEXT    NOT NULL CHECK (action IN ('extension', 'trunk', 'reject')),
    -- JSON array of trunk names, tried in order (action 'trunk').
    trunks     TEXT    NOT NULL DEFAULT '[]',
    -- SIP status for action 'reject' (NULL: 403).
    status     BIGINT CHECK (status IS NULL OR status BETWEEN 400 AND 699),
    enabled    BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL
);
CREATE INDEX dialplan_rules_position ON dialplan_rules (position);

-- One row: bumped in the same transaction as every change to
-- dialplan_rules, so a running server polls one integer to notice changes.
CREATE TABLE dialplan_revision (
    id       BIGINT PRIMARY KEY CHECK (id = 1),
    revision BIGINT NOT NULL
);
INSERT INTO dialplan_revision (id, revision) VALUES (1, 0);
