//! Built-in voice prompts: the recorded phrases voicemail, IVR, parking,
//! queues and conferences play to callers.
//!
//! The prompts ship as WAV files, one per phrase, named `<id>.wav` in a
//! directory (`prompts/en/` in the repository, generated from
//! `prompts/catalog.tsv` by `scripts/gen-prompts.sh`). Nothing is fetched or
//! synthesised at run time.
//!
//! [`PromptSet::load`] reads a directory once, converting every file to mono
//! 16-bit PCM at the rate the call's codec needs (8 kHz for G.711, 16 kHz for
//! G.722). [`PromptSet::sequence`] joins phrases into one [`Clip`] with a
//! short pause between them, [`say_number`] spells a count as phrase ids,
//! and [`PromptPlayer`] hands a clip out one packetisation frame at a time on
//! the caller's clock, so the call engine can drive it like any other
//! sans-IO core.
//!
//! ```no_run
//! use media::prompts::{PromptPlayer, PromptSet, say_number};
//!
//! let set = PromptSet::load("prompts/en", 8000)?;
//! let mut ids = vec!["vm-you-have"];
//! ids.extend(say_number(3));
//! ids.push("vm-new-messages");
//! let mut player = PromptPlayer::new(set.sequence(&ids)?, 160);
//! while let Some(frame) = player.next_frame() {
//!     assert_eq!(frame.len(), 160); // encode and send as one RTP packet
//! }
//! # Ok::<(), media::prompts::PromptError>(())
//! ```

mod catalog;
mod number;
mod player;

pub use catalog::{CatalogEntry, is_valid_id, parse_catalog};
pub use number::say_number;
pub use player::PromptPlayer;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::wav::{WavError, read_prompt};

/// Pause inserted between the phrases of a [`PromptSet::sequence`]. Each
/// generated prompt already carries 20 ms of silence at either end, so the
/// audible gap is about 120 ms: a short breath, not a stop.
pub const DEFAULT_GAP: Duration = Duration::from_millis(80);

/// Errors loading or looking up prompts. Each names the file, directory or id
/// involved so an operator can fix the installation.
#[derive(Debug, Error)]
pub enum PromptError {
    /// The prompt directory cannot be listed (missing, not a directory,
    /// no permission).
    #[error("cannot read prompt directory {}: {source}", path.display())]
    Directory {
        /// The directory given to [`PromptSet::load`].
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The directory exists but holds no `.wav` file.
    #[error(
        "no prompts (*.wav) in {}; run scripts/gen-prompts.sh to generate them",
        path.display()
    )]
    Empty {
        /// The directory given to [`PromptSet::load`].
        path: PathBuf,
    },
    /// A prompt file cannot be read.
    #[error("cannot read prompt {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A prompt file is not a WAV the reader accepts, or cannot be converted
    /// to the requested rate.
    #[error("invalid prompt {}: {source}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// What the WAV reader said.
        source: WavError,
    },
    /// No prompt has this id.
    #[error("no prompt with id {0:?}")]
    UnknownId(String),
    /// A catalog line is not `id<TAB>text` or its id is not kebab-case.
    #[error("catalog line {line}: {reason}")]
    Catalog {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// Mono 16-bit PCM at a known rate: one prompt or a sequence of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clip {
    rate: u32,
    samples: Vec<i16>,
}

impl Clip {
    /// Wraps samples at `rate` Hz.
    pub fn new(rate: u32, samples: Vec<i16>) -> Self {
        Self { rate, samples }
    }

    /// Sampling rate in Hz.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The samples.
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// Consumes the clip, returning its samples.
    pub fn into_samples(self) -> Vec<i16> {
        self.samples
    }

    /// Playing time.
    pub fn duration(&self) -> Duration {
        samples_to_duration(self.samples.len(), self.rate)
    }

    /// Splits the clip into frames of `samples_per_frame` samples (160 for
    /// 20 ms at 8 kHz), the last padded with silence. Full frames borrow
    /// from the clip; only the padded last one is allocated. A zero frame
    /// size is taken as 1.
    pub fn frames(&self, samples_per_frame: usize) -> Frames<'_> {
        Frames {
            rest: &self.samples,
            size: samples_per_frame.max(1),
        }
    }
}

/// Iterator over fixed-size frames of a [`Clip`]; see [`Clip::frames`].
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    rest: &'a [i16],
    size: usize,
}

impl<'a> Iterator for Frames<'a> {
    type Item = Cow<'a, [i16]>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        if self.rest.len() >= self.size {
            let (frame, rest) = self.rest.split_at(self.size);
            self.rest = rest;
            return Some(Cow::Borrowed(frame));
        }
        let mut last = self.rest.to_vec();
        last.resize(self.size, 0);
        self.rest = &[];
        Some(Cow::Owned(last))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.rest.len().div_ceil(self.size);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Frames<'_> {}

/// Every prompt of one language, decoded at one rate, looked up by id.
#[derive(Debug, Clone)]
pub struct PromptSet {
    rate: u32,
    prompts: BTreeMap<String, Vec<i16>>,
}

impl PromptSet {
    /// Loads every `<id>.wav` in `dir`, converted to mono at `rate` Hz
    /// (8000 or 16000 for the codecs here). Other files are ignored. Fails
    /// on the first file that cannot be read or decoded, naming it.
    pub fn load(dir: impl AsRef<Path>, rate: u32) -> Result<Self, PromptError> {
        let dir = dir.as_ref();
        let dir_err = |source| PromptError::Directory {
            path: dir.to_path_buf(),
            source,
        };
        let mut prompts = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(dir_err)? {
            let path = entry.map_err(dir_err)?.path();
            let is_wav = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
            let Some(id) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if !is_wav || !path.is_file() {
                continue;
            }
            let id = id.to_owned();
            let bytes = std::fs::read(&path).map_err(|source| PromptError::Read {
                path: path.clone(),
                source,
            })?;
            let samples =
                read_prompt(&bytes, rate).map_err(|source| PromptError::Decode { path, source })?;
            prompts.insert(id, samples);
        }
        if prompts.is_empty() {
            return Err(PromptError::Empty {
                path: dir.to_path_buf(),
            });
        }
        Ok(Self { rate, prompts })
    }

    /// Builds a set from audio already in memory (at `rate` Hz), e.g. for
    /// tests or prompts embedded in a binary.
    pub fn from_prompts<I, S>(rate: u32, prompts: I) -> Self
    where
        I: IntoIterator<Item = (S, Vec<i16>)>,
        S: Into<String>,
    {
        Self {
            rate,
            prompts: prompts.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        }
    }

    /// Sampling rate of every prompt in the set.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Number of prompts.
    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    /// True if the set holds no prompt.
    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }

    /// True if a prompt with this id is loaded.
    pub fn contains(&self, id: &str) -> bool {
        self.prompts.contains_key(id)
    }

    /// Prompt ids in sorted order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.prompts.keys().map(String::as_str)
    }

    /// The samples of one prompt.
    pub fn get(&self, id: &str) -> Result<&[i16], PromptError> {
        self.prompts
            .get(id)
            .map(Vec::as_slice)
            .ok_or_else(|| PromptError::UnknownId(id.to_owned()))
    }

    /// One prompt as a [`Clip`].
    pub fn clip(&self, id: &str) -> Result<Clip, PromptError> {
        Ok(Clip::new(self.rate, self.get(id)?.to_vec()))
    }

    /// Joins prompts in order with [`DEFAULT_GAP`] of silence between them
    /// (none before the first or after the last). Fails on the first
    /// unknown id, before building anything.
    pub fn sequence(&self, ids: &[&str]) -> Result<Clip, PromptError> {
        self.sequence_with_gap(ids, DEFAULT_GAP)
    }

    /// [`sequence`](Self::sequence) with a chosen gap.
    pub fn sequence_with_gap(&self, ids: &[&str], gap: Duration) -> Result<Clip, PromptError> {
        let parts = ids
            .iter()
            .map(|id| self.get(id))
            .collect::<Result<Vec<_>, _>>()?;
        let gap = duration_to_samples(gap, self.rate);
        let total =
            parts.iter().map(|p| p.len()).sum::<usize>() + gap * parts.len().saturating_sub(1);
        let mut samples = Vec::with_capacity(total);
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                samples.resize(samples.len() + gap, 0);
            }
            samples.extend_from_slice(part);
        }
        Ok(Clip::new(self.rate, samples))
    }

    /// Ids of `catalog` entries that have no prompt in this set.
    pub fn missing<'c>(&self, catalog: &'c [CatalogEntry]) -> Vec<&'c str> {
        catalog
            .iter()
            .map(|e| e.id.as_str())
            .filter(|id| !self.contains(id))
            .collect()
    }
}

/// Samples per frame for a packetisation time: 160 for 20 ms at 8 kHz.
pub fn samples_per_frame(rate: u32, ptime: Duration) -> usize {
    duration_to_samples(ptime, rate)
}

fn duration_to_samples(d: Duration, rate: u32) -> usize {
    (d.as_nanos() * u128::from(rate) / 1_000_000_000) as usize
}

fn samples_to_duration(samples: usize, rate: u32) -> Duration {
    if rate == 0 {
        return Duration::ZERO;
    }
    let nanos = samples as u128 * 1_000_000_000 / u128::from(rate);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests;
