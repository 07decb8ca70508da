//! `litehouse bench`: runs workloads and prints a table (or JSON lines) with ratios.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use litehouse_bench::{BenchOptions, Measurement, Workload, workloads};

use crate::args::BenchArgs;

pub(crate) fn run(args: BenchArgs) -> anyhow::Result<()> {
    let BenchArgs {
        quick,
        json,
        workload: wanted,
        dir,
        list,
        pg,
    } = args;
    let mut all = workloads();
    all.extend(crate::bench_http::workloads());
    all.extend(crate::bench_realtime::workloads());
    all.extend(crate::bench_sync::workloads());
    if list {
        for workload in &all {
            println!("{}  {}", workload.id, workload.title);
        }
        return Ok(());
    }
    let selected: Vec<Workload> = if wanted.is_empty() {
        all
    } else {
        let known: Vec<&str> = all.iter().map(|w| w.id).collect();
        for id in &wanted {
            anyhow::ensure!(
                known.iter().any(|k| k.eq_ignore_ascii_case(id))
                    || GROUPS
                        .iter()
                        .any(|(group, _)| group.eq_ignore_ascii_case(id)),
                "unknown workload {id}: choose from {} or a group ({}) (see --list)",
                known.join(", "),
                GROUPS.map(|(group, _)| group).join(", ")
            );
        }
        all.into_iter()
            .filter(|w| wanted.iter().any(|id| selects(id, w.id)))
            .collect()
    };
    let scratch =
        tempfile::tempdir().context("could not create a temporary directory; pass --dir")?;
    let dir = match dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("could not create {}", dir.display()))?;
            dir
        }
        None => scratch.path().to_path_buf(),
    };
    let options = BenchOptions { quick, dir, pg };
    let progress = ProgressBar::new(selected.len() as u64);
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} workloads  {msg}",
        )
        .expect("valid progress template"),
    );
    progress.enable_steady_tick(std::time::Duration::from_millis(200));
    let stdout = std::io::stdout();
    for workload in &selected {
        progress.set_message(format!("{}: {}", workload.id, workload.title));
        let mut measurements = Vec::new();
        (workload.run)(&options, &mut |measurement: Measurement| {
            progress.set_message(format!(
                "{} {} x{}: {:.0} ops/s",
                measurement.workload,
                measurement.implementation,
                measurement.threads,
                measurement.ops_per_sec
            ));
            measurements.push(measurement);
        })
        .with_context(|| format!("workload {} failed", workload.id))?;
        let ratios = ratios(workload, &measurements);
        progress.suspend(|| -> anyhow::Result<()> {
            let mut out = stdout.lock();
            if json {
                for (measurement, ratio) in measurements.iter().zip(&ratios) {
                    let mut line = serde_json::to_value(measurement)?;
                    line["ratio_vs_reference"] = serde_json::json!(ratio);
                    line["reference"] = serde_json::json!(workload.reference);
                    writeln!(out, "{line}")?;
                }
            } else {
                print_table(&mut out, workload, &measurements, &ratios)?;
            }
            Ok(())
        })?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(())
}

/// Names that select a family of workloads: (group, id prefix).
const GROUPS: [(&str, &str); 1] = [("sync", "S")];

/// Whether `wanted` (a workload id or a group name from `--workload`) selects workload `id`.
fn selects(wanted: &str, id: &str) -> bool {
    wanted.eq_ignore_ascii_case(id)
        || GROUPS
            .iter()
            .any(|(group, prefix)| group.eq_ignore_ascii_case(wanted) && id.starts_with(prefix))
}

/// Each measurement's ops/s divided by the reference implementation's at the same thread
/// count, when the workload measured one.
fn ratios(workload: &Workload, measurements: &[Measurement]) -> Vec<Option<f64>> {
    let reference: BTreeMap<usize, f64> = measurements
        .iter()
        .filter(|m| m.implementation == workload.reference)
        .map(|m| (m.threads, m.ops_per_sec))
        .collect();
    let only_reference = reference
        .values()
        .next()
        .copied()
        .filter(|_| reference.len() == 1);
    measurements
        .iter()
        .map(|m| {
            let base = reference.get(&m.threads).copied().or(only_reference)?;
            (base > 0.0).then(|| m.ops_per_sec / base)
        })
        .collect()
}

fn print_table(
    out: &mut impl Write,
    workload: &Workload,
    measurements: &[Measurement],
    ratios: &[Option<f64>],
) -> std::io::Result<()> {
    writeln!(out, "\n{}  {}", workload.id, workload.title)?;
    writeln!(
        out,
        "  {:<18} {:>7} {:>13} {:>9} {:>10}  note",
        "implementation",
        "threads",
        "ops/s",
        "failures",
        format!("vs {}", short(workload.reference))
    )?;
    for (m, ratio) in measurements.iter().zip(ratios) {
        let ratio = ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"));
        writeln!(
            out,
            "  {:<18} {:>7} {:>13.0} {:>9} {:>10}  {}",
            m.implementation, m.threads, m.ops_per_sec, m.failures, ratio, m.note
        )?;
    }
    Ok(())
}

fn short(name: &str) -> &str {
    name.split('-').next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::selects;

    #[test]
    fn a_group_selects_its_family_and_an_id_itself() {
        assert!(selects("sync", "S1") && selects("SYNC", "S3"));
        assert!(!selects("sync", "H1") && !selects("sync", "W2"));
        assert!(selects("s2", "S2") && !selects("S2", "S1"));
    }
}
