//! Dialplan rule repository suites, run against SQLite in memory, an SQLite
//! file and PostgreSQL (see `common`).

mod common;

use store::{
    CallPermission, DialplanRuleUpdate, NewDialplanRule, RuleAction, RuleSpec, Store, StoreError,
};

on_all_backends!(
    rules_crud_and_revision,
    positions_stay_dense,
    concurrent_changes_keep_positions_dense,
    bad_input_is_refused
);

fn new_rule(name: &str, pattern: &str, action: RuleAction) -> NewDialplanRule {
    NewDialplanRule {
        spec: RuleSpec::new(name, pattern, action),
        position: None,
        enabled: true,
    }
}

/// (name, position) of every rule, in order.
async fn order(store: &Store) -> Vec<(String, u32)> {
    store
        .dialplan_rules()
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.spec.name, r.position))
        .collect()
}

async fn rules_crud_and_revision(store: Store) {
    let rules = store.dialplan_rules();
    assert_eq!(rules.revision().await.unwrap(), 0);
    assert!(rules.list().await.unwrap().is_empty());

    let mut out = new_rule("international", r"regex:9011(\d+)", RuleAction::Trunk);
    out.spec.class = CallPermission::International;
    out.spec.rewrite = Some("+$1".into());
    out.spec.trunks = vec!["carrier-a".into(), "carrier-b".into()];
    let added = rules.add(&out).await.unwrap();
    assert_eq!(added.position, 1);
    assert_eq!(added.spec, out.spec);
    assert!(added.enabled && added.created_at > 0);
    let after_add = rules.revision().await.unwrap();
    assert!(after_add > 0);
    assert_eq!(rules.get(added.id).await.unwrap(), Some(added.clone()));
    assert_eq!(rules.get(added.id + 1000).await.unwrap(), None);

    let mut reject = new_rule("premium", "_1900.", RuleAction::Reject);
    reject.spec.status = Some(603);
    reject.enabled = false;
    let premium = rules.add(&reject).await.unwrap();
    assert_eq!((premium.position, premium.enabled), (2, false));
    assert_eq!(premium.spec.status, Some(603));

    // A partial update keeps the other fields; the revision moves.
    let before = rules.revision().await.unwrap();
    let updated = rules
        .update(
            added.id,
            &DialplanRuleUpdate {
                strip: Some(4),
                prepend: Some("00".into()),
                rewrite: Some(None),
                trunks: Some(vec!["carrier-b".into()]),
                enabled: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.spec.strip, 4);
    assert_eq!(updated.spec.prepend, "00");
    assert_eq!(updated.spec.rewrite, None);
    assert_eq!(updated.spec.trunks, ["carrier-b"]);
    assert_eq!(updated.spec.class, CallPermission::International);
    assert!(!updated.enabled);
    assert!(rules.revision().await.unwrap() > before);

    // Turning a reject rule into an extension rule must drop its status.
    let e = rules
        .update(
            premium.id,
            &DialplanRuleUpdate {
                action: Some(RuleAction::Extension),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Invalid {
                field: "status",
                ..
            }
        ),
        "{e}"
    );
    let changed = rules
        .update(
            premium.id,
            &DialplanRuleUpdate {
                action: Some(RuleAction::Extension),
                status: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.spec.action, RuleAction::Extension);

    let before = rules.revision().await.unwrap();
    let removed = rules.remove(added.id).await.unwrap();
    assert_eq!(removed.id, added.id);
    assert!(rules.revision().await.unwrap() > before);
    assert_eq!(order(&store).await, [("premium".to_string(), 1)]);
    assert!(matches!(
        rules.remove(added.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        rules.update(added.id, &DialplanRuleUpdate::default()).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        rules.move_to(added.id, 1).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn positions_stay_dense(store: Store) {
    let rules = store.dialplan_rules();
    let mut ids = Vec::new();
    for name in ["a", "b", "c", "d"] {
        ids.push(
            rules
                .add(&new_rule(name, "100", RuleAction::Extension))
                .await
                .unwrap()
                .id,
        );
    }
    let names = |v: Vec<(String, u32)>| {
        assert!(
            v.iter().enumerate().all(|(i, (_, p))| *p as usize == i + 1),
            "positions not dense: {v:?}"
        );
        v.into_iter().map(|(n, _)| n).collect::<Vec<_>>().join("")
    };
    assert_eq!(names(order(&store).await), "abcd");
    // Insert at a position: the rest shift down.
    let mut first = new_rule("x", "200", RuleAction::Extension);
    first.position = Some(1);
    let x = rules.add(&first).await.unwrap();
    assert_eq!(names(order(&store).await), "xabcd");
    // Past the end appends.
    let mut far = new_rule("y", "300", RuleAction::Extension);
    far.position = Some(99);
    assert_eq!(rules.add(&far).await.unwrap().position, 6);
    assert_eq!(names(order(&store).await), "xabcdy");
    // Moves both ways, and past the end.
    assert_eq!(rules.move_to(x.id, 4).await.unwrap().position, 4);
    assert_eq!(names(order(&store).await), "abcxdy");
    rules.move_to(ids[3], 1).await.unwrap();
    assert_eq!(names(order(&store).await), "dabcxy");
    assert_eq!(rules.move_to(ids[0], 50).await.unwrap().position, 6);
    assert_eq!(names(order(&store).await), "dbcxya");
    rules.move_to(ids[1], 2).await.unwrap();
    assert_eq!(names(order(&store).await), "dbcxya");
    // Removing closes the gap.
    rules.remove(ids[2]).await.unwrap();
    assert_eq!(names(order(&store).await), "dbxya");
    assert!(matches!(
        rules.move_to(x.id, 0).await,
        Err(StoreError::Invalid {
            field: "position",
            ..
        })
    ));
}

async fn concurrent_changes_keep_positions_dense(store: Store) {
    // Every change takes the dialplan's write lock first, so adds racing
    // on several connections still get distinct positions.
    let adds: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut rule = new_rule(&format!("r{i}"), "100", RuleAction::Extension);
                rule.position = (i % 2 == 0).then_some(1);
                store.dialplan_rules().add(&rule).await.unwrap().id
            })
        })
        .collect();
    let mut ids = Vec::new();
    for add in adds {
        ids.push(add.await.unwrap());
    }
    let positions: Vec<u32> = order(&store).await.into_iter().map(|(_, p)| p).collect();
    assert_eq!(positions, (1..=8).collect::<Vec<_>>());
    assert_eq!(store.dialplan_rules().revision().await.unwrap(), 8);
    let moves: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .dialplan_rules()
                    .move_to(id, (i as u32 * 3) % 8 + 1)
                    .await
                    .unwrap();
            })
        })
        .collect();
    for m in moves {
        m.await.unwrap();
    }
    let positions: Vec<u32> = order(&store).await.into_iter().map(|(_, p)| p).collect();
    assert_eq!(positions, (1..=8).collect::<Vec<_>>());
}

async fn bad_input_is_refused(store: Store) {
    let rules = store.dialplan_rules();
    let field_of = |r: store::Result<store::DialplanRule>| match r {
        Err(StoreError::Invalid { field, reason }) => {
            assert!(!reason.is_empty());
            field
        }
        other => panic!("expected a validation error, got {other:?}"),
    };
    let with = |f: &dyn Fn(&mut NewDialplanRule)| {
        let mut r = new_rule("r", "_9X.", RuleAction::Extension);
        f(&mut r);
        r
    };
    let cases: Vec<(NewDialplanRule, &str)> = vec![
        (with(&|r| r.spec.pattern = "_9Q".into()), "pattern"),
        (with(&|r| r.spec.pattern = "regex:(".into()), "pattern"),
        (with(&|r| r.spec.pattern = String::new()), "pattern"),
        (with(&|r| r.spec.name = " ".into()), "name"),
        (with(&|r| r.spec.name = "a\nb".into()), "name"),
        (with(&|r| r.spec.prepend = "+1a".into()), "prepend"),
        (with(&|r| r.spec.strip = 99), "strip"),
        (with(&|r| r.spec.rewrite = Some("x$1".into())), "rewrite"),
        (with(&|r| r.spec.action = RuleAction::Trunk), "trunks"),
        (with(&|r| r.spec.trunks = vec!["a".into()]), "trunks"),
        (
            with(&|r| {
                r.spec.action = RuleAction::Reject;
                r.spec.status = Some(200);
            }),
            "status",
        ),
        (with(&|r| r.spec.status = Some(403)), "status"),
        (with(&|r| r.position = Some(0)), "position"),
    ];
    for (rule, field) in cases {
        assert_eq!(field_of(rules.add(&rule).await), field, "{rule:?}");
    }
    // Nothing was written, and the revision did not move.
    assert!(rules.list().await.unwrap().is_empty());
    assert_eq!(rules.revision().await.unwrap(), 0);

    let ok = rules
        .add(&new_rule("ok", "_9X.", RuleAction::Extension))
        .await
        .unwrap();
    let bad = DialplanRuleUpdate {
        pattern: Some("_[5-2]".into()),
        ..Default::default()
    };
    assert_eq!(field_of(rules.update(ok.id, &bad).await), "pattern");
    assert_eq!(
        rules.get(ok.id).await.unwrap().unwrap().spec.pattern,
        "_9X."
    );
}
