//! The interactive menu: one line of input per choice, on the main thread, driving the
//! device with `block_on`.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use console::style;
use litehouse_sync::{Device, SyncState};
use tokio::runtime::Runtime;

use super::show::{
    ago, counted, print_log, print_status, print_transactions, printable, status_line,
};
use super::{DEMO_DEVICE, Demo, OTHER_DEVICE, Synced, record_transaction, sync_now};

pub(super) fn menu(
    runtime: &Runtime,
    demo: &mut Demo,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock().lines();
    println!(
        "{} — offline-first sync on a local SQLite file",
        style("litehouse demo").bold()
    );
    println!("  device file  {}", demo.file.display());
    println!("  server       {}", demo.server_url);
    if let Some(local) = &demo.local {
        println!("  dashboard    {}", local.dashboard);
        println!("  files in     {}", local.dir.display());
    }
    loop {
        let status = runtime.block_on(demo.device.status())?;
        println!();
        println!("{}", status_line(&status));
        let paused = matches!(status.sync.state, SyncState::Offline { paused: true });
        let mut choices = vec![
            ("1", "record"),
            ("2", if paused { "go online" } else { "go offline" }),
            ("3", "force sync"),
            ("4", "status"),
            ("5", "sync log"),
            ("6", "transactions"),
        ];
        if demo.local.is_some() {
            choices.push(("7", "other device records"));
        }
        choices.push(("q", "quit"));
        let line: Vec<String> = choices
            .iter()
            .map(|(key, what)| format!("{} {what}", style(format!("[{key}]")).bold()))
            .collect();
        println!("{}", line.join("  "));
        let Some(choice) = ask(&mut input, "choose")? else {
            break;
        };
        let result = match choice.as_str() {
            "1" => record(runtime, demo, &mut input),
            "2" if paused => runtime
                .block_on(demo.device.resume())
                .map(|()| println!("{} syncing in the background", style("online:").green()))
                .map_err(Into::into),
            "2" => runtime
                .block_on(demo.device.pause())
                .map(|()| {
                    println!(
                        "{} transactions are kept locally and sent when you go online",
                        style("offline:").yellow()
                    );
                })
                .map_err(Into::into),
            "3" => force_sync(runtime, &demo.device, timeout),
            "4" => runtime
                .block_on(demo.device.status())
                .map(|status| print_status(&status, &demo.server_url))
                .map_err(Into::into),
            "5" => runtime.block_on(print_log(&demo.device)),
            "6" => runtime.block_on(print_transactions(&demo.device)),
            "7" if demo.local.is_some() => other_records(runtime, demo, timeout),
            "q" | "Q" | "quit" | "exit" => break,
            "" => Ok(()),
            other => {
                println!("{} is not a choice", style(format!("{other:?}")).red());
                Ok(())
            }
        };
        if let Err(err) = result {
            println!("{} {err:#}", style("error:").red().bold());
        }
    }
    let pending = runtime.block_on(demo.device.status())?.sync.pending;
    let pending = u64::try_from(pending).unwrap_or(u64::MAX);
    let (what, go, stay) = (
        counted(pending, "pending transaction", "pending transactions"),
        if pending == 1 { "goes" } else { "go" },
        if pending == 1 { "stays" } else { "stay" },
    );
    if pending > 0 && demo.temp.is_some() {
        println!(
            "stopping: {what} {go} with the temporary directory \
             (--dir DIR keeps the device and its server between runs)"
        );
    } else if pending > 0 {
        println!(
            "stopping: {what} {stay} in {} and {go} out on the next run",
            demo.file.display()
        );
    } else {
        println!("stopping: nothing pending");
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints `question`, reads one line; `None` at the end of input.
fn ask(
    input: &mut impl Iterator<Item = std::io::Result<String>>,
    question: &str,
) -> anyhow::Result<Option<String>> {
    print!("{} ", style(format!("{question}>")).cyan().bold());
    std::io::stdout().flush()?;
    match input.next() {
        Some(line) => Ok(Some(line?.trim().to_owned())),
        None => Ok(None),
    }
}

fn record(
    runtime: &Runtime,
    demo: &Demo,
    input: &mut impl Iterator<Item = std::io::Result<String>>,
) -> anyhow::Result<()> {
    let amount = loop {
        let Some(line) = ask(input, "amount")? else {
            return Ok(());
        };
        match parse_amount(&line) {
            Ok(amount) => break amount,
            Err(why) => println!("{} {why}", style("not an amount:").red()),
        }
    };
    let description = ask(input, "description")?.unwrap_or_default();
    let doc = runtime.block_on(record_transaction(&demo.device, amount, &description))?;
    let status = runtime.block_on(demo.device.status())?;
    println!(
        "{} {} ({} pending)",
        style("saved locally:").green(),
        doc,
        status.sync.pending
    );
    Ok(())
}

/// An amount in the seed's `DECIMAL(10,2)`: a finite number below 10^8, rounded to cents.
fn parse_amount(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: type a number such as 12.50"))?;
    if !value.is_finite() || value.abs() >= 1e8 {
        return Err(format!("{text:?}: keep it below 100000000"));
    }
    Ok((value * 100.0).round() / 100.0)
}

fn force_sync(runtime: &Runtime, device: &Device, timeout: Duration) -> anyhow::Result<()> {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(100));
    let outcome = runtime.block_on(sync_now(device, timeout, |status| {
        bar.set_message(format!("syncing: {} pending", status.sync.pending));
    }));
    bar.finish_and_clear();
    match outcome? {
        Synced::Yes(status) => println!(
            "{} nothing pending; last pull {}",
            style("synced:").green(),
            ago(status.sync.last_pull_ok, &status)
        ),
        Synced::Paused => println!(
            "{} choose 2 to go online first",
            style("the device is offline:").yellow()
        ),
        Synced::No(status) => println!(
            "{} {} pending after {} s; {}",
            style("not synced yet:").red(),
            status.sync.pending,
            timeout.as_secs(),
            status.sync.last_error.as_deref().map_or_else(
                || "it keeps retrying in the background".to_owned(),
                |e| format!("last error: {}", printable(e))
            )
        ),
    }
    Ok(())
}

fn other_records(runtime: &Runtime, demo: &mut Demo, timeout: Duration) -> anyhow::Result<()> {
    runtime.block_on(async {
        let n = rand_cents();
        let other = demo.other().await?;
        let id = record_transaction(other, n, "recorded on the other device").await?;
        println!(
            "{} recorded {id} ({n:.2}) and pushes it",
            style(OTHER_DEVICE).magenta()
        );
        match sync_now(other, timeout, |_| {}).await? {
            Synced::Yes(_) => println!(
                "{} the server has it; {DEMO_DEVICE} pulls it on its next sync (choose 3, or wait)",
                style(OTHER_DEVICE).magenta()
            ),
            _ => println!(
                "{} could not reach the server yet",
                style(OTHER_DEVICE).magenta()
            ),
        }
        anyhow::Ok(())
    })
}

/// A pseudo-random amount between 1.00 and 99.99 (the clock's nanoseconds suffice here).
fn rand_cents() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(100 + nanos % 9_900) / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_numbers_rounded_to_cents() {
        assert_eq!(parse_amount(" 12.5 "), Ok(12.5));
        assert_eq!(parse_amount("3.456"), Ok(3.46));
        assert_eq!(parse_amount("-2"), Ok(-2.0));
        assert!(parse_amount("twelve").is_err());
        assert!(parse_amount("NaN").is_err());
        assert!(parse_amount("inf").is_err());
        assert!(parse_amount("1e9").is_err());
        assert!(parse_amount("").is_err());
    }
}
