//! Conference mixer with mix-minus.
//!
//! Every participant hears the sum of all others but not themselves
//! ("mix-minus", the N-1 mix of broadcast practice and of RFC 7667 section
//! 3.6's mixer topology). The sum is computed once per frame and each
//! participant's own contribution subtracted, so the cost is linear in N.
//! Contributions are scaled by a per-participant gain (Q12 fixed point),
//! zero when muted, and accumulated in saturating `i32`; each output is
//! clamped to 16 bits.
//!
//! Talker detection: a participant talks while the mean power of their
//! input frame exceeds a threshold, and for a hangover of a few frames after
//! (so pauses between words do not flicker the indicator).

mod talker;

use std::collections::VecDeque;

use talker::Talker;
pub use talker::TalkerConfig;

/// Handle of a participant in one [`Mixer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(u32);

/// A change in who is talking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TalkerEvent {
    /// Started talking.
    Started(ParticipantId),
    /// Stopped talking (after the hangover).
    Stopped(ParticipantId),
}

const UNITY_Q12: i32 = 1 << 12;

#[derive(Debug, Clone)]
struct Participant {
    id: ParticipantId,
    gain_q12: i32,
    muted: bool,
    input: Vec<i16>,
    contribution: Vec<i32>,
    output: Vec<i16>,
    talker: Talker,
}

/// An N-party mix-minus mixer at one sample rate and frame size.
#[derive(Debug, Clone)]
pub struct Mixer {
    frame: usize,
    next_id: u32,
    participants: Vec<Participant>,
    sum: Vec<i32>,
    talker_cfg: TalkerConfig,
    events: VecDeque<TalkerEvent>,
}

impl Mixer {
    /// A mixer for frames of `frame` samples (e.g. 160 for 20 ms at 8 kHz).
    pub fn new(frame: usize) -> Self {
        Self {
            frame,
            next_id: 0,
            participants: Vec::new(),
            sum: vec![0; frame],
            talker_cfg: TalkerConfig::default(),
            events: VecDeque::new(),
        }
    }

    /// Sets talker detection thresholds for participants added afterwards.
    pub fn set_talker_config(&mut self, cfg: TalkerConfig) {
        self.talker_cfg = cfg;
    }

    /// Samples per frame.
    pub fn frame_len(&self) -> usize {
        self.frame
    }

    /// Number of participants.
    pub fn len(&self) -> usize {
        self.participants.len()
    }

    /// True when nobody is in the conference.
    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    /// Adds a participant at unity gain, unmuted.
    pub fn add(&mut self) -> ParticipantId {
        let id = ParticipantId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        self.participants.push(Participant {
            id,
            gain_q12: UNITY_Q12,
            muted: false,
            input: vec![0; self.frame],
            contribution: vec![0; self.frame],
            output: vec![0; self.frame],
            talker: Talker::new(self.talker_cfg),
        });
        id
    }

    /// Removes a participant; false if unknown.
    pub fn remove(&mut self, id: ParticipantId) -> bool {
        let before = self.participants.len();
        self.participants.retain(|p| p.id != id);
        before != self.participants.len()
    }

    fn get_mut(&mut self, id: ParticipantId) -> Option<&mut Participant> {
        self.participants.iter_mut().find(|p| p.id == id)
    }

    fn get(&self, id: ParticipantId) -> Option<&Participant> {
        self.participants.iter().find(|p| p.id == id)
    }

    /// Sets a participant's gain in dB (clamped to -60..+12 dB).
    pub fn set_gain_db(&mut self, id: ParticipantId, db: f32) -> bool {
        let q12 = (10f32.powf(db.clamp(-60.0, 12.0) / 20.0) * UNITY_Q12 as f32).round() as i32;
        self.get_mut(id).map(|p| p.gain_q12 = q12).is_some()
    }

    /// Mutes or unmutes a participant (a muted participant still hears).
    pub fn set_muted(&mut self, id: ParticipantId, muted: bool) -> bool {
        self.get_mut(id).map(|p| p.muted = muted).is_some()
    }

    /// Supplies a participant's audio for the next [`Mixer::mix`]; short
    /// frames are padded with silence, long ones truncated. A participant
    /// who supplies nothing contributes silence.
    pub fn put(&mut self, id: ParticipantId, pcm: &[i16]) -> bool {
        let Some(p) = self.get_mut(id) else {
            return false;
        };
        let n = pcm.len().min(p.input.len());
        p.input[..n].copy_from_slice(&pcm[..n]);
        p.input[n..].fill(0);
        true
    }

    /// Mixes one frame: afterwards [`Mixer::output`] holds what each
    /// participant hears, and inputs are reset to silence.
    pub fn mix(&mut self) {
        self.sum.fill(0);
        for p in &mut self.participants {
            if let Some(change) = p.talker.update(&p.input) {
                self.events.push_back(if change {
                    TalkerEvent::Started(p.id)
                } else {
                    TalkerEvent::Stopped(p.id)
                });
            }
            let gain = if p.muted { 0 } else { p.gain_q12 };
            for ((c, &x), s) in p.contribution.iter_mut().zip(&p.input).zip(&mut self.sum) {
                *c = (i32::from(x) * gain) >> 12;
                *s = s.saturating_add(*c);
            }
            p.input.fill(0);
        }
        for p in &mut self.participants {
            for ((o, &c), &s) in p.output.iter_mut().zip(&p.contribution).zip(&self.sum) {
                *o = s.saturating_sub(c).clamp(-32768, 32767) as i16;
            }
        }
    }

    /// What `id` hears this frame.
    pub fn output(&self, id: ParticipantId) -> Option<&[i16]> {
        self.get(id).map(|p| p.output.as_slice())
    }

    /// Whether `id` is currently talking.
    pub fn is_talking(&self, id: ParticipantId) -> bool {
        self.get(id).is_some_and(|p| p.talker.talking())
    }

    /// Next talker change.
    pub fn poll_event(&mut self) -> Option<TalkerEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests;
