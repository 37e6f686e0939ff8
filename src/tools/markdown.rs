//! Just enough Markdown for profile reports: split a document into `#`/`##` sections, read the
//! pipe tables in them, and write tables back out.
//!
//! Pure functions over strings, no I/O. Lenient by design: text that is not a table is skipped,
//! short rows are padded, `\|` and pipes inside backticks stay in their cell.

/// One `#` or `##` heading and the lines under it (`###` headings stay inside).
#[derive(Debug)]
pub struct Section<'a> {
    pub level: usize,
    pub title: &'a str,
    pub lines: Vec<&'a str>,
}

/// A pipe table: the header cells and the data rows (alignment row dropped).
#[derive(Debug, Default)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Index of the column whose header equals `name` (case-insensitive).
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
    }

    /// The cell of `row` under the column `name`, if both exist.
    pub fn cell<'t>(&self, row: &'t [String], name: &str) -> Option<&'t str> {
        self.column(name)
            .and_then(|i| row.get(i))
            .map(String::as_str)
    }

    /// Rows of a two-column `| Key | Value |` table as pairs.
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.rows
            .iter()
            .filter(|row| row.len() >= 2)
            .map(|row| (row[0].clone(), row[1].clone()))
            .collect()
    }
}

/// Splits at `# ` and `## ` headings. Text before the first heading is a level-0 section.
pub fn sections(text: &str) -> Vec<Section<'_>> {
    let mut out = vec![Section {
        level: 0,
        title: "",
        lines: Vec::new(),
    }];
    for line in text.lines() {
        let trimmed = line.trim_end();
        let heading = if let Some(title) = trimmed.strip_prefix("## ") {
            Some((2, title))
        } else {
            trimmed.strip_prefix("# ").map(|title| (1, title))
        };
        match heading {
            Some((level, title)) => out.push(Section {
                level,
                title: title.trim(),
                lines: Vec::new(),
            }),
            None => out.last_mut().expect("never empty").lines.push(line),
        }
    }
    out
}

/// Every table in `lines`, in order.
pub fn tables(lines: &[&str]) -> Vec<Table> {
    let mut out = Vec::new();
    let mut current: Option<Table> = None;
    for line in lines {
        let trimmed = line.trim();
        if !trimmed.starts_with('|') {
            if let Some(table) = current.take() {
                out.push(table);
            }
            continue;
        }
        let cells = split_row(trimmed);
        match current.as_mut() {
            None => {
                current = Some(Table {
                    header: cells,
                    rows: Vec::new(),
                })
            }
            Some(table) if table.rows.is_empty() && is_alignment(&cells) => {}
            Some(table) => {
                let mut cells = cells;
                if cells.len() < table.header.len() {
                    cells.resize(table.header.len(), String::new());
                }
                table.rows.push(cells);
            }
        }
    }
    if let Some(table) = current {
        out.push(table);
    }
    out
}

/// The first table in `lines` whose header has a column named `column`.
pub fn table_with(lines: &[&str], column: &str) -> Option<Table> {
    tables(lines)
        .into_iter()
        .find(|table| table.column(column).is_some())
}

fn is_alignment(cells: &[String]) -> bool {
    !cells.is_empty()
        && cells.iter().all(|cell| {
            let cell = cell.trim();
            !cell.is_empty() && cell.chars().all(|c| matches!(c, '-' | ':'))
        })
}

/// `| a | `b|c` | d\|e |` → `["a", "`b|c`", "d|e"]`, each cell trimmed.
pub fn split_row(line: &str) -> Vec<String> {
    let inner = line.trim();
    let inner = inner.strip_prefix('|').unwrap_or(inner);
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut in_code = false;
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cell.push('|');
                chars.next();
            }
            '`' => {
                in_code = !in_code;
                cell.push(c);
            }
            '|' if !in_code => cells.push(std::mem::take(&mut cell).trim().to_owned()),
            _ => cell.push(c),
        }
    }
    cells.push(cell.trim().to_owned());
    cells
}

/// `` `name` `` → `name`; other text unchanged apart from trimming.
pub fn strip_code(cell: &str) -> &str {
    let cell = cell.trim();
    cell.strip_prefix('`')
        .and_then(|c| c.strip_suffix('`'))
        .unwrap_or(cell)
}

/// A Markdown table: header, alignment (`true` = right-aligned column), rows. Pipes in cells are
/// escaped so the table stays valid.
pub fn render_table(header: &[&str], right: &[bool], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    out.push('|');
    for h in header {
        out.push_str(&format!(" {h} |"));
    }
    out.push_str("\n|");
    for (i, h) in header.iter().enumerate() {
        let width = h.chars().count().max(3);
        if right.get(i).copied().unwrap_or(false) {
            out.push_str(&format!("{}:|", "-".repeat(width + 1)));
        } else {
            out.push_str(&format!("{}|", "-".repeat(width + 2)));
        }
    }
    out.push('\n');
    for row in rows {
        out.push('|');
        for cell in row {
            out.push_str(&format!(" {} |", escape_cell(cell)));
        }
        out.push('\n');
    }
    out
}

/// Wraps a name in backticks for a table cell.
pub fn code(text: &str) -> String {
    format!("`{}`", text.replace('`', "'"))
}

fn escape_cell(cell: &str) -> String {
    if cell.starts_with('`') && cell.ends_with('`') {
        // Pipes inside code spans still end the cell in GitHub's renderer.
        cell.replace('|', "\\|")
    } else {
        cell.replace('|', "\\|").replace('\n', " ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_split_on_unescaped_pipes() {
        let cases: [(&str, &[&str]); 4] = [
            ("| a | b |", &["a", "b"]),
            ("| `x|y` | z |", &["`x|y`", "z"]),
            ("| a\\|b | c |", &["a|b", "c"]),
            ("|18.9%|534.5ms|", &["18.9%", "534.5ms"]),
        ];
        for (line, expected) in cases {
            assert_eq!(split_row(line), expected, "{line}");
        }
    }

    #[test]
    fn tables_are_found_per_section() {
        let text = "# CPU Profile\n\n| Duration | Samples |\n|---|---:|\n| 2.82s | 279 |\n\n\
                    **Top 10:** x\n\n## Files\n\n| Self% | File |\n|--:|--|\n| 1% | `a.rs` |\n| 2% |\n";
        let sections = sections(text);
        assert_eq!(sections.len(), 3);
        assert_eq!(sections[1].title, "CPU Profile");
        let summary = table_with(&sections[1].lines, "Samples").expect("summary");
        assert_eq!(summary.rows, vec![vec!["2.82s", "279"]]);
        let files = tables(&sections[2].lines).remove(0);
        assert_eq!(files.rows.len(), 2);
        assert_eq!(files.rows[1], vec!["2%", ""]);
        assert_eq!(
            files.cell(&files.rows[0], "file").map(strip_code),
            Some("a.rs")
        );
    }

    #[test]
    fn rendered_tables_read_back() {
        let text = render_table(
            &["Function", "Self%"],
            &[false, true],
            &[vec![code("a|b"), "1.0%".into()]],
        );
        let table = tables(&text.lines().collect::<Vec<_>>()).remove(0);
        assert_eq!(table.rows, vec![vec!["`a|b`", "1.0%"]]);
    }
}
