//! Extension, audit and CDR repository suites, written once and run against
//! SQLite in memory, an SQLite file and PostgreSQL (see `common`).

mod common;

use serde_json::json;
use store::{
    AuditEvent, AuditOutcome, AuditQuery, CallPermission, DigestAlgorithm, Disposition,
    ExtensionUpdate, Ha1, HangupCause, NewAuditEntry, NewCallRecord, NewExtension, RtcpQuality,
    Store, StoreError,
};

on_all_backends!(
    extensions_crud,
    extension_conflicts_and_validation,
    credentials,
    security_audit,
    call_records,
);

async fn extensions_crud(store: Store) {
    let ext = store.extensions();
    let mut new = NewExtension::new("1001", "Alice");
    new.sip_username = "alice".into();
    new.email = Some("alice@example.org".into());
    let alice = ext.create(&new).await.unwrap();
    assert_eq!(alice.number, "1001");
    assert_eq!(alice.sip_username, "alice");
    assert_eq!(alice.permission, CallPermission::Internal);
    assert!(alice.enabled && !alice.has_password && !alice.has_voicemail_pin);
    assert!(alice.created_at > 0 && alice.created_at == alice.updated_at);

    ext.create(&NewExtension::new("1000", "Bob")).await.unwrap();
    assert_eq!(
        ext.get_by_number("1001").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        ext.get_by_username("alice").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(ext.get_by_username("1001").await.unwrap(), None);
    let numbers: Vec<_> = ext
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.number)
        .collect();
    assert_eq!(numbers, ["1000", "1001"]);

    // Partial update: untouched fields keep their values.
    let renamed = ext
        .update(
            "1001",
            &ExtensionUpdate {
                display_name: Some("Alice Liddell".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.display_name, "Alice Liddell");
    assert_eq!(renamed.email.as_deref(), Some("alice@example.org"));
    assert_eq!(renamed.max_concurrent_calls, 2);

    let changed = ext
        .update(
            "1001",
            &ExtensionUpdate {
                number: Some("2001".into()),
                email: Some(None),
                permission: Some(CallPermission::International),
                max_concurrent_calls: Some(5),
                enabled: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.number, "2001");
    assert_eq!(changed.display_name, "Alice Liddell");
    assert_eq!(changed.email, None);
    assert_eq!(changed.permission, CallPermission::International);
    assert_eq!(changed.max_concurrent_calls, 5);
    assert!(!changed.enabled);
    assert!(changed.updated_at >= alice.updated_at);
    assert_eq!(ext.get_by_number("1001").await.unwrap(), None);

    ext.delete("2001").await.unwrap();
    assert_eq!(ext.get_by_username("alice").await.unwrap(), None);
    assert!(matches!(
        ext.delete("2001").await,
        Err(StoreError::NotFound {
            what: "extension",
            ..
        })
    ));
    assert!(matches!(
        ext.update("2001", &ExtensionUpdate::default()).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn extension_conflicts_and_validation(store: Store) {
    let ext = store.extensions();
    let mut alice = NewExtension::new("1001", "Alice");
    alice.sip_username = "alice".into();
    ext.create(&alice).await.unwrap();

    let mut same_number = NewExtension::new("1001", "Other");
    same_number.sip_username = "other".into();
    match ext.create(&same_number).await {
        Err(StoreError::Conflict { what }) => assert_eq!(what, "extensions.number"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    let mut same_user = NewExtension::new("1002", "Other");
    same_user.sip_username = "alice".into();
    match ext.create(&same_user).await {
        Err(StoreError::Conflict { what }) => assert_eq!(what, "extensions.sip_username"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    ext.create(&NewExtension::new("1002", "Carol"))
        .await
        .unwrap();
    let clash = ExtensionUpdate {
        number: Some("1001".into()),
        ..Default::default()
    };
    assert!(matches!(
        ext.update("1002", &clash).await,
        Err(StoreError::Conflict { .. })
    ));

    for bad in ["1", "1234567890123456", "12a4", "", "+4912"] {
        let err = ext.create(&NewExtension::new(bad, "x")).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Invalid {
                    field: "number",
                    ..
                }
            ),
            "{bad}: {err:?}"
        );
    }
    ext.create(&NewExtension::new("123456789012345", "Longest"))
        .await
        .unwrap();
    assert_eq!(ext.list().await.unwrap().len(), 3);
}

async fn credentials(store: Store) {
    let ext = store.extensions();
    let mut alice = NewExtension::new("1001", "Alice");
    alice.sip_username = "alice".into();
    ext.create(&alice).await.unwrap();

    assert_eq!(
        ext.get_ha1("alice", DigestAlgorithm::Md5).await.unwrap(),
        None
    );
    ext.set_password("alice", "pbx.example", "s3cret!")
        .await
        .unwrap();
    assert!(
        ext.get_by_username("alice")
            .await
            .unwrap()
            .unwrap()
            .has_password
    );
    for alg in [DigestAlgorithm::Md5, DigestAlgorithm::Sha256] {
        let ha1 = ext.get_ha1("alice", alg).await.unwrap().unwrap();
        assert_eq!(ha1, Ha1::compute(alg, "alice", "pbx.example", "s3cret!"));
    }
    // The bulk view the SIP core loads: only extensions with a password.
    let before = ext.fingerprint().await.unwrap();
    let mut bob = NewExtension::new("1002", "Bob");
    bob.sip_username = "bob".into();
    ext.create(&bob).await.unwrap();
    assert_ne!(ext.fingerprint().await.unwrap(), before);
    let all = ext.credentials().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0, "alice");
    assert_eq!(
        all[0].1,
        Ha1::compute(DigestAlgorithm::Md5, "alice", "pbx.example", "s3cret!")
    );
    assert_eq!(
        all[0].2,
        Ha1::compute(DigestAlgorithm::Sha256, "alice", "pbx.example", "s3cret!")
    );
    assert_eq!(
        ext.get_ha1("alice", DigestAlgorithm::Md5)
            .await
            .unwrap()
            .unwrap()
            .as_hex()
            .len(),
        32
    );
    assert_eq!(
        ext.get_ha1("nobody", DigestAlgorithm::Md5).await.unwrap(),
        None
    );
    assert!(matches!(
        ext.set_password("nobody", "pbx.example", "x").await,
        Err(StoreError::NotFound { .. })
    ));

    // A disabled extension has no usable credentials.
    let disable = ExtensionUpdate {
        enabled: Some(false),
        ..Default::default()
    };
    ext.update("1001", &disable).await.unwrap();
    assert_eq!(
        ext.get_ha1("alice", DigestAlgorithm::Sha256).await.unwrap(),
        None
    );
    assert!(ext.credentials().await.unwrap().is_empty());

    assert!(!ext.verify_voicemail_pin("1001", "1234").await.unwrap());
    ext.set_voicemail_pin("1001", "1234").await.unwrap();
    assert!(
        ext.get_by_number("1001")
            .await
            .unwrap()
            .unwrap()
            .has_voicemail_pin
    );
    assert!(ext.verify_voicemail_pin("1001", "1234").await.unwrap());
    assert!(!ext.verify_voicemail_pin("1001", "4321").await.unwrap());
    assert!(!ext.verify_voicemail_pin("9999", "1234").await.unwrap());
}

async fn security_audit(store: Store) {
    let audit = store.audit();
    let attacker = "203.0.113.66".parse().unwrap();
    let admin_ip = "2001:db8::5".parse().unwrap();
    let entry = |at, event, username: Option<&str>, ip, outcome| NewAuditEntry {
        at,
        event,
        username: username.map(str::to_owned),
        source_ip: Some(ip),
        outcome,
        details: json!({ "at": at, "realm": "pbx.example" }),
    };
    // One alone, two in a batch (the server's writer batches).
    audit
        .append(&entry(
            1_000,
            AuditEvent::AuthFailure,
            Some("1001"),
            attacker,
            AuditOutcome::Failure,
        ))
        .await
        .unwrap();
    let batch: Vec<_> = [2_000, 3_000]
        .into_iter()
        .map(|at| {
            entry(
                at,
                AuditEvent::AuthFailure,
                Some("1001"),
                attacker,
                AuditOutcome::Failure,
            )
        })
        .collect();
    audit.append_many(&batch).await.unwrap();
    audit.append_many(&[]).await.unwrap();
    audit
        .append(&entry(
            3_500,
            AuditEvent::Lockout,
            None,
            attacker,
            AuditOutcome::Denied,
        ))
        .await
        .unwrap();
    audit
        .append(&entry(
            4_000,
            AuditEvent::AdminAction,
            Some("admin"),
            admin_ip,
            AuditOutcome::Success,
        ))
        .await
        .unwrap();
    audit
        .append(&NewAuditEntry {
            at: 5_000,
            event: AuditEvent::Other("config_reload".into()),
            username: None,
            source_ip: None,
            outcome: AuditOutcome::Success,
            details: json!({}),
        })
        .await
        .unwrap();

    let all = audit.query(&AuditQuery::default()).await.unwrap();
    assert_eq!(all.len(), 6);
    assert_eq!(all[0].event, AuditEvent::Other("config_reload".into()));
    assert_eq!(all[0].source_ip, None);
    assert_eq!(
        all[1].details,
        json!({ "at": 4000, "realm": "pbx.example" })
    );

    let failures = audit
        .query(&AuditQuery {
            event: Some(AuditEvent::AuthFailure),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(failures.len(), 3);
    assert!(
        failures
            .iter()
            .all(|e| e.username.as_deref() == Some("1001"))
    );

    let from_attacker = audit
        .query(&AuditQuery {
            source_ip: Some(attacker),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(from_attacker.len(), 4);
    assert_eq!(from_attacker[0].event, AuditEvent::Lockout);

    let window = audit
        .query(&AuditQuery {
            from_ms: Some(2_000),
            until_ms: Some(4_000),
            ..Default::default()
        })
        .await
        .unwrap();
    let times: Vec<_> = window.iter().map(|e| e.at).collect();
    assert_eq!(times, [3_500, 3_000, 2_000]);

    let by_user_limited = audit
        .query(&AuditQuery {
            username: Some("1001".into()),
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_user_limited.len(), 2);
    assert_eq!(by_user_limited[0].at, 3_000);

    assert_eq!(audit.prune_before(3_500).await.unwrap(), 3);
    assert_eq!(audit.query(&AuditQuery::default()).await.unwrap().len(), 3);
}

fn leg(call_id: &str, leg_id: &str, caller: &str, callee: &str, start: i64) -> NewCallRecord {
    NewCallRecord {
        call_id: call_id.into(),
        leg_id: leg_id.into(),
        linked_id: None,
        caller: caller.into(),
        callee: callee.into(),
        trunk: None,
        start_at: start,
        answer_at: None,
        end_at: start + 20_000,
        disposition: Disposition::NoAnswer,
        hangup_cause: Some(HangupCause {
            code: 480,
            reason: "Temporarily Unavailable".into(),
        }),
        codec: None,
        quality: None,
    }
}

async fn call_records(store: Store) {
    let cdr = store.call_records();
    let mut answered = leg("c1@pbx", "a", "1001", "+4930123456", 10_000);
    answered.trunk = Some("carrier-1".into());
    answered.answer_at = Some(15_000);
    answered.end_at = 75_000;
    answered.disposition = Disposition::Answered;
    answered.hangup_cause = Some(HangupCause {
        code: 200,
        reason: "BYE".into(),
    });
    answered.codec = Some("PCMA".into());
    answered.quality = Some(RtcpQuality {
        loss_pct: 0.5,
        jitter_ms: 12.25,
        rtt_ms: Some(40.0),
    });
    let row = cdr.insert(&answered).await.unwrap();
    assert_eq!((row.duration_ms, row.billsec_ms), (65_000, 60_000));
    assert_eq!(row.quality, answered.quality);
    assert_eq!(row.hangup_cause, answered.hangup_cause);
    assert_eq!(row.trunk.as_deref(), Some("carrier-1"));

    let mut b_leg = leg("c1@pbx", "b", "1001", "1002", 11_000);
    b_leg.linked_id = Some("a".into());
    b_leg.disposition = Disposition::Cancelled;
    b_leg.hangup_cause = None;
    let b_row = cdr.insert(&b_leg).await.unwrap();
    assert_eq!((b_row.duration_ms, b_row.billsec_ms), (20_000, 0));
    assert_eq!(b_row.hangup_cause, None);
    assert_eq!(b_row.quality, None);
    cdr.insert(&leg("c2@pbx", "a", "1002", "1003", 50_000))
        .await
        .unwrap();
    let mut busy = leg("c3@pbx", "a", "1003", "1001", 90_000);
    busy.disposition = Disposition::Busy;
    cdr.insert(&busy).await.unwrap();

    assert!(matches!(
        cdr.insert(&answered).await,
        Err(StoreError::Conflict { .. })
    ));
    let mut backwards = leg("c4@pbx", "a", "1", "2", 10_000);
    backwards.answer_at = Some(5_000);
    assert!(matches!(
        cdr.insert(&backwards).await,
        Err(StoreError::Invalid { .. })
    ));

    let recent: Vec<_> = cdr
        .recent(3)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.start_at)
        .collect();
    assert_eq!(recent, [90_000, 50_000, 11_000]);
    let for_1001: Vec<_> = cdr
        .for_extension("1001", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.call_id, r.leg_id, r.disposition))
        .collect();
    assert_eq!(
        for_1001,
        [
            ("c3@pbx".into(), "a".into(), Disposition::Busy),
            ("c1@pbx".into(), "b".into(), Disposition::Cancelled),
            ("c1@pbx".into(), "a".into(), Disposition::Answered),
        ]
    );
    let range: Vec<_> = cdr
        .in_range(10_000, 50_001, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.start_at)
        .collect();
    assert_eq!(range, [10_000, 11_000, 50_000]);
    assert_eq!(cdr.in_range(10_000, 50_001, 1).await.unwrap().len(), 1);

    // A batch is stored whole, or not at all when one row is refused.
    let batch = [
        leg("c5@pbx", "a", "1004", "1005", 200_000),
        leg("c5@pbx", "b", "1004", "1005", 200_001),
    ];
    cdr.insert_many(&batch).await.unwrap();
    assert_eq!(cdr.for_extension("1004", 10).await.unwrap().len(), 2);
    let clash = [
        leg("c6@pbx", "a", "1006", "1007", 300_000),
        batch[0].clone(),
    ];
    assert!(cdr.insert_many(&clash).await.is_err());
    assert!(cdr.for_extension("1006", 10).await.unwrap().is_empty());
}
