//! `litehouse logs --db FILE`: reads a log database (written by `litehouse::LogDatabase`) and
//! prints its entries the way a person wants to read them: oldest of the selection first,
//! one line each, with the time in UTC.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use litehouse::{Database, LogEntry, LogLevel, LogOrder, LogQuery};

/// How often `--follow` looks for new entries.
const FOLLOW_POLL: Duration = Duration::from_millis(500);

/// Print the entries of a log database.
#[derive(clap::Args, Debug)]
pub(crate) struct LogsArgs {
    /// The log database file.
    #[arg(long, value_name = "FILE")]
    pub(crate) db: PathBuf,
    /// Only entries at least this severe: error, warn, info, debug or trace.
    #[arg(long)]
    pub(crate) level: Option<LogLevel>,
    /// Only entries from the last DURATION: a number with s, m, h or d (30s, 10m, 2h, 1d).
    #[arg(long, value_name = "DURATION", value_parser = parse_age)]
    pub(crate) since: Option<Duration>,
    /// Only entries whose message or fields contain TEXT (ASCII case ignored).
    #[arg(long, value_name = "TEXT")]
    pub(crate) grep: Option<String>,
    /// Only entries whose target starts with PREFIX (e.g. myapp::jobs).
    #[arg(long, value_name = "PREFIX")]
    pub(crate) target: Option<String>,
    /// Keep running and print new entries as they are written.
    #[arg(long)]
    pub(crate) follow: bool,
    /// Print at most this many entries (the newest ones).
    #[arg(long, default_value_t = 100)]
    pub(crate) limit: usize,
}

pub(crate) fn run(args: LogsArgs) -> anyhow::Result<()> {
    let LogsArgs {
        db: file,
        level,
        since,
        grep,
        target,
        follow,
        limit,
    } = args;
    let db = crate::open_existing(&file)?;
    let since = since.map(|age| {
        SystemTime::now()
            .checked_sub(age)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    });
    let mut query = LogQuery {
        min_level: level,
        target_prefix: target,
        since,
        until: None,
        contains: grep,
        after_id: None,
        order: LogOrder::NewestFirst,
        limit,
    };
    let mut entries = db.blocking_query_logs(&query).with_context(|| {
        format!(
            "could not read logs from {} (is it a log database?)",
            file.display()
        )
    })?;
    // Fetched newest first to apply the limit; printed oldest first, like a log file.
    entries.reverse();
    let mut out = std::io::stdout().lock();
    for entry in &entries {
        writeln!(out, "{}", format_entry(entry))?;
    }
    out.flush()?;
    if !follow {
        if entries.is_empty() {
            eprintln!("no log entries match");
        }
        return Ok(());
    }
    let mut last_id = match entries.last() {
        Some(entry) => entry.id,
        // Nothing matched yet: start after the newest entry of any kind.
        None => newest_id(&db)?,
    };
    query.order = LogOrder::OldestFirst;
    query.limit = 1000;
    loop {
        query.after_id = Some(last_id);
        let entries = db.blocking_query_logs(&query)?;
        for entry in &entries {
            writeln!(out, "{}", format_entry(entry))?;
        }
        out.flush()?;
        match entries.last() {
            Some(entry) => last_id = entry.id,
            None => std::thread::sleep(FOLLOW_POLL),
        }
    }
}

fn newest_id(db: &Database) -> anyhow::Result<i64> {
    Ok(
        db.blocking_query_row("SELECT coalesce(max(id), 0) FROM logs", (), |row| {
            row.get(0)
        })?,
    )
}

/// Parses `30s`, `10m`, `2h`, `1d` (a whole number and a unit).
fn parse_age(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| {
        format!("{text:?} is not a duration: use a number and s, m, h or d, like 10m")
    })?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}: use s, m, h or d"
            ));
        }
    };
    Ok(Duration::from_secs(number.saturating_mul(seconds)))
}

/// `2026-05-01 12:00:03.250Z  WARN app::jobs: message key=value (in request > db)`
fn format_entry(entry: &LogEntry) -> String {
    let mut line = format!(
        "{} {:>5} {}: {}",
        format_time(entry.unix_micros),
        entry.level.as_str(),
        entry.target,
        entry.message
    );
    for (name, value) in &entry.fields {
        // Strings print bare when they are one plain word, quoted otherwise.
        let value = match value {
            serde_json::Value::String(text)
                if !text.is_empty() && !text.contains(|c: char| c.is_whitespace() || c == '"') =>
            {
                text.clone()
            }
            other => other.to_string(),
        };
        line.push_str(&format!(" {name}={value}"));
    }
    if !entry.spans.is_empty() {
        line.push_str(&format!(" (in {})", entry.spans.join(" > ")));
    }
    line
}

/// Microseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS.mmmZ` (UTC); a value outside
/// the calendar's range (a corrupt row) prints as the raw number.
fn format_time(unix_micros: i64) -> String {
    jiff::Timestamp::from_microsecond(unix_micros).map_or_else(
        |_| format!("{unix_micros}µs"),
        |time| time.strftime("%Y-%m-%d %H:%M:%S%.3fZ").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(parse_age("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_age("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_age("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_age("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_age("10").is_err());
        assert!(parse_age("m").is_err());
        assert!(parse_age("5w").is_err());
    }

    #[test]
    fn times() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00.000Z");
        assert_eq!(
            format_time(951_782_400_000_000 + 1_500),
            "2000-02-29 00:00:00.001Z"
        );
        assert_eq!(
            format_time(1_767_225_599_999_999),
            "2025-12-31 23:59:59.999Z"
        );
        assert_eq!(format_time(-1_000_000), "1969-12-31 23:59:59.000Z");
    }

    #[test]
    fn entries_read_like_a_log_line() {
        let entry = LogEntry {
            id: 1,
            unix_micros: 0,
            level: LogLevel::Warn,
            target: "app::jobs".into(),
            message: "slow job".into(),
            fields: serde_json::json!({"job": 7, "who": "bob", "note": "two words"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            spans: vec!["request".into(), "db".into()],
        };
        assert_eq!(
            format_entry(&entry),
            "1970-01-01 00:00:00.000Z  WARN app::jobs: slow job job=7 note=\"two words\" who=bob (in request > db)"
        );
    }
}
