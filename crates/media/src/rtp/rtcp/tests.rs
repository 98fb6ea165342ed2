use super::*;
use proptest::prelude::*;

fn block(ssrc: u32) -> ReportBlock {
    ReportBlock {
        ssrc,
        fraction_lost: 64,
        cumulative_lost: -3,
        highest_seq: 0x0001_0005,
        jitter: 42,
        lsr: 0x1234_5678,
        dlsr: 0x0001_8000,
    }
}

/// SR with one block + SDES CNAME + BYE with reason + PSFB PLI.
fn compound() -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    let info = SenderInfo {
        ssrc: 0xaaaa,
        ntp: NtpTime(0x1111_2222_3333_4444),
        rtp_timestamp: 8000,
        packet_count: 50,
        octet_count: 8000,
    };
    let mut n = write_sender_report(&info, &[block(0xbbbb)], &mut buf).unwrap();
    n += write_sdes_cname(0xaaaa, b"pbx@example", &mut buf[n..]).unwrap();
    buf[n..n + 12].copy_from_slice(&[0x81, PT_BYE, 0, 2, 0, 0, 0xaa, 0xaa, 3, b'b', b'y', b'e']);
    n += 12;
    buf[n..n + 12].copy_from_slice(&[0x81, PT_PSFB, 0, 2, 0, 0, 0xaa, 0xaa, 0, 0, 0xbb, 0xbb]);
    n += 12;
    buf.truncate(n);
    buf
}

#[test]
fn parses_compound() {
    let buf = compound();
    let c = Compound::parse(&buf).unwrap();
    let packets: Vec<_> = c.packets().collect();
    assert_eq!(packets.len(), 4);
    match packets[0] {
        RtcpPacket::SenderReport { info, blocks } => {
            assert_eq!(info.ssrc, 0xaaaa);
            assert_eq!(info.ntp.compact(), 0x2222_3333);
            assert_eq!(info.packet_count, 50);
            assert_eq!(blocks.iter().collect::<Vec<_>>(), [block(0xbbbb)]);
        }
        other => panic!("unexpected {other:?}"),
    }
    let chunks: Vec<_> = packets[1].sdes_chunks().collect();
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].ssrc, 0xaaaa);
    assert_eq!(chunks[0].cname(), Some(&b"pbx@example"[..]));
    assert_eq!(packets[2].bye_sources().collect::<Vec<_>>(), [0xaaaa]);
    assert!(matches!(
        packets[2],
        RtcpPacket::Bye {
            reason: Some(b"bye"),
            ..
        }
    ));
    match packets[3] {
        RtcpPacket::Other(raw) => {
            assert_eq!((raw.packet_type, raw.count), (PT_PSFB, 1));
            assert_eq!(raw.feedback_ssrcs(), Some((0xaaaa, 0xbbbb)));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        c.report_blocks().collect::<Vec<_>>(),
        [(0xaaaa, block(0xbbbb))]
    );
}

#[test]
fn receiver_report_round_trip() {
    let mut buf = [0u8; 64];
    let n = write_receiver_report(7, &[block(1), block(2)], &mut buf).unwrap();
    assert_eq!(n, 56);
    let c = Compound::parse(&buf[..n]).unwrap();
    let blocks: Vec<_> = c.report_blocks().map(|(_, b)| b).collect();
    assert_eq!(blocks, [block(1), block(2)]);
    assert!(matches!(
        write_receiver_report(7, &[block(1)], &mut buf[..31]),
        Err(RtcpError::BufferTooSmall { needed: 32, .. })
    ));
}

#[test]
fn cumulative_lost_is_24_bit_signed() {
    let mut buf = [0u8; 32];
    let mut b = block(1);
    b.cumulative_lost = 0x7f_ffff + 10;
    write_receiver_report(7, &[b], &mut buf).unwrap();
    let got = Compound::parse(&buf)
        .unwrap()
        .report_blocks()
        .next()
        .unwrap()
        .1;
    assert_eq!(got.cumulative_lost, 0x7f_ffff);
}

#[test]
fn malformed_is_error() {
    assert_eq!(Compound::parse(&[]), Err(RtcpError::Empty));
    assert_eq!(
        Compound::parse(&[0x80, 201, 0]),
        Err(RtcpError::Truncated(0))
    );
    assert_eq!(
        Compound::parse(&[0x40, 201, 0, 0]),
        Err(RtcpError::BadVersion(1))
    );
    // Length says 2 words but only one follows the header.
    assert_eq!(
        Compound::parse(&[0x80, 201, 0, 2, 0, 0, 0, 1]),
        Err(RtcpError::LengthOverrun(0))
    );
    // RR claiming one block without room for it.
    assert_eq!(
        Compound::parse(&[0x81, 201, 0, 1, 0, 0, 0, 1]),
        Err(RtcpError::BodyTooShort(201))
    );
    // SDES chunk whose item runs past the packet.
    assert_eq!(
        Compound::parse(&[0x81, 202, 0, 2, 0, 0, 0, 1, 1, 9, b'a', 0]),
        Err(RtcpError::BadSdes)
    );
    // Padding larger than the body.
    assert_eq!(
        Compound::parse(&[0xa0, 201, 0, 1, 0, 0, 0, 9]),
        Err(RtcpError::BodyTooShort(201))
    );
    // Trailing garbage after a valid packet.
    let mut buf = [0u8; 10];
    write_receiver_report(1, &[], &mut buf).unwrap();
    assert_eq!(Compound::parse(&buf), Err(RtcpError::Truncated(8)));
}

#[test]
fn rtp_rtcp_demux() {
    assert!(is_rtcp(&[0x80, 200]));
    assert!(is_rtcp(&[0x80, 206]));
    assert!(is_rtcp(&[0x81, 223]));
    assert!(!is_rtcp(&[0x80, 0]));
    assert!(!is_rtcp(&[0x80, 0x80 | 8]));
    assert!(!is_rtcp(&[0x80, 96]));
    assert!(!is_rtcp(&[0x80, 191]));
    assert!(!is_rtcp(&[0x80]));
}

proptest! {
    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(c) = Compound::parse(&data) {
            for p in c.packets() {
                let _ = (p.sdes_chunks().filter_map(|c| c.cname()).count(), p.bye_sources().count());
            }
            let _ = c.report_blocks().count();
        }
    }

    #[test]
    fn random_v2_headers_never_panic(
        mut data in proptest::collection::vec(any::<u8>(), 4..300),
        pt in 200u8..=206,
    ) {
        data[0] = (data[0] & 0x3f) | 0x80;
        data[1] = pt;
        let words = (data.len() / 4).saturating_sub(1) as u16;
        data[2..4].copy_from_slice(&words.to_be_bytes());
        if let Ok(c) = Compound::parse(&data) {
            for p in c.packets() {
                let _ = p.sdes_chunks().flat_map(|c| c.items().collect::<Vec<_>>()).count();
            }
        }
    }
}

#[test]
fn padding_is_removed_before_decoding() {
    // BYE for one source, then four octets of padding (P bit set).
    let buf = [0xa1, PT_BYE, 0, 2, 0, 0, 0, 9, 0, 0, 0, 4];
    let c = Compound::parse(&buf).unwrap();
    let p = c.packets().next().unwrap();
    assert_eq!(p.bye_sources().collect::<Vec<_>>(), [9]);
    assert!(matches!(p, RtcpPacket::Bye { reason: None, .. }));
}
