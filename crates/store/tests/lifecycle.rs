//! Opening, reopening and migrating stores; encryption at rest.

mod common;

use common::{PgTestDb, TempSqlite, key};
use store::secret::SecretError;
use store::{Backend, DigestAlgorithm, MasterKey, NewBinding, NewExtension, Store, StoreError};

fn desk_binding() -> NewBinding {
    NewBinding {
        aor: "1001".into(),
        contact: "sip:1001@192.0.2.10:5060".into(),
        expires_at: 3_600_000,
        q: Some(0.5),
        call_id: "reg-1@phone".into(),
        cseq: 7,
        source: "192.0.2.10:5060".parse().unwrap(),
        transport: "UDP".into(),
        user_agent: Some("Phone/1.0".into()),
        instance_id: Some("<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>".into()),
        reg_id: Some(1),
        path: vec!["<sip:edge.example;lr>".into()],
        mac_address: Some("00:11:22:33:44:55".into()),
    }
}

#[tokio::test]
async fn sqlite_file_is_created_and_migrations_are_idempotent() {
    let file = TempSqlite::new();
    assert!(!file.path.exists());
    let store = Store::open(&file.url(), key()).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    store
        .extensions()
        .create(&NewExtension::new("1001", "A"))
        .await
        .unwrap();
    assert!(file.path.exists());
    assert!(file.wal_path().exists(), "WAL journal expected");
    store.close().await;

    // Second open: migrations already applied, data intact.
    let again = Store::open(&file.url(), key()).await.unwrap();
    assert_eq!(again.extensions().list().await.unwrap().len(), 1);
    again.close().await;
}

#[tokio::test]
async fn bindings_and_credentials_survive_reopen() {
    let file = TempSqlite::new();
    let store = Store::open(&file.url(), key()).await.unwrap();
    store
        .extensions()
        .create(&NewExtension::new("1001", "A"))
        .await
        .unwrap();
    store
        .extensions()
        .set_password("1001", "pbx.example", "pw")
        .await
        .unwrap();
    let stored = store
        .bindings()
        .upsert(&desk_binding(), 1_000)
        .await
        .unwrap();
    store.close().await;
    drop(store);

    let reopened = Store::open(&file.url(), key()).await.unwrap();
    assert_eq!(
        reopened.bindings().load_all(2_000).await.unwrap(),
        vec![stored]
    );
    assert!(
        reopened
            .bindings()
            .load_all(3_600_000)
            .await
            .unwrap()
            .is_empty()
    );
    let ha1 = reopened
        .extensions()
        .get_ha1("1001", DigestAlgorithm::Md5)
        .await
        .unwrap();
    assert_eq!(
        ha1,
        Some(store::Ha1::compute(
            DigestAlgorithm::Md5,
            "1001",
            "pbx.example",
            "pw"
        ))
    );
    reopened.close().await;

    // The HA1 is sealed: another key cannot open it.
    let other_key = MasterKey::from_bytes([1u8; 32]);
    let wrong = Store::open(&file.url(), other_key).await.unwrap();
    match wrong
        .extensions()
        .get_ha1("1001", DigestAlgorithm::Sha256)
        .await
    {
        Err(StoreError::Secret(SecretError::Decrypt)) => {}
        other => panic!("expected a decrypt error, got {other:?}"),
    }
    wrong.close().await;

    // Nothing password-like is stored in clear text.
    let bytes = std::fs::read(&file.path).unwrap();
    let md5 = store::Ha1::compute(DigestAlgorithm::Md5, "1001", "pbx.example", "pw");
    let needle = md5.as_hex().as_bytes();
    assert!(!bytes.windows(needle.len()).any(|w| w == needle));
}

#[tokio::test]
async fn in_memory_stores_are_private() {
    let a = Store::open("sqlite::memory:", key()).await.unwrap();
    let b = Store::open("sqlite::memory:", key()).await.unwrap();
    a.extensions()
        .create(&NewExtension::new("1001", "A"))
        .await
        .unwrap();
    assert!(b.extensions().list().await.unwrap().is_empty());
    a.ping().await.unwrap();
    let shown = format!("{a:?}");
    assert_eq!(shown, "Store { backend: Sqlite, .. }");
}

#[tokio::test]
async fn unsupported_url_is_rejected_without_leaking_password() {
    let err = Store::open("mysql://root:hunter2@db/pbx", key())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl(_)), "{err:?}");
    let shown = err.to_string();
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[tokio::test]
async fn postgres_migrations_are_idempotent() {
    let Some(db) = PgTestDb::create().await else {
        return;
    };
    let outcome = tokio::spawn({
        let url = db.url.clone();
        async move {
            let first = Store::open(&url, key()).await.unwrap();
            assert_eq!(first.backend(), Backend::Postgres);
            first
                .extensions()
                .create(&NewExtension::new("1001", "A"))
                .await
                .unwrap();
            first
                .bindings()
                .upsert(&desk_binding(), 1_000)
                .await
                .unwrap();
            first.close().await;
            let second = Store::open(&url, key()).await.unwrap();
            assert_eq!(second.extensions().list().await.unwrap().len(), 1);
            assert_eq!(second.bindings().load_all(2_000).await.unwrap().len(), 1);
            second.close().await;
        }
    })
    .await;
    db.drop_db().await;
    // Dropping twice is tolerated.
    db.drop_db().await;
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

#[test]
fn both_backends_have_the_same_migrations() {
    let names = |backend: &str| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    assert!(!names("sqlite").is_empty());
    assert_eq!(names("sqlite"), names("postgres"));
}
