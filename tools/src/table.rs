//! Plain-text tables with aligned columns, for `raftctl status` and `raft-bench`'s report.
//!
//! Why not a table crate: two small tables, no borders, no colours; what matters is that the
//! output stays grep- and awk-friendly (columns separated by spaces, one row per line, no
//! trailing blanks).
//!
//! ```
//! use tools::table::Table;
//!
//! let mut t = Table::new(&["ID", "ROLE", "TERM"]);
//! t.align_right(2);
//! t.row(["1", "leader", "7"]);
//! t.row(["2", "follower", "12"]);
//! assert_eq!(t.to_string(), "ID  ROLE      TERM\n1   leader       7\n2   follower    12\n");
//! ```

use std::fmt;

/// A table: a header row and data rows of strings.
#[derive(Clone, Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    right: Vec<bool>,
}

impl Table {
    /// A table with these column names.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
            right: vec![false; header.len()],
        }
    }

    /// Right-aligns column `col` (numbers read best so).
    pub fn align_right(&mut self, col: usize) {
        if let Some(r) = self.right.get_mut(col) {
            *r = true;
        }
    }

    /// Appends a row; missing cells are empty, extra cells are dropped.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut row: Vec<String> = cells.into_iter().map(Into::into).collect();
        row.resize(self.header.len(), String::new());
        self.rows.push(row);
    }

    /// The data rows.
    pub fn rows(&self) -> &[Vec<String>] {
        &self.rows
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = |col: usize| {
            std::iter::once(&self.header)
                .chain(&self.rows)
                .map(|r| r[col].chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.header.len()).map(width).collect();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (col, cell) in row.iter().enumerate() {
                if col > 0 {
                    line.push_str("  ");
                }
                let pad = widths[col] - cell.chars().count();
                if self.right[col] {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_lines_have_no_trailing_blanks() {
        let mut t = Table::new(&["A", "LONG HEADER", "N"]);
        t.align_right(2);
        t.row(["xyz", "", "1"]);
        t.row(["é", "b", "100"]);
        t.row(["only one"]);
        let text = t.to_string();
        assert_eq!(
            text,
            "A         LONG HEADER    N\n\
             xyz                      1\n\
             é         b            100\n\
             only one\n"
        );
        assert!(text.lines().all(|l| !l.ends_with(' ')));
        assert_eq!(t.rows().len(), 3);
    }
}
