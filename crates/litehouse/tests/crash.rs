//! Crash safety: a child writing with the Durable profile is killed with SIGKILL at random
//! moments; every write it reported as acknowledged must be in the database afterwards.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::time::Duration;

use litehouse::{Config, Database};
use rand::Rng;

use crate::child;
use crate::util::TestResult;

fn kill_at_random_moments(kills: usize) -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("crash.db");
    let path_text = path.to_str().expect("utf-8 temp path");
    let mut rng = rand::rng();
    let mut acked = BTreeSet::new();
    for _ in 0..kills {
        let mut writer = child::spawn("durable-writer", &[path_text, "8"])?;
        let stdout = writer.stdout.take().expect("piped stdout");
        let reader = std::thread::spawn(move || {
            let mut ids = Vec::new();
            let mut stdout = BufReader::new(stdout);
            let mut line = String::new();
            // Only whole lines count: a line cut off by the kill was never fully reported.
            while stdout.read_line(&mut line).unwrap_or(0) > 0 {
                if let Some(id) = line.strip_suffix('\n').and_then(|l| l.strip_prefix("ACK ")) {
                    ids.push(id.parse::<i64>().expect("id"));
                }
                line.clear();
            }
            ids
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(50..400)));
        writer.kill()?; // SIGKILL on Unix
        writer.wait()?;
        acked.extend(reader.join().expect("reader"));
    }
    assert!(!acked.is_empty(), "the children acknowledged some writes");
    let db = Database::open(&path, Config::default())?;
    assert!(db.blocking_integrity_check()?.is_empty());
    let stored: BTreeSet<i64> = db
        .blocking_query_map("SELECT id FROM acked", (), |r| r.get(0))?
        .into_iter()
        .collect();
    let lost: Vec<_> = acked.difference(&stored).take(10).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {lost:?}",
        acked.len() - stored.len().min(acked.len())
    );
    eprintln!(
        "crash test: {kills} kills, {} acknowledged writes, all present",
        acked.len()
    );
    Ok(())
}

#[test]
fn acknowledged_writes_survive_sigkill() -> TestResult {
    kill_at_random_moments(10)
}

#[test]
#[ignore = "long: 100+ kills; run with --ignored"]
fn acknowledged_writes_survive_many_sigkills() -> TestResult {
    kill_at_random_moments(120)
}
