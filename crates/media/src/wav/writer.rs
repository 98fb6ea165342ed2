//! Crash-tolerant WAV recording.

use std::io::{Seek, SeekFrom, Write};

use super::WavError;

/// Channel layout of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Both legs mixed into one channel.
    Mono,
    /// Leg A on the left channel, leg B on the right.
    Stereo,
}

impl Layout {
    fn channels(self) -> u16 {
        match self {
            Layout::Mono => 1,
            Layout::Stereo => 2,
        }
    }
}

const HEADER_LEN: u64 = 44;
/// Largest data chunk a 32-bit RIFF size can describe.
const MAX_DATA: u64 = u32::MAX as u64 - HEADER_LEN;

/// 16-bit PCM WAV writer. Samples are buffered in memory and written, with
/// the header sizes updated, on [`WavWriter::flush`], automatically every
/// `flush_every` sample frames (one second by default), and on drop.
#[derive(Debug)]
pub struct WavWriter<W: Write + Seek> {
    inner: Option<W>,
    /// Position of the RIFF header in `inner`.
    start: u64,
    layout: Layout,
    rate: u32,
    pending: Vec<u8>,
    data_bytes: u64,
    flush_every: usize,
    frames_pending: usize,
}

fn header(layout: Layout, rate: u32, data_bytes: u32) -> [u8; 44] {
    let ch = layout.channels();
    let block = ch * 2;
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(data_bytes.saturating_add(36)).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes());
    h[22..24].copy_from_slice(&ch.to_le_bytes());
    h[24..28].copy_from_slice(&rate.to_le_bytes());
    h[28..32].copy_from_slice(&rate.saturating_mul(u32::from(block)).to_le_bytes());
    h[32..34].copy_from_slice(&block.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_bytes.to_le_bytes());
    h
}

impl<W: Write + Seek> WavWriter<W> {
    /// Starts a recording at the current position of `inner` (normally
    /// the start of a new file), writing a header with empty sizes.
    pub fn new(mut inner: W, rate: u32, layout: Layout) -> Result<Self, WavError> {
        let start = inner.stream_position()?;
        inner.write_all(&header(layout, rate, 0))?;
        inner.flush()?;
        Ok(Self {
            inner: Some(inner),
            start,
            layout,
            rate,
            pending: Vec::new(),
            data_bytes: 0,
            flush_every: rate as usize,
            frames_pending: 0,
        })
    }

    /// Sets how many sample frames may be buffered before an automatic flush.
    pub fn set_flush_every(&mut self, frames: usize) {
        self.flush_every = frames.max(1);
    }

    /// The underlying writer, e.g. to `sync_data()` a file after
    /// [`WavWriter::flush`] when power-loss durability matters.
    pub fn get_ref(&self) -> Option<&W> {
        self.inner.as_ref()
    }

    /// Channel layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Sample frames written so far, flushed or not.
    pub fn frames(&self) -> u64 {
        (self.data_bytes + self.pending.len() as u64) / (2 * u64::from(self.layout.channels()))
    }

    /// Records one stretch of both legs (equal lengths expected; the
    /// shorter is padded with silence). Mono layouts mix them saturating.
    pub fn write_legs(&mut self, a: &[i16], b: &[i16]) -> Result<(), WavError> {
        let n = a.len().max(b.len());
        let at = |x: &[i16], i: usize| x.get(i).copied().unwrap_or(0);
        for i in 0..n {
            match self.layout {
                Layout::Stereo => {
                    self.pending.extend_from_slice(&at(a, i).to_le_bytes());
                    self.pending.extend_from_slice(&at(b, i).to_le_bytes());
                }
                Layout::Mono => {
                    let m = at(a, i).saturating_add(at(b, i));
                    self.pending.extend_from_slice(&m.to_le_bytes());
                }
            }
        }
        self.after_write(n)
    }

    /// Records mono audio (duplicated to both channels in stereo layouts).
    pub fn write_mono(&mut self, pcm: &[i16]) -> Result<(), WavError> {
        match self.layout {
            Layout::Mono => {
                for s in pcm {
                    self.pending.extend_from_slice(&s.to_le_bytes());
                }
                self.after_write(pcm.len())
            }
            Layout::Stereo => self.write_legs(pcm, pcm),
        }
    }

    fn after_write(&mut self, frames: usize) -> Result<(), WavError> {
        self.frames_pending += frames;
        if self.frames_pending >= self.flush_every {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes buffered audio and rewrites the RIFF and data sizes so the
    /// file is valid as it stands. Audio beyond the 4 GiB RIFF limit is
    /// dropped.
    pub fn flush(&mut self) -> Result<(), WavError> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(());
        };
        let room = MAX_DATA.saturating_sub(self.data_bytes) as usize;
        let take = self.pending.len().min(room);
        inner.write_all(&self.pending[..take])?;
        self.data_bytes += take as u64;
        self.pending.clear();
        self.frames_pending = 0;
        let end = inner.stream_position()?;
        let h = header(self.layout, self.rate, self.data_bytes as u32);
        inner.seek(SeekFrom::Start(self.start))?;
        inner.write_all(&h)?;
        inner.seek(SeekFrom::Start(end))?;
        inner.flush()?;
        Ok(())
    }

    /// Flushes and returns the underlying writer.
    pub fn finalize(mut self) -> Result<W, WavError> {
        self.flush()?;
        self.inner
            .take()
            .ok_or_else(|| std::io::Error::other("WAV writer already finalized").into())
    }
}

impl<W: Write + Seek> Drop for WavWriter<W> {
    fn drop(&mut self) {
        // Best effort: a recording dropped on a failing path keeps its audio.
        let _ = self.flush();
    }
}
