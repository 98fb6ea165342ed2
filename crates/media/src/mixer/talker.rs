//! Energy-based talker detection with hangover.

/// Talker detection thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TalkerConfig {
    /// Mean frame power, in dB relative to a full-scale sine, above which
    /// a frame counts as speech.
    pub threshold_dbfs: f32,
    /// Frames a participant stays "talking" after the last loud frame.
    pub hangover_frames: u32,
}

impl Default for TalkerConfig {
    fn default() -> Self {
        Self {
            threshold_dbfs: -40.0,
            hangover_frames: 10,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Talker {
    threshold: f64,
    hangover: u32,
    remaining: u32,
}

impl Talker {
    pub(super) fn new(cfg: TalkerConfig) -> Self {
        let full_scale = 32767.0f64 * 32767.0 / 2.0;
        Self {
            threshold: full_scale * 10f64.powf(f64::from(cfg.threshold_dbfs) / 10.0),
            hangover: cfg.hangover_frames,
            remaining: 0,
        }
    }

    pub(super) fn talking(&self) -> bool {
        self.remaining > 0
    }

    /// Updates with one frame; returns `Some(true)` on start and
    /// `Some(false)` on stop.
    pub(super) fn update(&mut self, frame: &[i16]) -> Option<bool> {
        let was = self.talking();
        let energy: i64 = frame.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
        let mean = energy as f64 / frame.len().max(1) as f64;
        if mean > self.threshold {
            self.remaining = self.hangover + 1;
        } else {
            self.remaining = self.remaining.saturating_sub(1);
        }
        match (was, self.talking()) {
            (false, true) => Some(true),
            (true, false) => Some(false),
            _ => None,
        }
    }
}
