//! The store's test suite, run once against SQLite (a file in a temp dir) and
//! once against PostgreSQL (a fresh database per test on the server that
//! `CHORUS_TEST_POSTGRES_URL` names; `scripts/test.sh` starts one).

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error, which is what it should do

mod suite;

use chorus_store::{SqlStore, StoreConfig};

/// A store under test and what keeps its database alive.
pub(crate) struct TestDb {
    pub(crate) config: StoreConfig,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub(crate) async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = StoreConfig::sqlite_file(&dir.path().join("chorus.db"));
        Self { config, _dir: Some(dir) }
    }

    /// A new, empty database on the test PostgreSQL server, or `None` (with a
    /// note) when none is configured outside CI. Under CI a missing server fails.
    pub(crate) async fn postgres() -> Option<Self> {
        let Ok(admin_url) = std::env::var("CHORUS_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CHORUS_TEST_POSTGRES_URL is not set; run the tests through scripts/test.sh"
            );
            eprintln!("skipped: CHORUS_TEST_POSTGRES_URL is not set (scripts/test.sh starts a PostgreSQL server)");
            return None;
        };
        use sqlx::Connection;
        let name = format!("chorus_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.expect("connect to the test PostgreSQL server");
        sqlx::Executor::execute(&mut admin, sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create a test database");
        let (base, _) = admin_url.rsplit_once('/').expect("a database URL with a path");
        Some(Self { config: StoreConfig::new(format!("{base}/{name}")), _dir: None })
    }

    pub(crate) async fn open(&self) -> SqlStore {
        SqlStore::open(&self.config).await.expect("open the store")
    }
}

/// Runs one test of `suite` against both databases.
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = crate::TestDb::sqlite().await;
                    crate::suite::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(db) = crate::TestDb::postgres().await else { return };
                    crate::suite::$name(&db).await;
                }
            )*
        }
    };
}

both!(
    session_lifecycle,
    messages_in_order_with_usage_and_tool_calls,
    unknown_session_is_not_found,
    concurrent_appends_get_distinct_seqs,
    clear_keeps_numbering,
    delete_removes_messages_keeps_events,
    events_resume_after_an_id,
    writes_survive_reopen,
    character_state_vitals_history_and_memories,
    snapshots_and_restore_replace_the_transcript,
);

#[tokio::test]
async fn unsupported_url_is_refused() {
    let err = SqlStore::open(&StoreConfig::new("mysql://localhost/x")).await.expect_err("mysql is not supported");
    assert!(err.to_string().contains("unsupported database URL"), "{err}");
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode() {
    use chorus_engine::store::{NewSession, Store};
    let db = TestDb::sqlite().await;
    let store = db.open().await;
    store.create_session(NewSession::default()).await.unwrap();
    let path = db.config.url.trim_start_matches("sqlite://").trim_end_matches("?mode=rwc");
    assert!(std::path::Path::new(&format!("{path}-wal")).exists(), "a write-ahead log next to {path}");
}
