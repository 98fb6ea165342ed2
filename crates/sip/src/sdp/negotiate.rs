//! RFC 3264 offer/answer over [`SessionDescription`]s, sans-IO.
//!
//! [`OfferAnswer`] is one side of a session: it creates offers (§5) from the
//! local [`LocalMedia`] list, answers received offers (§6), checks answers to
//! its own offers, and builds hold/resume re-offers with the `o=` version
//! bumped (§8). Every result names the negotiated codec and remote RTP
//! address per stream; nothing here touches sockets.

use std::net::{IpAddr, SocketAddr};

pub use super::outcome::{
    Answer, AnswerError, NegotiatedStream, OfferError, RejectReason, TelephoneEvent,
};

use super::model::{
    AddressType, Attribute, Connection, Direction, EventRanges, MediaDescription, Origin, RtpMap,
    SessionDescription, Timing, static_payload,
};

/// A codec we can send and receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCodec {
    pub name: String,
    pub clock_rate: u32,
    pub channels: u16,
    pub fmtp: Option<String>,
}

impl LocalCodec {
    pub fn new(name: &str, clock_rate: u32) -> Self {
        Self {
            name: name.to_owned(),
            clock_rate,
            channels: 1,
            fmtp: None,
        }
    }

    pub fn with_channels(mut self, channels: u16) -> Self {
        self.channels = channels;
        self
    }

    pub fn with_fmtp(mut self, fmtp: &str) -> Self {
        self.fmtp = Some(fmtp.to_owned());
        self
    }

    fn matches(&self, map: &RtpMap) -> bool {
        self.name.eq_ignore_ascii_case(&map.encoding)
            && self.clock_rate == map.clock_rate
            && self.channels == map.channel_count()
    }
}

/// One local media stream: what we offer, or accept in an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    pub media: String,
    pub protocol: String,
    pub address: IpAddr,
    pub port: u16,
    /// Preference order.
    pub codecs: Vec<LocalCodec>,
    /// RFC 4733 events we accept; `None` disables telephone-event.
    pub telephone_event: Option<EventRanges>,
    pub rtcp_mux: bool,
    pub ptime: Option<u32>,
}

impl LocalMedia {
    /// Plain RTP/AVP audio with DTMF events 0-15.
    pub fn audio(address: IpAddr, port: u16, codecs: Vec<LocalCodec>) -> Self {
        Self {
            media: "audio".to_owned(),
            protocol: "RTP/AVP".to_owned(),
            address,
            port,
            codecs,
            telephone_event: Some(EventRanges::dtmf()),
            rtcp_mux: false,
            ptime: None,
        }
    }
}

/// Whose preference decides the codec order in an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CodecOrder {
    #[default]
    Ours,
    Theirs,
}

/// Our side of an offer/answer exchange (RFC 3264).
#[derive(Debug, Clone)]
pub struct OfferAnswer {
    origin: Origin,
    emitted: bool,
    pub media: Vec<LocalMedia>,
    pub order: CodecOrder,
    /// Local policy: `SendOnly` while we hold the call.
    pub direction: Direction,
    pending: Option<SessionDescription>,
    current: Vec<Option<NegotiatedStream>>,
}

fn is_event_or_cn(map: &RtpMap) -> bool {
    map.encoding.eq_ignore_ascii_case("telephone-event") || map.encoding.eq_ignore_ascii_case("CN")
}

fn remote_for(sdp: &SessionDescription, m: &MediaDescription) -> Option<SocketAddr> {
    let ip = sdp.connection_for(m)?.ip()?;
    Some(SocketAddr::new(ip, m.port))
}

impl OfferAnswer {
    pub fn new(username: &str, session_id: u64, address: IpAddr, media: Vec<LocalMedia>) -> Self {
        let origin = Origin {
            username: username.to_owned(),
            session_id: session_id.to_string(),
            session_version: session_id,
            address_type: AddressType::of(address),
            address: address.to_string(),
        };
        Self {
            origin,
            emitted: false,
            media,
            order: CodecOrder::Ours,
            direction: Direction::SendRecv,
            pending: None,
            current: Vec::new(),
        }
    }

    /// The streams of the last completed exchange (`None` = rejected).
    pub fn current(&self) -> &[Option<NegotiatedStream>] {
        &self.current
    }

    /// `o=` for the next SDP we emit: the version goes up by one each time (§8).
    fn next_origin(&mut self) -> Origin {
        if self.emitted {
            self.origin.session_version = self.origin.session_version.wrapping_add(1);
        }
        self.emitted = true;
        self.origin.clone()
    }

    fn skeleton(&mut self) -> SessionDescription {
        let origin = self.next_origin();
        let connection = self.origin.address.parse().ok().map(Connection::new);
        SessionDescription {
            origin,
            session_name: "-".to_owned(),
            connection,
            bandwidths: Vec::new(),
            timings: vec![Timing::default()],
            other: Vec::new(),
            attributes: Vec::new(),
            media: Vec::new(),
        }
    }

    /// A new offer (§5) from the local media; it becomes the pending offer.
    pub fn create_offer(&mut self) -> SessionDescription {
        let mut sdp = self.skeleton();
        let session_ip = sdp.connection.as_ref().and_then(Connection::ip);
        for local in &self.media {
            sdp.media
                .push(offer_media(local, session_ip, self.direction));
        }
        self.pending = Some(sdp.clone());
        sdp
    }

    /// A hold re-offer: `sendonly`, or `inactive` if the peer already holds us.
    pub fn hold_offer(&mut self) -> SessionDescription {
        let mut live = self.current.iter().flatten().peekable();
        let held_by_peer = live.peek().is_some() && live.all(|s| !s.direction.sends());
        self.direction = if held_by_peer {
            Direction::Inactive
        } else {
            Direction::SendOnly
        };
        self.create_offer()
    }

    /// A resume re-offer: back to `sendrecv`.
    pub fn resume_offer(&mut self) -> SessionDescription {
        self.direction = Direction::SendRecv;
        self.create_offer()
    }

    /// Answers a received offer (§6). A rejected stream keeps its place with
    /// port 0; if every stream is rejected the caller should send 488.
    pub fn answer(&mut self, offer: &SessionDescription) -> Result<Answer, OfferError> {
        // A refused offer emits no SDP, so it must not consume a version.
        let before = (self.origin.clone(), self.emitted);
        let mut sdp = self.skeleton();
        let session_ip = sdp.connection.as_ref().and_then(Connection::ip);
        let mut used = vec![false; self.media.len()];
        let mut streams = Vec::with_capacity(offer.media.len());
        for (index, m) in offer.media.iter().enumerate() {
            let outcome = self.answer_stream(offer, index, m, &mut used);
            match &outcome {
                Ok((media, _)) => {
                    let mut media = media.clone();
                    if media.connection.as_ref().and_then(Connection::ip) == session_ip {
                        media.connection = None;
                    }
                    sdp.media.push(media);
                }
                Err(_) => sdp.media.push(rejected(m)),
            }
            streams.push(outcome.map(|(_, s)| s));
        }
        if !streams.iter().any(Result::is_ok) {
            (self.origin, self.emitted) = before;
            let reasons = streams.into_iter().filter_map(Result::err).collect();
            return Err(OfferError::NotAcceptable(reasons));
        }
        self.current = streams.iter().map(|s| s.as_ref().ok().cloned()).collect();
        self.pending = None;
        Ok(Answer { sdp, streams })
    }

    fn answer_stream(
        &self,
        offer: &SessionDescription,
        index: usize,
        m: &MediaDescription,
        used: &mut [bool],
    ) -> Result<(MediaDescription, NegotiatedStream), RejectReason> {
        if m.port == 0 {
            return Err(RejectReason::Disabled(index));
        }
        let same_kind = |l: &LocalMedia| l.media.eq_ignore_ascii_case(&m.media);
        if !self.media.iter().any(same_kind) {
            return Err(RejectReason::UnsupportedMedia {
                index,
                media: m.media.clone(),
            });
        }
        let slot = self
            .media
            .iter()
            .enumerate()
            .position(|(i, l)| {
                !used[i] && same_kind(l) && l.protocol.eq_ignore_ascii_case(&m.protocol)
            })
            .ok_or_else(|| RejectReason::UnsupportedProtocol {
                index,
                protocol: m.protocol.clone(),
            })?;
        let local = &self.media[slot];
        let remote = remote_for(offer, m).ok_or(RejectReason::NoAddress(index))?;

        let offered: Vec<RtpMap> = m
            .payload_types()
            .filter_map(|pt| m.rtpmap(pt))
            .filter(|map| !map.encoding.eq_ignore_ascii_case("telephone-event"))
            .collect();
        let mut chosen: Vec<(RtpMap, &LocalCodec)> = Vec::new();
        match self.order {
            CodecOrder::Theirs => {
                for map in &offered {
                    if let Some(c) = local.codecs.iter().find(|c| c.matches(map)) {
                        chosen.push((map.clone(), c));
                    }
                }
            }
            CodecOrder::Ours => {
                for c in &local.codecs {
                    if let Some(map) = offered.iter().find(|map| {
                        c.matches(map)
                            && !chosen
                                .iter()
                                .any(|(x, _)| x.payload_type == map.payload_type)
                    }) {
                        chosen.push((map.clone(), c));
                    }
                }
            }
        }
        let Some((first, first_local)) = chosen.iter().find(|(map, _)| !is_event_or_cn(map)) else {
            return Err(RejectReason::NoCommonCodec(index));
        };
        let (codec, codec_local) = (first.clone(), *first_local);

        let telephone_event = local.telephone_event.as_ref().and_then(|ours| {
            let (pt, theirs) = m.telephone_event(codec.clock_rate)?;
            Some(TelephoneEvent {
                payload_type: pt,
                events: ours.intersect(&theirs)?,
            })
        });
        let direction = offer.direction_for(m).reverse().intersect(self.direction);
        let ptime = m.ptime().or(local.ptime);
        let rtcp_mux = m.rtcp_mux() && local.rtcp_mux;

        let mut media = MediaDescription {
            media: m.media.clone(),
            port: local.port,
            port_count: None,
            protocol: m.protocol.clone(),
            formats: Vec::new(),
            connection: Some(Connection::new(local.address)),
            bandwidths: Vec::new(),
            other: Vec::new(),
            attributes: Vec::new(),
        };
        for (map, c) in &chosen {
            let fmtp = c
                .fmtp
                .clone()
                .or_else(|| m.fmtp(map.payload_type).map(|f| f.params));
            push_codec(&mut media, map, fmtp.as_deref());
        }
        if let Some(te) = &telephone_event {
            let map = RtpMap {
                payload_type: te.payload_type,
                encoding: "telephone-event".to_owned(),
                clock_rate: codec.clock_rate,
                channels: None,
            };
            push_codec(&mut media, &map, Some(&te.events.to_string()));
        }
        finish_media(&mut media, ptime, rtcp_mux, direction);
        used[slot] = true;
        let fmtp = codec_local
            .fmtp
            .clone()
            .or_else(|| m.fmtp(codec.payload_type).map(|f| f.params));
        let stream = NegotiatedStream {
            index,
            media: m.media.clone(),
            codec,
            fmtp,
            telephone_event,
            remote,
            direction,
            ptime,
            rtcp_mux,
        };
        Ok((media, stream))
    }

    #[cfg(test)]
    pub(super) fn pending_for_test(&mut self, offer: SessionDescription) {
        self.pending = Some(offer);
    }

    /// Checks the answer to our pending offer (§6, §7) and returns each
    /// stream's outcome, `None` for a rejected stream.
    pub fn receive_answer(
        &mut self,
        answer: &SessionDescription,
    ) -> Result<Vec<Option<NegotiatedStream>>, AnswerError> {
        let offer = self.pending.as_ref().ok_or(AnswerError::NoPendingOffer)?;
        let streams = check_answer(offer, answer)?;
        self.pending = None;
        self.current = streams.clone();
        Ok(streams)
    }
}

fn push_codec(media: &mut MediaDescription, map: &RtpMap, fmtp: Option<&str>) {
    media.formats.push(map.payload_type.to_string());
    media.attributes.push(Attribute::new("rtpmap", map.value()));
    if let Some(f) = fmtp {
        media
            .attributes
            .push(Attribute::new("fmtp", format!("{} {f}", map.payload_type)));
    }
}

fn finish_media(media: &mut MediaDescription, ptime: Option<u32>, mux: bool, dir: Direction) {
    if let Some(p) = ptime {
        media
            .attributes
            .push(Attribute::new("ptime", p.to_string()));
    }
    if mux {
        media.attributes.push(Attribute::flag("rtcp-mux"));
    }
    media.attributes.push(Attribute::flag(dir.as_str()));
}

/// §6: a rejected stream is answered with the offered line and port 0.
fn rejected(m: &MediaDescription) -> MediaDescription {
    MediaDescription {
        port: 0,
        port_count: None,
        connection: None,
        bandwidths: Vec::new(),
        other: Vec::new(),
        attributes: Vec::new(),
        ..m.clone()
    }
}

fn offer_media(local: &LocalMedia, session_ip: Option<IpAddr>, dir: Direction) -> MediaDescription {
    let mut media = MediaDescription {
        media: local.media.clone(),
        port: local.port,
        port_count: None,
        protocol: local.protocol.clone(),
        formats: Vec::new(),
        connection: (session_ip != Some(local.address)).then(|| Connection::new(local.address)),
        bandwidths: Vec::new(),
        other: Vec::new(),
        attributes: Vec::new(),
    };
    // Static PTs where RFC 3551 defines one, then 96+ in order (§5.1).
    let mut next_dynamic = 96u8;
    let mut dynamic = || {
        let pt = next_dynamic;
        next_dynamic = next_dynamic.saturating_add(1).min(127);
        pt
    };
    let mut rates: Vec<u32> = Vec::new();
    for c in &local.codecs {
        let static_pt = (0..96u8).find(|&pt| static_payload(pt).is_some_and(|s| c.matches(&s)));
        let map = RtpMap {
            payload_type: static_pt.unwrap_or_else(&mut dynamic),
            encoding: c.name.clone(),
            clock_rate: c.clock_rate,
            channels: (c.channels != 1).then_some(c.channels),
        };
        if !rates.contains(&c.clock_rate) {
            rates.push(c.clock_rate);
        }
        push_codec(&mut media, &map, c.fmtp.as_deref());
    }
    // RFC 4733 events travel at the clock rate of the audio codec in use, so
    // one telephone-event entry per rate lets the answerer pick any codec.
    for rate in rates
        .into_iter()
        .filter(|_| local.telephone_event.is_some())
    {
        let events = local.telephone_event.as_ref().map(ToString::to_string);
        let map = RtpMap {
            payload_type: dynamic(),
            encoding: "telephone-event".to_owned(),
            clock_rate: rate,
            channels: None,
        };
        push_codec(&mut media, &map, events.as_deref());
    }
    finish_media(&mut media, local.ptime, local.rtcp_mux, dir);
    media
}

fn check_answer(
    offer: &SessionDescription,
    answer: &SessionDescription,
) -> Result<Vec<Option<NegotiatedStream>>, AnswerError> {
    if offer.media.len() != answer.media.len() {
        return Err(AnswerError::StreamCount {
            offered: offer.media.len(),
            answered: answer.media.len(),
        });
    }
    let mut out = Vec::with_capacity(answer.media.len());
    for (index, (o, a)) in offer.media.iter().zip(&answer.media).enumerate() {
        if !o.media.eq_ignore_ascii_case(&a.media) || !o.protocol.eq_ignore_ascii_case(&a.protocol)
        {
            return Err(AnswerError::MediaMismatch(index));
        }
        if a.port == 0 || o.port == 0 {
            out.push(None);
            continue;
        }
        let mut codec = None;
        for f in &a.formats {
            let unoffered = || AnswerError::UnofferedFormat {
                index,
                format: f.clone(),
            };
            let pt: u8 = f.parse().map_err(|_| unoffered())?;
            if !o.payload_types().any(|p| p == pt) {
                return Err(unoffered());
            }
            let ours = o.rtpmap(pt).ok_or_else(unoffered)?;
            if let Some(theirs) = a.rtpmap(pt) {
                let same = theirs.encoding.eq_ignore_ascii_case(&ours.encoding)
                    && theirs.clock_rate == ours.clock_rate;
                if !same {
                    return Err(AnswerError::Remapped {
                        index,
                        payload_type: pt,
                    });
                }
            }
            if codec.is_none() && !is_event_or_cn(&ours) {
                codec = Some(ours);
            }
        }
        let codec = codec.ok_or(AnswerError::NoCodec(index))?;
        let offered = offer.direction_for(o);
        let answered = answer.direction_for(a);
        if (answered.sends() && !offered.receives()) || (answered.receives() && !offered.sends()) {
            return Err(AnswerError::Direction {
                index,
                offered,
                answered,
            });
        }
        let remote = remote_for(answer, a).ok_or(AnswerError::NoAddress(index))?;
        let telephone_event = a
            .telephone_event(codec.clock_rate)
            .map(|(payload_type, events)| TelephoneEvent {
                payload_type,
                events,
            });
        out.push(Some(NegotiatedStream {
            index,
            media: a.media.clone(),
            fmtp: a.fmtp(codec.payload_type).map(|f| f.params),
            codec,
            telephone_event,
            remote,
            direction: answered.reverse(),
            ptime: a.ptime(),
            rtcp_mux: o.rtcp_mux() && a.rtcp_mux(),
        }));
    }
    Ok(out)
}
