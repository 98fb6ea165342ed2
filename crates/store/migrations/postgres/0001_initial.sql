-- Initial schema (PostgreSQL). Times are unix milliseconds (BIGINT).
-- Keep in step with ../sqlite/0001_initial.sql: same tables, columns and
-- constraint meaning, so the repositories' SQL runs unchanged on both.

CREATE TABLE extensions (
    id                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    number               TEXT    NOT NULL UNIQUE
                         CHECK (number ~ '^[0-9]{2,15}$'),
    display_name         TEXT    NOT NULL DEFAULT '',
    sip_username         TEXT    NOT NULL UNIQUE CHECK (length(sip_username) > 0),
    -- AES-256-GCM sealed HA1 values ("v1:..."); the password itself is never stored.
    ha1_md5              TEXT,
    ha1_sha256           TEXT,
    email                TEXT,
    -- pbkdf2-sha256$600000$salt$hash
    voicemail_pin_hash   TEXT,
    permission           TEXT    NOT NULL DEFAULT 'internal'
                         CHECK (permission IN ('internal', 'national', 'international')),
    max_concurrent_calls BIGINT NOT NULL DEFAULT 2 CHECK (max_concurrent_calls >= 0),
    enabled              BOOLEAN NOT NULL DEFAULT TRUE,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);

CREATE TABLE registrations (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    aor         TEXT    NOT NULL REFERENCES extensions (sip_username)
                        ON DELETE CASCADE ON UPDATE CASCADE,
    -- "flow:<reg-id>:<+sip.instance>" (RFC 5626 §6) or "contact:<uri>".
    binding_key TEXT    NOT NULL,
    contact     TEXT    NOT NULL,
    expires_at  BIGINT NOT NULL,
    q           DOUBLE PRECISION,
    call_id     TEXT    NOT NULL,
    cseq        BIGINT NOT NULL,
    source_ip   TEXT    NOT NULL,
    source_port BIGINT NOT NULL,
    transport   TEXT    NOT NULL,
    user_agent  TEXT,
    instance_id TEXT,
    reg_id      BIGINT,
    -- JSON array of Path header values (RFC 3327), NULL when none.
    path        TEXT,
    mac_address TEXT,
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    UNIQUE (aor, binding_key)
);
CREATE INDEX registrations_expires_at ON registrations (expires_at);

CREATE TABLE registration_history (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT NOT NULL,
    event       TEXT    NOT NULL
                CHECK (event IN ('registered', 'refreshed', 'unregistered', 'expired')),
    aor         TEXT    NOT NULL,
    contact     TEXT,
    source_ip   TEXT,
    source_port BIGINT,
    user_agent  TEXT
);
CREATE INDEX registration_history_aor_at ON registration_history (aor, at);
CREATE INDEX registration_history_at ON registration_history (at);

CREATE TABLE security_audit (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        BIGINT NOT NULL,
    event     TEXT    NOT NULL,
    username  TEXT,
    source_ip TEXT,
    outcome   TEXT    NOT NULL,
    -- JSON object text
    details   TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX security_audit_at ON security_audit (at);
CREATE INDEX security_audit_event_at ON security_audit (event, at);
CREATE INDEX security_audit_source_at ON security_audit (source_ip, at);

CREATE TABLE cdr (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_id        TEXT    NOT NULL,
    leg_id         TEXT    NOT NULL,
    linked_id      TEXT,
    caller         TEXT    NOT NULL,
    callee         TEXT    NOT NULL,
    trunk          TEXT,
    start_at       BIGINT NOT NULL,
    answer_at      BIGINT,
    end_at         BIGINT NOT NULL,
    duration_ms    BIGINT NOT NULL CHECK (duration_ms >= 0),
    billsec_ms     BIGINT NOT NULL CHECK (billsec_ms >= 0),
    disposition    TEXT    NOT NULL
                   CHECK (disposition IN ('ANSWERED', 'NO ANSWER', 'BUSY', 'FAILED', 'CANCELLED')),
    hangup_code    BIGINT,
    hangup_reason  TEXT,
    codec          TEXT,
    rtcp_loss_pct  DOUBLE PRECISION,
    rtcp_jitter_ms DOUBLE PRECISION,
    rtcp_rtt_ms    DOUBLE PRECISION,
    UNIQUE (call_id, leg_id)
);
CREATE INDEX cdr_start_at ON cdr (start_at);
CREATE INDEX cdr_caller_start_at ON cdr (caller, start_at);
CREATE INDEX cdr_callee_start_at ON cdr (callee, start_at);
