use super::*;

#[test]
fn three_party_mix_minus() {
    let mut m = Mixer::new(4);
    let (a, b, c) = (m.add(), m.add(), m.add());
    m.put(a, &[100, 200, 300, 400]);
    m.put(b, &[10, 20, 30, 40]);
    m.put(c, &[1, 2, 3, 4]);
    m.mix();
    assert_eq!(m.output(a).unwrap(), [11, 22, 33, 44]);
    assert_eq!(m.output(b).unwrap(), [101, 202, 303, 404]);
    assert_eq!(m.output(c).unwrap(), [110, 220, 330, 440]);
    // Inputs are consumed: the next frame is silent.
    m.mix();
    assert_eq!(m.output(a).unwrap(), [0; 4]);
}

#[test]
fn gain_mute_and_saturation() {
    let mut m = Mixer::new(2);
    let (a, b, c) = (m.add(), m.add(), m.add());
    assert!(m.set_gain_db(a, -6.0206));
    assert!(m.set_muted(b, true));
    m.put(a, &[1000, -1000]);
    m.put(b, &[500, 500]);
    m.put(c, &[30000, -30000]);
    m.mix();
    assert_eq!(m.output(b).unwrap(), [30500, -30500]);
    assert_eq!(m.output(c).unwrap(), [500, -500]);
    assert_eq!(m.output(a).unwrap(), [30000, -30000]);
    let d = m.add();
    m.put(a, &[20000, -20000]);
    m.set_gain_db(a, 0.0);
    m.put(c, &[30000, -30000]);
    m.mix();
    assert_eq!(m.output(d).unwrap(), [32767, -32768]);
    // Short and long frames are handled; unknown ids are refused.
    assert!(m.put(a, &[1]));
    assert!(m.put(a, &[1, 2, 3]));
    assert!(m.remove(d));
    assert!(!m.remove(d));
    assert!(!m.put(d, &[1]));
    assert!(m.output(d).is_none());
    assert_eq!(m.len(), 3);
}

#[test]
fn talker_detection_with_hangover() {
    let mut m = Mixer::new(160);
    m.set_talker_config(TalkerConfig {
        threshold_dbfs: -40.0,
        hangover_frames: 3,
    });
    let (a, b) = (m.add(), m.add());
    let loud = [3000i16; 160];
    let quiet = [50i16; 160];
    m.put(a, &loud);
    m.put(b, &quiet);
    m.mix();
    assert!(m.is_talking(a) && !m.is_talking(b));
    assert_eq!(m.poll_event(), Some(TalkerEvent::Started(a)));
    assert_eq!(m.poll_event(), None);
    for _ in 0..3 {
        m.put(a, &quiet);
        m.mix();
        assert!(m.is_talking(a));
    }
    m.mix();
    assert!(!m.is_talking(a));
    assert_eq!(m.poll_event(), Some(TalkerEvent::Stopped(a)));
}

#[test]
fn fifty_participants_each_hear_the_rest() {
    let mut m = Mixer::new(160);
    let ids: Vec<_> = (0..50).map(|_| m.add()).collect();
    for (i, &id) in ids.iter().enumerate() {
        m.put(id, &[i as i16; 160]);
    }
    m.mix();
    let total: i16 = (0..50).sum();
    for (i, &id) in ids.iter().enumerate() {
        assert!(m.output(id).unwrap().iter().all(|&s| s == total - i as i16));
    }
}
