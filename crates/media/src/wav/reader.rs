//! WAV parsing and conversion to mono prompt audio.

use super::WavError;
use crate::codec::g711;
use crate::resample::Resampler;

const FORMAT_PCM: u16 = 1;
const FORMAT_ALAW: u16 = 6;
const FORMAT_ULAW: u16 = 7;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// What the `fmt ` chunk says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    /// Format tag (1 PCM, 6 A-law, 7 µ-law; extensible resolved to its subformat).
    pub format: u16,
    /// Channels.
    pub channels: u16,
    /// Sampling rate in Hz.
    pub sample_rate: u32,
    /// Bits per sample.
    pub bits: u16,
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

fn parse_fmt(body: &[u8]) -> Result<WavInfo, WavError> {
    let tr = || WavError::Truncated("fmt");
    let mut format = u16_at(body, 0).ok_or_else(tr)?;
    let channels = u16_at(body, 2).ok_or_else(tr)?;
    let sample_rate = u32_at(body, 4).ok_or_else(tr)?;
    let bits = u16_at(body, 14).ok_or_else(tr)?;
    if format == FORMAT_EXTENSIBLE {
        // cbSize(2) validBits(2) channelMask(4) then the subformat GUID,
        // whose first two bytes are the format tag.
        format = u16_at(body, 24).ok_or_else(tr)?;
    }
    if channels == 0 || sample_rate == 0 {
        return Err(WavError::BadFormat {
            channels,
            rate: sample_rate,
        });
    }
    let ok = match format {
        FORMAT_PCM => matches!(bits, 8 | 16 | 24 | 32),
        FORMAT_ALAW | FORMAT_ULAW => bits == 8,
        _ => false,
    };
    if !ok {
        return Err(WavError::Unsupported { format, bits });
    }
    Ok(WavInfo {
        format,
        channels,
        sample_rate,
        bits,
    })
}

/// Parses a WAV file held in memory, returning its format and interleaved
/// 16-bit samples. A `data` chunk whose size is zero, unset or larger than
/// the file (an interrupted recording) extends to the end of the file.
pub fn parse(bytes: &[u8]) -> Result<(WavInfo, Vec<i16>), WavError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWave);
    }
    let mut pos = 12;
    let mut info = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32_at(bytes, pos + 4).ok_or(WavError::Truncated("chunk"))? as usize;
        let body_start = pos + 8;
        let available = bytes.len() - body_start;
        if id == b"fmt " {
            let body = &bytes[body_start..body_start + size.min(available)];
            info = Some(parse_fmt(body)?);
        } else if id == b"data" {
            let info = info.ok_or(WavError::MissingChunk("fmt"))?;
            let len = if size == 0 || size > available {
                available
            } else {
                size
            };
            return Ok((info, decode(&info, &bytes[body_start..body_start + len])));
        }
        pos = body_start.saturating_add(size).saturating_add(size & 1);
    }
    Err(WavError::MissingChunk(if info.is_some() {
        "data"
    } else {
        "fmt"
    }))
}

fn decode(info: &WavInfo, data: &[u8]) -> Vec<i16> {
    let width = usize::from(info.bits / 8);
    let frame = width * usize::from(info.channels);
    let whole = data.len() - data.len() % frame;
    let data = &data[..whole];
    match (info.format, info.bits) {
        (FORMAT_ALAW, _) => data.iter().map(|&b| g711::alaw_to_linear(b)).collect(),
        (FORMAT_ULAW, _) => data.iter().map(|&b| g711::ulaw_to_linear(b)).collect(),
        (_, 8) => data.iter().map(|&b| (i16::from(b) - 128) << 8).collect(),
        // Wider samples: keep the most significant 16 bits.
        _ => data
            .chunks_exact(width)
            .map(|c| i16::from_le_bytes([c[width - 2], c[width - 1]]))
            .collect(),
    }
}

/// Averages interleaved channels to mono.
pub fn to_mono(samples: &[i16], channels: u16) -> Vec<i16> {
    let ch = usize::from(channels.max(1));
    if ch == 1 {
        return samples.to_vec();
    }
    samples
        .chunks_exact(ch)
        .map(|f| (f.iter().map(|&s| i32::from(s)).sum::<i32>() / ch as i32) as i16)
        .collect()
}

/// Reads a prompt: any supported WAV, converted to mono at `rate` Hz
/// (8000 or 16000 for the codecs here; any rate the resampler supports).
pub fn read_prompt(bytes: &[u8], rate: u32) -> Result<Vec<i16>, WavError> {
    let (info, samples) = parse(bytes)?;
    let mono = to_mono(&samples, info.channels);
    if info.sample_rate == rate {
        return Ok(mono);
    }
    let mut r = Resampler::new(info.sample_rate, rate)?;
    let mut out = Vec::with_capacity(r.output_len(mono.len()) + r.delay());
    // Flush the filter with silence and drop its delay so the prompt starts
    // on time and ends complete.
    r.process(&mono, &mut out);
    let pad = (r.delay() + 1) * info.sample_rate as usize / rate as usize + 1;
    r.process(&vec![0; pad], &mut out);
    let want = mono.len() * rate as usize / info.sample_rate as usize;
    let start = r.delay().min(out.len());
    out.drain(..start);
    out.truncate(want);
    Ok(out)
}
