//! `litehouse db FILE ...`: maintenance of a database file.

use std::process::ExitCode;

use indicatif::ProgressBar;

use crate::args::{DbAction, DbArgs};

pub(crate) fn run(args: DbArgs) -> anyhow::Result<ExitCode> {
    let DbArgs { file, action } = args;
    let db = crate::open_existing(&file)?;
    match action {
        DbAction::Check => {
            let problems = db.blocking_integrity_check()?;
            if problems.is_empty() {
                println!("ok");
            } else {
                for problem in &problems {
                    println!("{problem}");
                }
                return Ok(ExitCode::FAILURE);
            }
        }
        DbAction::Checkpoint => {
            let checkpoint = db.blocking_checkpoint()?;
            println!(
                "checkpointed {} of {} WAL frames{}",
                checkpoint.checkpointed_frames,
                checkpoint.log_frames,
                if checkpoint.busy {
                    " (a reader kept some frames; try again later)"
                } else {
                    ""
                }
            );
        }
        DbAction::Vacuum => {
            db.blocking_vacuum()?;
            println!("vacuumed");
        }
        DbAction::Optimize => {
            db.blocking_optimize()?;
            println!("optimized");
        }
        DbAction::Backup { to } => {
            let bar = ProgressBar::new(0);
            let done = db.blocking_backup(&to, |progress| {
                bar.set_length(progress.pages_total);
                bar.set_position(progress.pages_done);
            })?;
            bar.finish_and_clear();
            println!("copied {} pages to {}", done.pages_total, to.display());
        }
    }
    db.blocking_close()?;
    Ok(ExitCode::SUCCESS)
}
