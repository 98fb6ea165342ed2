//! Codec negotiation across legs, for calls whose phones share no codec.
//!
//! The PBX rewrites each offer in flight (see [`super::anchor`]): the
//! offerer's codecs, filtered to `[calls] codecs`, in its order and with its
//! payload types, and then the other configured codecs the media engine can
//! transcode that the offerer did not list (static payload types where
//! free, dynamic ones otherwise). When the answer picks one of the
//! offerer's own codecs, nothing else happens: the relay forwards packets
//! untouched. When it picks one the PBX appended, the answer passed back to
//! the offerer names the offerer's preferred transcodable codec instead
//! (with its telephone-event if both sides negotiated one) and the call
//! emits [`Output::Transcoding`] so the relay converts each direction.
//! Every offer/answer exchange (re-INVITE, UPDATE) renegotiates.

use sip::sdp::{Attribute, MediaDescription};

use super::{Call, Output, Side, anchor};

/// The telephone-event (RFC 4733) format of one leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Its payload type on that leg.
    pub payload_type: u8,
    /// Its RTP clock rate.
    pub clock_rate: u32,
}

/// What one leg sends and receives while the relay transcodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadFormat {
    /// Codec name as in the SDP (`PCMU`, `G722`, `opus`...).
    pub codec: String,
    /// Its payload type on this leg.
    pub payload_type: u8,
    /// Its RTP clock rate as signalled (8000 for G.722).
    pub clock_rate: u32,
    /// DTMF events, when both legs negotiated them.
    pub telephone_event: Option<TelephoneEvent>,
}

/// The legs use different codecs: the relay decodes what arrives on each
/// leg and encodes it in the other leg's format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcoding {
    /// Leg A's (caller's) format.
    pub a: PayloadFormat,
    /// Leg B's (callee's) format.
    pub b: PayloadFormat,
}

impl Transcoding {
    /// The format of `side`.
    pub fn side(&self, side: Side) -> &PayloadFormat {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }
}

/// An offer the PBX passed from one leg to the other, kept to read the
/// answer.
#[derive(Debug, Clone)]
pub(super) struct SentOffer {
    offerer: Side,
    /// The offerer's audio stream as filtered (its rtpmap/fmtp lines are
    /// copied into a narrowed answer).
    offered: MediaDescription,
    /// Codec names the PBX appended (lowercase).
    appended: Vec<String>,
    /// The offerer's preferred transcodable codec: (payload type, name,
    /// clock rate).
    preferred: Option<(u8, String, u32)>,
}

/// RTP clock rate and channels of the codecs the PBX may append.
fn rtpmap_of(name: &str) -> Option<(&'static str, u32, Option<u16>)> {
    let known: &[(&str, u32, Option<u16>)] = &[
        ("PCMU", 8000, None),
        ("PCMA", 8000, None),
        ("G722", 8000, None),
        ("opus", 48000, Some(2)),
        ("G729", 8000, None),
    ];
    known
        .iter()
        .copied()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
}

/// The RFC 3551 static payload type of a codec, if it has one.
fn static_type_of(name: &str) -> Option<u8> {
    (0..=34u8).find(|&pt| sip::sdp::static_payload(pt).is_some_and(|r| r.encoding == name))
}

fn is_event_or_noise(name: &str) -> bool {
    name.eq_ignore_ascii_case("telephone-event") || name.eq_ignore_ascii_case("CN")
}

/// Extends the offer `m` (already filtered to `configured`) with the
/// configured codecs in `transcodable` the offerer did not list, provided
/// the offerer listed a transcodable codec itself (otherwise the relay
/// could not convert anything).
pub(super) fn extend_offer(
    m: &mut MediaDescription,
    configured: &[String],
    transcodable: &[String],
    offerer: Side,
) -> SentOffer {
    let offered = m.clone();
    let can = |name: &str| transcodable.iter().any(|t| t.eq_ignore_ascii_case(name));
    let listed: Vec<(u8, String, u32)> = m
        .payload_types()
        .filter_map(|pt| anchor::codec_of(m, pt).map(|(name, rate)| (pt, name, rate)))
        .collect();
    let preferred = listed
        .iter()
        .find(|(_, name, _)| !is_event_or_noise(name) && can(name))
        .cloned();
    let mut appended = Vec::new();
    if preferred.is_some() {
        let mut used: Vec<u8> = listed.iter().map(|(pt, _, _)| *pt).collect();
        for name in configured {
            let already = listed.iter().any(|(_, n, _)| n.eq_ignore_ascii_case(name));
            if already || is_event_or_noise(name) || !can(name) {
                continue;
            }
            let Some((canonical, rate, channels)) = rtpmap_of(name) else {
                continue;
            };
            let pt = static_type_of(canonical)
                .filter(|pt| !used.contains(pt))
                .or_else(|| (96..=127).find(|pt| !used.contains(pt)));
            let Some(pt) = pt else {
                break;
            };
            used.push(pt);
            m.formats.push(pt.to_string());
            let value = match channels {
                Some(c) => format!("{pt} {canonical}/{rate}/{c}"),
                None => format!("{pt} {canonical}/{rate}"),
            };
            m.attributes.push(Attribute::new("rtpmap", value));
            appended.push(canonical.to_ascii_lowercase());
        }
    }
    SentOffer {
        offerer,
        offered,
        appended,
        preferred,
    }
}

/// The first telephone-event of a stream.
fn telephone_event(m: &MediaDescription) -> Option<TelephoneEvent> {
    m.payload_types().find_map(|pt| {
        let (name, clock_rate) = anchor::codec_of(m, pt)?;
        name.eq_ignore_ascii_case("telephone-event")
            .then_some(TelephoneEvent {
                payload_type: pt,
                clock_rate,
            })
    })
}

/// Reads the answer `m` to `offer`. `None`: the answer picked one of the
/// offerer's codecs (plain relay). `Some`: it picked an appended codec;
/// `m` is narrowed to the offerer's preferred codec (and telephone-event)
/// for the offerer, and the returned plan says what each leg uses.
pub(super) fn read_answer(offer: &SentOffer, m: &mut MediaDescription) -> Option<Transcoding> {
    let (answer_pt, answer_codec, answer_rate) = m.payload_types().find_map(|pt| {
        let (name, rate) =
            anchor::codec_of(m, pt).or_else(|| anchor::codec_of(&offer.offered, pt))?;
        (!is_event_or_noise(&name)).then_some((pt, name, rate))
    })?;
    if !offer.appended.contains(&answer_codec.to_ascii_lowercase()) {
        return None;
    }
    let (offer_pt, offer_codec, offer_rate) = offer.preferred.clone()?;
    let (offer_event, answer_event) = match (telephone_event(&offer.offered), telephone_event(m)) {
        (Some(o), Some(a)) => (Some(o), Some(a)),
        _ => (None, None),
    };
    let mut keep = vec![offer_pt];
    keep.extend(offer_event.map(|e| e.payload_type));
    m.formats = keep.iter().map(u8::to_string).collect();
    m.attributes
        .retain(|a| a.name != "rtpmap" && a.name != "fmtp");
    for a in &offer.offered.attributes {
        let pt = a
            .value
            .as_deref()
            .and_then(|v| v.split_ascii_whitespace().next())
            .and_then(|p| p.parse::<u8>().ok());
        if (a.name == "rtpmap" || a.name == "fmtp") && pt.is_some_and(|pt| keep.contains(&pt)) {
            m.attributes.push(a.clone());
        }
    }
    let offerer = PayloadFormat {
        codec: offer_codec,
        payload_type: offer_pt,
        clock_rate: offer_rate,
        telephone_event: offer_event,
    };
    let answerer = PayloadFormat {
        codec: answer_codec,
        payload_type: answer_pt,
        clock_rate: answer_rate,
        telephone_event: answer_event,
    };
    Some(match offer.offerer {
        Side::A => Transcoding {
            a: offerer,
            b: answerer,
        },
        Side::B => Transcoding {
            a: answerer,
            b: offerer,
        },
    })
}

impl Call {
    /// Codecs the offer from `offerer` may be extended with: none when
    /// transcoding is off.
    pub(super) fn offer_extension(
        &self,
        offerer: Side,
    ) -> impl FnOnce(&mut MediaDescription) -> SentOffer + use<> {
        let configured = self.config.codecs.clone();
        let transcodable = self.config.transcodable.clone();
        move |m| extend_offer(m, &configured, &transcodable, offerer)
    }

    /// The answer reader for SDP sent to `to`: narrows it and returns the
    /// plan when it answers an offer from `to`.
    pub(super) fn answer_reader(
        &self,
        to: Side,
    ) -> impl FnOnce(&mut MediaDescription) -> Option<Option<Transcoding>> + use<> {
        let offer = self.offer.clone().filter(|o| o.offerer == to);
        move |m| offer.map(|o| read_answer(&o, m))
    }

    /// Applies the outcome of an answer: a changed plan reaches the relay.
    pub(super) fn negotiated(&mut self, outcome: Option<Option<Transcoding>>) {
        let Some(plan) = outcome else { return };
        if plan != self.transcoding {
            self.transcoding = plan.clone();
            self.out.push_back(Output::Transcoding(plan));
        }
    }

    /// The codec each leg used, for the CDR: (A, B).
    pub(super) fn leg_codecs(&self) -> (Option<String>, Option<String>) {
        match &self.transcoding {
            Some(t) => (Some(t.a.codec.clone()), Some(t.b.codec.clone())),
            None => (self.codec.clone(), self.codec.clone()),
        }
    }
}
