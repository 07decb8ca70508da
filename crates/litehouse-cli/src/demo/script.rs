//! `--script`: records transactions offline, goes online, waits until synced and prints the
//! final status; exit code 0 only when everything was acknowledged and pulled.

use std::process::ExitCode;
use std::time::Duration;

use console::style;
use serde_json::json;

use super::show::print_status;
use super::{COLLECTION, Demo, DemoArgs, Synced, record_transaction, sync_now};

pub(super) async fn script(demo: &mut Demo, args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let device = &demo.device;
    let say = |text: String| {
        if !args.json {
            println!("{text}");
        }
    };
    say(format!(
        "device {} (epoch {}) syncing with {}",
        device.device_id(),
        device.epoch(),
        demo.server_url
    ));
    device.pause().await?;
    say("offline: recording transactions locally".to_owned());
    for n in 1..=args.transactions {
        let amount = f64::from(n) * 1.25;
        let id = record_transaction(device, amount, &format!("scripted #{n}")).await?;
        say(format!("  recorded {id} ({amount:.2})"));
    }
    let status = device.status().await?;
    say(format!("while offline: {}", status.sync.pending) + " pending");
    say("online: syncing".to_owned());
    device.resume().await?;
    let timeout = Duration::from_secs(args.timeout);
    let outcome = sync_now(device, timeout, |_| {}).await?;
    let (status, synced) = match outcome {
        Synced::Yes(status) => (status, true),
        Synced::No(status) => (status, false),
        Synced::Paused => unreachable!("the script resumed the device"),
    };
    let local = device.store().count(COLLECTION, None).await?;
    let ok = synced && status.sync.pending == 0 && status.sync.rejected_total == 0;
    if args.json {
        let report = json!({
            "synced": ok,
            "transactions": local,
            "server": demo.server_url,
            "status": status,
        });
        println!("{report}");
    } else {
        println!();
        println!("final status:");
        print_status(&status, &demo.server_url);
        println!("  {:<16} {local}", style("transactions").dim());
        if ok {
            println!(
                "{}",
                style("synced: every transaction acknowledged and pulled").green()
            );
        } else {
            println!(
                "{}",
                style(format!("NOT synced within {} s", args.timeout))
                    .red()
                    .bold()
            );
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
