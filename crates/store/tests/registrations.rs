//! Registrar binding and registration history suites, written once and run
//! against SQLite in memory, an SQLite file and PostgreSQL (see `common`).

mod common;

use std::net::SocketAddr;

use store::{
    BindingKey, NewBinding, NewExtension, NewRegistrationEvent, RegistrationEventKind, Store,
    StoreError,
};

on_all_backends!(
    history_batch_append,
    bindings_batch_apply,
    bindings_upsert_and_queries,
    bindings_by_instance_and_expiry,
    registration_history,
);

async fn alice(store: &Store) {
    let mut alice = NewExtension::new("1001", "Alice");
    alice.sip_username = "alice".into();
    store.extensions().create(&alice).await.unwrap();
}

fn binding(aor: &str, contact: &str, expires_at: i64) -> NewBinding {
    NewBinding {
        aor: aor.into(),
        contact: contact.into(),
        expires_at,
        q: None,
        call_id: "call-1@phone".into(),
        cseq: 1,
        source: "192.0.2.10:5060".parse().unwrap(),
        transport: "UDP".into(),
        user_agent: Some("Phone/1.0".into()),
        instance_id: None,
        reg_id: None,
        path: Vec::new(),
        mac_address: None,
    }
}

async fn bindings_upsert_and_queries(store: Store) {
    alice(&store).await;
    let b = store.bindings();

    let mut desk = binding("alice", "sip:alice@192.0.2.10:5060", 10_000);
    desk.mac_address = Some("00:11:22:33:44:55".into());
    let first = b.upsert(&desk, 1_000).await.unwrap();
    assert_eq!((first.first_seen, first.last_seen), (1_000, 1_000));
    assert_eq!(
        first.source,
        "192.0.2.10:5060".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(first.key(), BindingKey::Contact(desk.contact.clone()));

    // Refresh: same key, new CSeq and expiry; first_seen and MAC kept.
    let mut refresh = desk.clone();
    refresh.cseq = 2;
    refresh.expires_at = 20_000;
    refresh.mac_address = None;
    refresh.source = "[2001:db8::1]:5070".parse().unwrap();
    let refreshed = b.upsert(&refresh, 5_000).await.unwrap();
    assert_eq!(refreshed.id, first.id);
    assert_eq!((refreshed.first_seen, refreshed.last_seen), (1_000, 5_000));
    assert_eq!(refreshed.cseq, 2);
    assert_eq!(refreshed.expires_at, 20_000);
    assert_eq!(refreshed.mac_address.as_deref(), Some("00:11:22:33:44:55"));
    assert_eq!(refreshed.source, refresh.source);

    let mut mobile = binding(
        "alice",
        "sip:alice@198.51.100.7:40000;transport=tcp",
        30_000,
    );
    mobile.q = Some(0.9);
    mobile.transport = "TCP".into();
    mobile.path = vec![
        "<sip:edge1.example;lr>".into(),
        "<sip:edge2.example;lr;ob>".into(),
    ];
    let mobile_row = b.upsert(&mobile, 6_000).await.unwrap();
    assert_eq!(mobile_row.path, mobile.path);
    assert_eq!(mobile_row.q, Some(0.9));
    let mut low = binding("alice", "sip:alice@203.0.113.5", 30_000);
    low.q = Some(0.1);
    b.upsert(&low, 6_000).await.unwrap();

    // Highest q first; a missing q counts as 1.0.
    let contacts: Vec<_> = b
        .list_for_aor("alice")
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.contact)
        .collect();
    assert_eq!(
        contacts,
        [
            desk.contact.as_str(),
            mobile.contact.as_str(),
            low.contact.as_str()
        ]
    );
    assert_eq!(b.list_all().await.unwrap().len(), 3);
    assert_eq!(b.list_for_aor("bob").await.unwrap(), []);

    assert!(b.remove("alice", &mobile.key()).await.unwrap());
    assert!(!b.remove("alice", &mobile.key()).await.unwrap());
    assert_eq!(b.remove_all("alice").await.unwrap(), 2);
    assert_eq!(b.list_all().await.unwrap(), []);

    // Unknown AOR: foreign key.
    let stray = binding("mallory", "sip:mallory@192.0.2.66", 10_000);
    assert!(matches!(
        b.upsert(&stray, 1).await,
        Err(StoreError::MissingReference { .. })
    ));
    let mut bad_q = desk.clone();
    bad_q.q = Some(1.5);
    assert!(matches!(
        b.upsert(&bad_q, 1).await,
        Err(StoreError::Invalid { field: "q", .. })
    ));

    // Deleting the extension removes its bindings.
    b.upsert(&desk, 1_000).await.unwrap();
    store.extensions().delete("1001").await.unwrap();
    assert_eq!(b.list_all().await.unwrap(), []);
}

async fn bindings_by_instance_and_expiry(store: Store) {
    alice(&store).await;
    let b = store.bindings();
    let instance = "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";

    let mut flow1 = binding("alice", "sip:alice@192.0.2.10:5060;ob", 10_000);
    flow1.instance_id = Some(instance.into());
    flow1.reg_id = Some(1);
    b.upsert(&flow1, 1_000).await.unwrap();
    // Same instance and reg-id from a new address: replaces the binding.
    let mut moved = flow1.clone();
    moved.contact = "sip:alice@192.0.2.99:5060;ob".into();
    let moved_row = b.upsert(&moved, 2_000).await.unwrap();
    assert_eq!(moved_row.first_seen, 1_000);
    assert_eq!(
        moved_row.key(),
        BindingKey::Flow {
            instance_id: instance.into(),
            reg_id: 1
        }
    );
    // A second outbound flow (reg-id 2) is a separate binding.
    let mut flow2 = flow1.clone();
    flow2.reg_id = Some(2);
    flow2.expires_at = 50_000;
    b.upsert(&flow2, 2_000).await.unwrap();
    let rows = b.list_for_aor("alice").await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .any(|r| r.contact == moved.contact && r.reg_id == Some(1))
    );

    // An instance without reg-id is keyed by its contact, as in the registrar.
    let mut gruu_a = binding("alice", "sip:alice@203.0.113.5", 20_000);
    gruu_a.instance_id = Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E129>".into());
    let mut gruu_b = gruu_a.clone();
    gruu_b.contact = "sip:alice@203.0.113.6".into();
    b.upsert(&gruu_a, 2_000).await.unwrap();
    let gruu_b_row = b.upsert(&gruu_b, 2_000).await.unwrap();
    assert_eq!(
        gruu_b_row.key(),
        BindingKey::Contact(gruu_b.contact.clone())
    );

    assert_eq!(b.load_all(10_000).await.unwrap().len(), 3);
    assert_eq!(b.load_all(0).await.unwrap().len(), 4);
    let expired = b.delete_expired(20_000).await.unwrap();
    let mut gone: Vec<_> = expired.iter().map(|b| b.contact.as_str()).collect();
    gone.sort_unstable();
    assert_eq!(
        gone,
        [
            moved.contact.as_str(),
            gruu_a.contact.as_str(),
            gruu_b.contact.as_str()
        ]
    );
    let left = b.list_all().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].reg_id, Some(2));
    assert_eq!(b.delete_expired(20_000).await.unwrap(), []);
}

async fn registration_history(store: Store) {
    let h = store.registration_history();
    let source: SocketAddr = "192.0.2.10:5060".parse().unwrap();
    let events = [
        (1_000, RegistrationEventKind::Registered, "alice"),
        (2_000, RegistrationEventKind::Refreshed, "alice"),
        (2_500, RegistrationEventKind::Registered, "bob"),
        (3_000, RegistrationEventKind::Unregistered, "alice"),
        (4_000, RegistrationEventKind::Expired, "bob"),
    ];
    for (at, kind, aor) in events {
        let id = h
            .append(&NewRegistrationEvent {
                at,
                kind,
                aor: aor.into(),
                contact: Some(format!("sip:{aor}@192.0.2.10")),
                source: (kind != RegistrationEventKind::Expired).then_some(source),
                user_agent: Some("Phone/1.0".into()),
            })
            .await
            .unwrap();
        assert!(id > 0);
    }
    let alice = h.for_aor("alice", 10).await.unwrap();
    let kinds: Vec<_> = alice.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            RegistrationEventKind::Unregistered,
            RegistrationEventKind::Refreshed,
            RegistrationEventKind::Registered
        ]
    );
    assert_eq!(alice[0].source, Some(source));
    assert_eq!(h.for_aor("alice", 1).await.unwrap().len(), 1);

    let recent = h.recent(2).await.unwrap();
    assert_eq!(recent.len(), 2);
    assert_eq!(
        (recent[0].at, recent[0].kind),
        (4_000, RegistrationEventKind::Expired)
    );
    assert_eq!(recent[0].source, None);
    assert_eq!(recent[1].at, 3_000);
    assert_eq!(h.recent(100).await.unwrap().len(), 5);

    assert_eq!(h.prune_before(2_500).await.unwrap(), 2);
    assert_eq!(h.recent(100).await.unwrap().len(), 3);
    assert_eq!(h.for_aor("alice", 10).await.unwrap().len(), 1);
}

async fn bindings_batch_apply(store: Store) {
    alice(&store).await;
    let b = store.bindings();
    let one = binding("alice", "sip:alice@192.0.2.10:5060", 10_000);
    let two = binding("alice", "sip:alice@192.0.2.11:5060", 10_000);
    b.apply(&[one.clone(), two.clone()], &[], 1_000)
        .await
        .unwrap();
    assert_eq!(b.list_for_aor("alice").await.unwrap().len(), 2);
    // A refresh and a removal in one batch.
    let mut refreshed = one.clone();
    refreshed.expires_at = 50_000;
    refreshed.cseq = 2;
    b.apply(&[refreshed], &[("alice".into(), two.key())], 2_000)
        .await
        .unwrap();
    let left = b.list_for_aor("alice").await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        (left[0].expires_at, left[0].first_seen, left[0].last_seen),
        (50_000, 1_000, 2_000)
    );
    // A bad row fails the whole batch and changes nothing.
    let mut bad = two.clone();
    bad.q = Some(7.0);
    assert!(b.apply(&[two.clone(), bad], &[], 3_000).await.is_err());
    let mut stranger = two.clone();
    stranger.aor = "nobody".into();
    assert!(b.apply(&[two, stranger], &[], 3_000).await.is_err());
    assert_eq!(b.list_for_aor("alice").await.unwrap().len(), 1);
}

async fn history_batch_append(store: Store) {
    let h = store.registration_history();
    let event = |at, kind| NewRegistrationEvent {
        at,
        kind,
        aor: "alice".into(),
        contact: Some("sip:alice@192.0.2.10".into()),
        source: Some("192.0.2.10:5060".parse().unwrap()),
        user_agent: None,
    };
    h.append_many(&[]).await.unwrap();
    h.append_many(&[
        event(1, RegistrationEventKind::Registered),
        event(2, RegistrationEventKind::Unregistered),
        event(3, RegistrationEventKind::Registered),
    ])
    .await
    .unwrap();
    let recent = h.for_aor("alice", 10).await.unwrap();
    let kinds: Vec<_> = recent.iter().map(|e| (e.at, e.kind)).collect();
    assert_eq!(
        kinds,
        [
            (3, RegistrationEventKind::Registered),
            (2, RegistrationEventKind::Unregistered),
            (1, RegistrationEventKind::Registered)
        ]
    );
}
