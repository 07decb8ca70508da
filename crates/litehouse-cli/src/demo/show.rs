//! What the demo prints: the status line and table, the sync log and the transactions.

use std::collections::HashSet;

use console::style;
use litehouse_docs::{Paging, Query, Sort};
use litehouse_sync::{Device, DeviceStatus, SyncState};

use super::COLLECTION;

pub(super) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `n` and the noun in its right number: `1 transaction`, `2 transactions`, `0 retries`.
pub(super) fn counted(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// The sync machine's clock: milliseconds since its driver started.
pub(super) fn machine_now(status: &DeviceStatus) -> u64 {
    unix_ms().saturating_sub(status.started_at_ms)
}

/// `at` (machine time) as "3 s ago", or "never".
pub(super) fn ago(at: Option<u64>, status: &DeviceStatus) -> String {
    match at {
        None => "never".to_owned(),
        Some(at) => format!("{} ago", span(machine_now(status).saturating_sub(at))),
    }
}

pub(super) fn span(ms: u64) -> String {
    match ms / 1000 {
        0 => format!("{ms} ms"),
        s @ 1..=119 => format!("{s} s"),
        s @ 120..=7_199 => format!("{} min", s / 60),
        s => format!("{} h", s / 3_600),
    }
}

pub(super) fn state_label(status: &DeviceStatus) -> String {
    match status.sync.state {
        SyncState::Online => style("● online").green().to_string(),
        SyncState::Offline { paused: true } => style("○ offline (by you)").yellow().to_string(),
        SyncState::Offline { paused: false } => {
            style("○ offline (no network)").yellow().to_string()
        }
        SyncState::Syncing => style("◐ syncing").cyan().to_string(),
        SyncState::BackingOff { until } => style(format!(
            "↻ backing off, retry in {}",
            span(until.saturating_sub(machine_now(status)))
        ))
        .red()
        .to_string(),
        SyncState::Stopped => style("■ stopped").red().to_string(),
    }
}

pub(super) fn status_line(status: &DeviceStatus) -> String {
    let mut line = format!(
        "{} · {} pending · last push {} · last pull {}",
        state_label(status),
        status.sync.pending,
        ago(status.sync.last_push_ok, status),
        ago(status.sync.last_pull_ok, status),
    );
    if status.sync.rejected_total > 0 {
        let rejected = format!(" · {} rejected", status.sync.rejected_total);
        line.push_str(&style(rejected).red().to_string());
    }
    line
}

pub(super) fn print_status(status: &DeviceStatus, server: &str) {
    let sync = &status.sync;
    let row = |name: &str, value: String| println!("  {:<16} {value}", style(name).dim());
    row("state", state_label(status));
    row(
        "device",
        format!("{} (epoch {})", status.device_id, status.epoch),
    );
    row("server", server.to_owned());
    row("pending", sync.pending.to_string());
    row(
        "oldest pending",
        sync.oldest_pending_age.map_or_else(|| "–".to_owned(), span),
    );
    row("last push", ago(sync.last_push_ok, status));
    row("last pull", ago(sync.last_pull_ok, status));
    row(
        "last error",
        sync.last_error
            .as_deref()
            .map_or_else(|| "–".to_owned(), printable),
    );
    row(
        "retries",
        format!(
            "{} in a row, {} since start",
            counted(sync.consecutive_failures.into(), "failure", "failures"),
            counted(sync.total_retries, "retry", "retries")
        ),
    );
    row("rejected", sync.rejected_total.to_string());
    row(
        "pull cursor",
        sync.cursor
            .clone()
            .unwrap_or_else(|| "– (nothing pulled yet)".to_owned()),
    );
}

pub(super) async fn print_log(device: &Device) -> anyhow::Result<()> {
    let entries = device.sync_log(20).await?;
    if entries.is_empty() {
        println!("  the sync log is empty");
    }
    for entry in entries {
        let kind = match entry.kind.as_str() {
            k if k.ends_with("failed") || k == "rejected" => style(k).red(),
            "push" | "pull" => style(entry.kind.as_str()).green(),
            k => style(k).cyan(),
        };
        println!(
            "  {}  {:<12} {}",
            clock(entry.at_ms),
            kind,
            printable(&entry.message)
        );
    }
    Ok(())
}

/// Unix milliseconds as local `HH:MM:SS`.
pub(super) fn clock(at_ms: u64) -> String {
    i64::try_from(at_ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(
            || "--:--:--".to_owned(),
            |t| {
                t.to_zoned(jiff::tz::TimeZone::system())
                    .strftime("%H:%M:%S")
                    .to_string()
            },
        )
}

pub(super) async fn print_transactions(device: &Device) -> anyhow::Result<()> {
    let query = Query {
        filter: None,
        sort: vec![Sort::desc("createdAt")],
        paging: Paging::Page {
            page: 1,
            per_page: 20,
        },
        count: true,
    };
    let page = device.store().find(COLLECTION, &query).await?;
    let pending: HashSet<String> = device
        .outbox(litehouse_docs::MAX_META_SCAN)
        .await?
        .into_iter()
        .map(|entry| entry.doc_id)
        .collect();
    let total = page.total_items.unwrap_or(page.items.len() as u64);
    println!(
        "  {} on this device{}",
        counted(total, "transaction", "transactions"),
        if total > 20 { " (newest 20)" } else { "" }
    );
    if !page.items.is_empty() {
        println!(
            "{}",
            style(format!(
                "  {:<8} {:>12}  {:<30} {:<14} {}",
                "sync", "amount", "description", "device", "id"
            ))
            .dim()
        );
    }
    for doc in &page.items {
        let amount = doc
            .body
            .get("amount")
            .and_then(|a| a.as_f64())
            .unwrap_or(0.0);
        let text = |key: &str| {
            doc.body
                .get(key)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned()
        };
        let sync = if pending.contains(&doc.id) {
            style("pending").yellow()
        } else {
            style("synced").green()
        };
        println!(
            "  {:<8} {:>12.2}  {:<30} {:<14} {}",
            sync,
            amount,
            truncate(&text("description"), 30),
            truncate(&text("device"), 14),
            // The random tail: a UUIDv7's head is its creation time, alike for a burst.
            style(&doc.id[doc.id.len().saturating_sub(8)..]).dim()
        );
    }
    Ok(())
}

/// `text` cut to `width` characters, control characters (a terminal escape sequence another
/// device wrote, say) shown as `�` rather than sent to the terminal.
pub(super) fn truncate(text: &str, width: usize) -> String {
    let shown = printable(text);
    if shown.chars().count() <= width {
        shown
    } else {
        let cut: String = shown.chars().take(width - 1).collect();
        format!("{cut}…")
    }
}

/// `text` with control characters replaced by `�`.
pub(super) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_a_person_would_say_them() {
        assert_eq!(span(250), "250 ms");
        assert_eq!(span(3_400), "3 s");
        assert_eq!(span(180_000), "3 min");
        assert_eq!(span(3 * 3_600_000), "3 h");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(truncate("a\u{1b}]0;x\u{7}b", 10), "a\u{fffd}]0;x\u{fffd}b");
    }

    #[test]
    fn counts_take_the_right_number() {
        assert_eq!(counted(0, "transaction", "transactions"), "0 transactions");
        assert_eq!(counted(1, "transaction", "transactions"), "1 transaction");
        assert_eq!(counted(2, "retry", "retries"), "2 retries");
    }
}
