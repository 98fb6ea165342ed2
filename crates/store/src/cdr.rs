//! Call detail records: one row per call leg, written when the leg ends.
//!
//! Durations are derived here from the leg's timestamps so every writer
//! computes them the same way: `duration = end - start`,
//! `billsec = end - answer` (0 if never answered).

use crate::db::{Get, Pool, limit, narrow, on_pool};
use crate::error::{Result, StoreError};

/// Final state of a leg, in the conventional CDR spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// `ANSWERED`
    Answered,
    /// `NO ANSWER`
    NoAnswer,
    /// `BUSY`
    Busy,
    /// `FAILED`
    Failed,
    /// `CANCELLED`
    Cancelled,
}

impl Disposition {
    /// The stored form, e.g. `NO ANSWER`.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "ANSWERED",
            Disposition::NoAnswer => "NO ANSWER",
            Disposition::Busy => "BUSY",
            Disposition::Failed => "FAILED",
            Disposition::Cancelled => "CANCELLED",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "ANSWERED" => Disposition::Answered,
            "NO ANSWER" => Disposition::NoAnswer,
            "BUSY" => Disposition::Busy,
            "FAILED" => Disposition::Failed,
            "CANCELLED" => Disposition::Cancelled,
            other => {
                return Err(StoreError::Corrupt {
                    column: "cdr.disposition",
                    value: other.to_owned(),
                });
            }
        })
    }
}

/// Why the leg ended, as a SIP status (or BYE/CANCEL mapped to one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HangupCause {
    /// SIP status code, e.g. 486.
    pub code: u16,
    /// Reason phrase, e.g. `Busy Here`.
    pub reason: String,
}

/// RTCP-derived quality summary of the leg (RFC 3550 §6.4).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RtcpQuality {
    /// Packet loss, percent.
    pub loss_pct: f64,
    /// Interarrival jitter, milliseconds.
    pub jitter_ms: f64,
    /// Round-trip time, milliseconds, when LSR/DLSR allowed computing it.
    pub rtt_ms: Option<f64>,
}

/// A leg to record with [`CallRecords::insert`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewCallRecord {
    /// SIP Call-ID of the leg.
    pub call_id: String,
    /// PBX leg identifier, unique within the call.
    pub leg_id: String,
    /// Leg this one is bridged with or was created for, if any.
    pub linked_id: Option<String>,
    /// Calling party (extension number or E.164).
    pub caller: String,
    /// Called party.
    pub callee: String,
    /// Trunk used, for external legs.
    pub trunk: Option<String>,
    /// Leg start, unix ms.
    pub start_at: i64,
    /// Answer time, unix ms.
    pub answer_at: Option<i64>,
    /// Leg end, unix ms.
    pub end_at: i64,
    /// Final state.
    pub disposition: Disposition,
    /// Why it ended.
    pub hangup_cause: Option<HangupCause>,
    /// Negotiated codec, e.g. `PCMA`.
    pub codec: Option<String>,
    /// Media quality, if RTCP was received.
    pub quality: Option<RtcpQuality>,
}

/// A stored call record.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    /// Surrogate key.
    pub id: i64,
    /// SIP Call-ID of the leg.
    pub call_id: String,
    /// PBX leg identifier.
    pub leg_id: String,
    /// Linked leg.
    pub linked_id: Option<String>,
    /// Calling party.
    pub caller: String,
    /// Called party.
    pub callee: String,
    /// Trunk used.
    pub trunk: Option<String>,
    /// Leg start, unix ms.
    pub start_at: i64,
    /// Answer time, unix ms.
    pub answer_at: Option<i64>,
    /// Leg end, unix ms.
    pub end_at: i64,
    /// `end - start`, ms.
    pub duration_ms: i64,
    /// `end - answer`, ms (0 if unanswered).
    pub billsec_ms: i64,
    /// Final state.
    pub disposition: Disposition,
    /// Why it ended.
    pub hangup_cause: Option<HangupCause>,
    /// Negotiated codec.
    pub codec: Option<String>,
    /// Media quality.
    pub quality: Option<RtcpQuality>,
}

macro_rules! cdr_cols {
    () => {
        "id, call_id, leg_id, linked_id, caller, callee, trunk, start_at, answer_at, end_at, \
         duration_ms, billsec_ms, disposition, hangup_code, hangup_reason, codec, \
         rtcp_loss_pct, rtcp_jitter_ms, rtcp_rtt_ms"
    };
}

fn record_from(row: &impl Get) -> Result<CallRecord> {
    let hangup_cause = match row.opt_int("hangup_code")? {
        Some(code) => Some(HangupCause {
            code: narrow("cdr.hangup_code", code)?,
            reason: row.opt_text("hangup_reason")?.unwrap_or_default(),
        }),
        None => None,
    };
    let quality = match (
        row.opt_real("rtcp_loss_pct")?,
        row.opt_real("rtcp_jitter_ms")?,
    ) {
        (Some(loss_pct), Some(jitter_ms)) => Some(RtcpQuality {
            loss_pct,
            jitter_ms,
            rtt_ms: row.opt_real("rtcp_rtt_ms")?,
        }),
        _ => None,
    };
    Ok(CallRecord {
        id: row.int("id")?,
        call_id: row.text("call_id")?,
        leg_id: row.text("leg_id")?,
        linked_id: row.opt_text("linked_id")?,
        caller: row.text("caller")?,
        callee: row.text("callee")?,
        trunk: row.opt_text("trunk")?,
        start_at: row.int("start_at")?,
        answer_at: row.opt_int("answer_at")?,
        end_at: row.int("end_at")?,
        duration_ms: row.int("duration_ms")?,
        billsec_ms: row.int("billsec_ms")?,
        disposition: Disposition::parse(&row.text("disposition")?)?,
        hangup_cause,
        codec: row.opt_text("codec")?,
        quality,
    })
}

macro_rules! insert_sql {
    () => {
        "INSERT INTO cdr (call_id, leg_id, linked_id, caller, callee, trunk, start_at, \
         answer_at, end_at, duration_ms, billsec_ms, disposition, hangup_code, \
         hangup_reason, codec, rtcp_loss_pct, rtcp_jitter_ms, rtcp_rtt_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
         $17, $18)"
    };
}

/// Binds the 18 columns of [`insert_sql`] for `$record`; durations are
/// derived here.
macro_rules! bind_record {
    ($query:expr, $record:expr) => {{
        let record: &NewCallRecord = $record;
        let cause = record.hangup_cause.as_ref();
        let quality = record.quality.as_ref();
        $query
            .bind(record.call_id.clone())
            .bind(record.leg_id.clone())
            .bind(record.linked_id.clone())
            .bind(record.caller.clone())
            .bind(record.callee.clone())
            .bind(record.trunk.clone())
            .bind(record.start_at)
            .bind(record.answer_at)
            .bind(record.end_at)
            .bind(record.end_at - record.start_at)
            .bind(record.answer_at.map_or(0, |a| record.end_at - a))
            .bind(record.disposition.as_str())
            .bind(cause.map(|c| i64::from(c.code)))
            .bind(cause.map(|c| c.reason.clone()))
            .bind(record.codec.clone())
            .bind(quality.map(|q| q.loss_pct))
            .bind(quality.map(|q| q.jitter_ms))
            .bind(quality.and_then(|q| q.rtt_ms))
    }};
}

fn check_times(record: &NewCallRecord) -> Result<()> {
    let answered_in_range = record
        .answer_at
        .is_none_or(|a| record.start_at <= a && a <= record.end_at);
    if record.end_at < record.start_at || !answered_in_range {
        return Err(StoreError::Invalid {
            field: "cdr times",
            reason: "need start <= answer <= end".into(),
        });
    }
    Ok(())
}

/// Repository of call records; get one from [`crate::Store::call_records`].
#[derive(Debug, Clone, Copy)]
pub struct CallRecords<'a> {
    pool: &'a Pool,
}

impl<'a> CallRecords<'a> {
    pub(crate) fn new(pool: &'a Pool) -> Self {
        CallRecords { pool }
    }

    /// Records a finished leg. Fails with [`StoreError::Invalid`] if the
    /// times are out of order and [`StoreError::Conflict`] if the
    /// `(call_id, leg_id)` pair was already recorded.
    pub async fn insert(&self, record: &NewCallRecord) -> Result<CallRecord> {
        check_times(record)?;
        const SQL: &str = concat!(insert_sql!(), " RETURNING ", cdr_cols!());
        on_pool!(self.pool, p => {
            let row = bind_record!(sqlx::query(SQL), record).fetch_one(p).await?;
            record_from(&row)
        })
    }

    /// Records many legs in one transaction (the server's writer batches
    /// them). All or nothing: on an error none is stored, and the caller
    /// may retry them one by one with [`CallRecords::insert`].
    pub async fn insert_many(&self, records: &[NewCallRecord]) -> Result<()> {
        for r in records {
            check_times(r)?;
        }
        on_pool!(self.pool, p => {
            let mut tx = p.begin().await?;
            for r in records {
                bind_record!(sqlx::query(insert_sql!()), r).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The newest `n` records, by start time.
    pub async fn recent(&self, n: u32) -> Result<Vec<CallRecord>> {
        const SQL: &str = concat!(
            "SELECT ",
            cdr_cols!(),
            " FROM cdr ORDER BY start_at DESC, id DESC LIMIT $1"
        );
        on_pool!(self.pool, p => {
            sqlx::query(SQL).bind(limit(n)).fetch_all(p).await?.iter().map(record_from).collect()
        })
    }

    /// The newest `n` records where `number` (an extension, or any party) is
    /// the caller or the callee.
    pub async fn for_extension(&self, number: &str, n: u32) -> Result<Vec<CallRecord>> {
        const SQL: &str = concat!(
            "SELECT ",
            cdr_cols!(),
            " FROM cdr WHERE caller = $1 OR callee = $1 ORDER BY start_at DESC, id DESC LIMIT $2"
        );
        on_pool!(self.pool, p => {
            sqlx::query(SQL).bind(number).bind(limit(n)).fetch_all(p).await?
                .iter().map(record_from).collect()
        })
    }

    /// Records that started in `[from_ms, until_ms)`, oldest first, at most `n`.
    pub async fn in_range(&self, from_ms: i64, until_ms: i64, n: u32) -> Result<Vec<CallRecord>> {
        const SQL: &str = concat!(
            "SELECT ",
            cdr_cols!(),
            " FROM cdr WHERE start_at >= $1 AND start_at < $2 ORDER BY start_at, id LIMIT $3"
        );
        on_pool!(self.pool, p => {
            sqlx::query(SQL).bind(from_ms).bind(until_ms).bind(limit(n)).fetch_all(p).await?
                .iter().map(record_from).collect()
        })
    }
}
