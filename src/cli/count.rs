//! `run`'s counting options (`--count-line`, `--count-zone`, `--counts-csv`) and the
//! final counts it prints.

use std::fs::File;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use focalyolo::count::{Region, RegionCount};
use focalyolo::inference::postprocess::class_name;
use focalyolo::output::report::CountsCsv;

#[derive(Args)]
pub struct CountArgs {
    /// Count tracks crossing the line from (X1,Y1) to (X2,Y2), in source pixels: across a
    /// line more vertical than horizontal, moving right is IN; otherwise moving down is IN.
    /// Repeatable; turns --track on.
    #[arg(long, value_name = "X1,Y1,X2,Y2")]
    count_line: Vec<String>,
    /// Count tracks entering the zone with these corners (3 or more), in source pixels: in
    /// a zone taller than wide, moving right is IN; otherwise moving down is IN.
    /// Repeatable; turns --track on.
    #[arg(long, value_name = "X1,Y1,X2,Y2,X3,Y3[,...]")]
    count_zone: Vec<String>,
    /// Write one CSV row per counted track (frame, time, region, track, class, direction).
    #[arg(long)]
    counts_csv: Option<PathBuf>,
}

impl CountArgs {
    /// The counting regions, named "line 1", "line 2", …, "zone 1", ….
    pub fn regions(&self) -> anyhow::Result<Vec<Region>> {
        let lines = self
            .count_line
            .iter()
            .enumerate()
            .map(|(i, text)| Region::parse(format!("line {}", i + 1), text, true));
        let zones = self
            .count_zone
            .iter()
            .enumerate()
            .map(|(i, text)| Region::parse(format!("zone {}", i + 1), text, false));
        let regions: Vec<Region> = lines.chain(zones).collect::<Result<_, _>>()?;
        if self.counts_csv.is_some() && regions.is_empty() {
            bail!("--counts-csv needs a region to count in (--count-line or --count-zone)");
        }
        Ok(regions)
    }

    /// The counts' CSV, created, when --counts-csv asks for one.
    pub fn csv(&self) -> anyhow::Result<Option<CountsCsv<File>>> {
        self.counts_csv
            .as_ref()
            .map(|path| {
                CountsCsv::create(path).with_context(|| format!("cannot create {}", path.display()))
            })
            .transpose()
    }
}

/// Each region's final counts on stderr: "line 1: IN 3, OUT 6 (person IN 3, OUT 6)".
pub fn report_counts(counts: &[RegionCount], names: &[String]) {
    for count in counts {
        let classes: Vec<String> = count
            .classes
            .iter()
            .map(|(&class, c)| {
                format!(
                    "{} IN {}, OUT {}",
                    class_name(names, class),
                    c.inward,
                    c.outward
                )
            })
            .collect();
        let classes = if classes.is_empty() {
            String::new()
        } else {
            format!(" ({})", classes.join("; "))
        };
        eprintln!(
            "{}: IN {}, OUT {}{classes}",
            count.region, count.total.inward, count.total.outward
        );
    }
}
