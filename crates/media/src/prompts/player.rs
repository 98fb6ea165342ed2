//! Frame-by-frame prompt playback for the call engine.
//!
//! Sans-IO: the player owns no timer. The shell either pulls frames on its
//! own packet clock ([`PromptPlayer::next_frame`], one call per RTP packet)
//! or passes `now` ([`PromptPlayer::poll_frame`]) and sleeps until
//! [`PromptPlayer::poll_timeout`]. Frame `k` is due at `start + k * ptime`,
//! computed from the sample count so long prompts do not drift.

use std::time::{Duration, Instant};

use super::{Clip, samples_to_duration};

/// Plays one [`Clip`] as fixed-size frames, the last padded with silence.
#[derive(Debug, Clone)]
pub struct PromptPlayer {
    clip: Clip,
    size: usize,
    /// Index of the next frame to hand out.
    next: usize,
    /// When frame 0 was (or is) due; set by the first `poll_frame` or `start`.
    start: Option<Instant>,
    /// The frame handed out last (padded copy of the clip's samples).
    frame: Vec<i16>,
}

impl PromptPlayer {
    /// A player for `clip` in frames of `samples_per_frame` samples (160 for
    /// 20 ms at 8 kHz, 320 at 16 kHz). A zero frame size is taken as 1.
    pub fn new(clip: Clip, samples_per_frame: usize) -> Self {
        let size = samples_per_frame.max(1);
        Self {
            clip,
            size,
            next: 0,
            start: None,
            frame: Vec::with_capacity(size),
        }
    }

    /// Sampling rate of the frames.
    pub fn rate(&self) -> u32 {
        self.clip.rate()
    }

    /// Samples in every frame.
    pub fn samples_per_frame(&self) -> usize {
        self.size
    }

    /// Total frames: the clip length divided by the frame size, rounded up.
    pub fn frame_count(&self) -> usize {
        self.clip.samples().len().div_ceil(self.size)
    }

    /// Frames handed out so far.
    pub fn frames_played(&self) -> usize {
        self.next
    }

    /// True once every frame has been handed out (at once for an empty clip).
    pub fn is_done(&self) -> bool {
        self.next >= self.frame_count()
    }

    /// Playing time of one frame.
    pub fn frame_duration(&self) -> Duration {
        samples_to_duration(self.size, self.clip.rate())
    }

    /// The next frame, or `None` when done. Use this when the caller keeps
    /// the packet clock itself.
    pub fn next_frame(&mut self) -> Option<&[i16]> {
        if self.is_done() {
            return None;
        }
        let samples = self.clip.samples();
        let from = self.next * self.size;
        let to = (from + self.size).min(samples.len());
        self.frame.clear();
        self.frame.extend_from_slice(&samples[from..to]);
        self.frame.resize(self.size, 0);
        self.next += 1;
        Some(&self.frame)
    }

    /// Anchors playback: frame 0 is due at `now`. Called implicitly by the
    /// first [`poll_frame`](Self::poll_frame).
    pub fn start(&mut self, now: Instant) {
        self.start.get_or_insert(now);
    }

    /// The next frame if it is due at `now`, else `None` (check
    /// [`is_done`](Self::is_done) to tell "later" from "finished"). A shell
    /// that wakes late gets each overdue frame from successive calls, so it
    /// can send them back to back or drop them as it prefers.
    pub fn poll_frame(&mut self, now: Instant) -> Option<&[i16]> {
        self.start(now);
        match self.poll_timeout() {
            Some(due) if due <= now => self.next_frame(),
            _ => None,
        }
    }

    /// When the next frame is due; `None` before [`start`](Self::start) or
    /// once done.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let start = self.start?;
        if self.is_done() {
            return None;
        }
        Some(start + samples_to_duration(self.next * self.size, self.clip.rate()))
    }

    /// Rewinds to the first frame and forgets the start time, to play the
    /// same clip again (an IVR menu repeated after a timeout).
    pub fn restart(&mut self) {
        self.next = 0;
        self.start = None;
    }

    /// The clip being played.
    pub fn clip(&self) -> &Clip {
        &self.clip
    }
}
