//! When a profile is complete. `analyze` refuses a truncated or self-contradicting profile
//! (exit 1) instead of reading what is left of it as a quiet one.
//!
//! Owns the completeness rules for CPU and heap Markdown of each writer; pure (text in,
//! verdict out). Must not judge content (that is `analysis`/`recommend`).

use crate::profiling::cpu_report::END_MARKER_PREFIX;
use crate::tools::markdown;
use crate::tools::report::{CpuReport, Layout, ParseError, count, section};
use crate::tools::units::parse_percent;

/// The sample count of our end marker, if the document's last line is one.
/// The outer `None`: the last line is no marker at all; `Some(None)`: a marker cut short or
/// garbled.
pub fn end_marker(text: &str) -> Option<Option<u64>> {
    let last = text.lines().rev().find(|l| !l.trim().is_empty())?.trim();
    let rest = last.strip_prefix(END_MARKER_PREFIX)?;
    Some(rest.strip_suffix(" samples -->").and_then(count))
}

/// What "complete" means, per writer:
///
/// * Ours since whole-stack attribution (the document has `## Subsystems (Whole Stack)` or an
///   end marker): the last line is `<!-- end of CPU profile: N samples -->`, N equals the
///   summary's Samples, and the subsystem rows add up to N.
/// * Ours before that (a `## Profile Metadata` table but no subsystems): every section we
///   write is there (Hot Functions, Call Tree, Files, Profile Metadata), the text ends with a
///   newline, and `samples_taken` equals the summary's Samples.
/// * Bun's and Deno's (no section of ours): the summary has a sample count, Hot Functions has
///   rows when there are samples, the last section `## Files` is there with shares adding up
///   to 100 % (± 2 points of rounding), and the text ends with a newline.
pub fn check_cpu(
    text: &str,
    sections: &[markdown::Section<'_>],
    report: &CpuReport,
) -> Result<(), ParseError> {
    let fail = |reason: String| Err(ParseError::Incomplete { reason });
    let Some(samples) = report.samples else {
        return fail("the summary table has no sample count (the file is cut before it)".into());
    };
    let has = |title: &str| section(sections, title).is_some();
    let marker = end_marker(text);
    if report.subsystems.is_some() || marker.is_some() {
        let Some(Some(marked)) = marker else {
            return fail(format!(
                "the last line is not '{END_MARKER_PREFIX}N samples -->' (the file stops early)"
            ));
        };
        if marked != samples {
            return fail(format!(
                "the end marker counts {marked} samples, the summary {samples}"
            ));
        }
        let Some(table) = &report.subsystems else {
            return fail("the '## Subsystems (Whole Stack)' section is missing".into());
        };
        let sum: u64 = table.rows.iter().map(|r| r.samples).sum();
        if sum != samples || table.total.is_some_and(|t| t != samples) {
            return fail(format!(
                "the subsystem rows add up to {sum} samples, the summary says {samples}"
            ));
        }
        return Ok(());
    }
    if !text.ends_with('\n') {
        return fail("the text stops in the middle of a line".into());
    }
    if report.layout == Some(Layout::Ours) {
        for title in ["Call Tree", "Files", "Profile Metadata"] {
            if !has(title) {
                return fail(format!("the '## {title}' section is missing"));
            }
        }
        if let Some(taken) = report.metadata.number("samples_taken")
            && taken as u64 != samples
        {
            return fail(format!(
                "the metadata counts {taken} samples taken, the summary {samples}"
            ));
        }
        return Ok(());
    }
    if samples > 0 && report.hot.is_empty() {
        return fail(format!(
            "{samples} samples but no row in '## Hot Functions (Self Time)'"
        ));
    }
    let files = section(sections, "Files").and_then(|s| markdown::table_with(&s.lines, "Self%"));
    let Some(files) = files else {
        return fail("the last section, '## Files', is missing".into());
    };
    let sum: f64 = files
        .rows
        .iter()
        .filter_map(|row| files.cell(row, "Self%").and_then(parse_percent))
        .sum();
    if samples > 0 && (sum - 100.0).abs() > 2.0 {
        return fail(format!(
            "the '## Files' shares add up to {sum:.1}%, not 100% (rows are missing)"
        ));
    }
    Ok(())
}

/// A heap profile is complete when its `## Summary` table is there and the text ends with a
/// newline (heap reports carry no end marker).
pub fn check_heap(text: &str, sections: &[markdown::Section<'_>]) -> Result<(), ParseError> {
    if section(sections, "Summary").is_none() {
        return Err(ParseError::Incomplete {
            reason: "the '## Summary' section is missing".into(),
        });
    }
    if !text.ends_with('\n') {
        return Err(ParseError::Incomplete {
            reason: "the text stops in the middle of a line".into(),
        });
    }
    Ok(())
}
