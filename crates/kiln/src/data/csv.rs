//! Delimited-text tables (CSV, TSV, whitespace-free numeric tables) read
//! into a [`TensorDataset`]: one row per item, chosen feature columns as the
//! input `[n_features]`, one target column as a class label or a float.
//!
//! ```no_run
//! use kiln::data::CsvTable;
//! let d = CsvTable::new("pima-indians-diabetes.csv").target("diabetes").float_target().load()?;
//! # Ok::<(), kiln::data::DataError>(())
//! ```
//!
//! Every cell must be a finite number: an empty cell, `NA`, `NaN` or `?`
//! is a missing value, reported with its line and column rather than
//! silently imputed, because the right imputation depends on the data.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{DataError, TensorDataset};

/// A column by header name or by 0-based position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    Name(String),
    Index(usize),
}

impl From<&str> for Column {
    fn from(s: &str) -> Column {
        Column::Name(s.to_string())
    }
}

impl From<usize> for Column {
    fn from(i: usize) -> Column {
        Column::Index(i)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetAs {
    Class { num_classes: usize },
    Float,
}

/// How to read one table; [`load`](CsvTable::load) does the reading.
#[derive(Debug, Clone)]
pub struct CsvTable {
    path: PathBuf,
    delimiter: u8,
    header: bool,
    features: Option<Vec<Column>>,
    target: Option<Column>,
    target_as: TargetAs,
}

const MISSING: [&str; 5] = ["", "na", "nan", "?", "null"];

impl CsvTable {
    /// Comma-delimited, a header row, the last column as a float target and
    /// every other column as a feature.
    pub fn new(path: impl AsRef<Path>) -> CsvTable {
        CsvTable { path: path.as_ref().to_path_buf(), delimiter: b',', header: true, features: None, target: None, target_as: TargetAs::Float }
    }

    pub fn delimiter(mut self, d: u8) -> CsvTable {
        self.delimiter = d;
        self
    }

    /// The first row is data, not column names (columns are then chosen by index).
    pub fn no_header(mut self) -> CsvTable {
        self.header = false;
        self
    }

    /// The input columns, in this order (default: every column but the target).
    pub fn features<C: Into<Column>>(mut self, cols: impl IntoIterator<Item = C>) -> CsvTable {
        self.features = Some(cols.into_iter().map(Into::into).collect());
        self
    }

    /// The target column (default: the last).
    pub fn target(mut self, col: impl Into<Column>) -> CsvTable {
        self.target = Some(col.into());
        self
    }

    /// The target is a class label: an integer in `0..num_classes`.
    pub fn class_target(mut self, num_classes: usize) -> CsvTable {
        self.target_as = TargetAs::Class { num_classes };
        self
    }

    /// The target is a float (regression, or 0/1 for BCE): `y` is f32 `[n, 1]`.
    pub fn float_target(mut self) -> CsvTable {
        self.target_as = TargetAs::Float;
        self
    }

    pub fn load(&self) -> Result<TensorDataset, DataError> {
        let file = std::fs::File::open(&self.path).map_err(|e| DataError::Io { path: self.path.clone(), message: e.to_string() })?;
        self.read(file)
    }

    /// Reads the table from `r` (errors still name this table's path).
    pub fn read(&self, r: impl Read) -> Result<TensorDataset, DataError> {
        let path = &self.path;
        let mut rdr = csv::ReaderBuilder::new().delimiter(self.delimiter).has_headers(self.header).flexible(true).trim(csv::Trim::All).from_reader(r);
        let csv_err = |e: csv::Error| DataError::Csv { path: path.clone(), message: e.to_string() };
        let names: Vec<String> = if self.header { rdr.headers().map_err(csv_err)?.iter().map(str::to_string).collect() } else { Vec::new() };
        let mut records = rdr.records();
        let first = match records.next() {
            Some(r) => r.map_err(csv_err)?,
            None => return Err(DataError::EmptyTable { path: path.clone() }),
        };
        let width = if self.header { names.len() } else { first.len() };
        let resolve = |c: &Column| -> Result<usize, DataError> {
            match c {
                Column::Index(i) if *i < width => Some(*i),
                Column::Name(n) => names.iter().position(|h| h == n),
                Column::Index(_) => None,
            }
            .ok_or_else(|| DataError::UnknownColumn { path: path.clone(), column: format!("{c:?}"), columns: names.join(", ") })
        };
        let target = match &self.target {
            Some(c) => resolve(c)?,
            None if width >= 2 => width - 1,
            None => return Err(DataError::Invalid(format!("{}: a table with {width} column(s) has no room for features and a target", path.display()))),
        };
        let features: Vec<usize> = match &self.features {
            Some(cols) => cols.iter().map(resolve).collect::<Result<_, _>>()?,
            None => (0..width).filter(|&c| c != target).collect(),
        };
        if features.is_empty() {
            return Err(DataError::Invalid(format!("{}: no feature columns chosen", path.display())));
        }
        let col_name = |c: usize| match names.get(c) {
            Some(n) => format!("{} (`{n}`)", c + 1),
            None => (c + 1).to_string(),
        };
        let (mut inputs, mut labels, mut values) = (Vec::new(), Vec::new(), Vec::new());
        for rec in std::iter::once(Ok(first)).chain(records) {
            let rec = rec.map_err(csv_err)?;
            let line = rec.position().map_or(0, |p| p.line());
            if rec.len() != width {
                return Err(DataError::RaggedRow { path: path.clone(), line, expected: width, got: rec.len() });
            }
            let cell = |c: usize| -> Result<f64, DataError> {
                let s = &rec[c];
                if MISSING.contains(&s.to_ascii_lowercase().as_str()) {
                    return Err(DataError::MissingValue { path: path.clone(), line, column: col_name(c), cell: s.to_string() });
                }
                match s.parse::<f64>() {
                    Ok(v) if v.is_finite() => Ok(v),
                    _ => Err(DataError::NotANumber { path: path.clone(), line, column: col_name(c), cell: s.to_string() }),
                }
            };
            for &c in &features {
                inputs.push(cell(c)? as f32);
            }
            let t = cell(target)?;
            match self.target_as {
                TargetAs::Class { num_classes } => {
                    if t.fract() != 0.0 || t < 0.0 || t >= num_classes as f64 {
                        return Err(DataError::BadLabel { path: path.clone(), line, column: col_name(target), cell: rec[target].to_string(), num_classes });
                    }
                    labels.push(t as i64);
                }
                TargetAs::Float => values.push(t as f32),
            }
        }
        let shape = vec![features.len()];
        match self.target_as {
            TargetAs::Class { num_classes } => TensorDataset::new(inputs, labels, shape, num_classes),
            TargetAs::Float => TensorDataset::with_float_targets(inputs, values, shape, 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Targets;

    fn read(t: &CsvTable, text: &str) -> Result<TensorDataset, DataError> {
        t.read(text.as_bytes())
    }

    fn table() -> CsvTable {
        CsvTable::new("t.csv")
    }

    #[test]
    fn header_columns_and_targets() {
        let text = "a,b,c,y\n1,2,3,0\n4,5,6,1\n";
        let d = read(&table().features(["c", "a"]).target("y").class_target(2), text).unwrap();
        assert_eq!(d.item_shape, vec![2]);
        assert_eq!(d.inputs, vec![3.0, 1.0, 6.0, 4.0]);
        assert_eq!(d.labels(), Some(&[0, 1][..]));
        let d = read(&table(), text).unwrap();
        assert_eq!(d.inputs, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(d.targets, Targets::Float { values: vec![0.0, 1.0], width: 1 });
        let d = read(&table().no_header().delimiter(b'\t').target(0), "7\t8\n9\t10\n").unwrap();
        assert_eq!((d.inputs, d.targets), (vec![8.0, 10.0], Targets::Float { values: vec![7.0, 9.0], width: 1 }));
    }

    #[test]
    fn ragged_row_names_its_line() {
        let e = read(&table(), "a,b,y\n1,2,0\n3,4\n").unwrap_err();
        assert_eq!(e, DataError::RaggedRow { path: "t.csv".into(), line: 3, expected: 3, got: 2 });
        assert!(e.to_string().contains("line 3"), "{e}");
    }

    #[test]
    fn non_numeric_and_missing_cells_name_line_and_column() {
        let e = read(&table(), "a,b,y\n1,2,0\n3,x4,1\n").unwrap_err();
        assert_eq!(e, DataError::NotANumber { path: "t.csv".into(), line: 3, column: "2 (`b`)".into(), cell: "x4".into() });
        assert!(e.to_string().contains("line 3, column 2 (`b`)"), "{e}");
        let e = read(&table(), "a,b,y\n1,,0\n").unwrap_err();
        assert!(matches!(&e, DataError::MissingValue { line: 2, column, .. } if column == "2 (`b`)"), "{e}");
        let e = read(&table(), "a,b,y\n1,NA,0\n").unwrap_err();
        assert!(matches!(e, DataError::MissingValue { line: 2, .. }), "{e}");
        let e = read(&table(), "a,b,y\n1,inf,0\n").unwrap_err();
        assert!(matches!(e, DataError::NotANumber { .. }), "{e}");
    }

    #[test]
    fn empty_table_and_unknown_column() {
        assert_eq!(read(&table(), "").unwrap_err(), DataError::EmptyTable { path: "t.csv".into() });
        assert_eq!(read(&table(), "a,b,y\n").unwrap_err(), DataError::EmptyTable { path: "t.csv".into() });
        let e = read(&table().target("z"), "a,y\n1,2\n").unwrap_err();
        assert!(matches!(e, DataError::UnknownColumn { .. }) && e.to_string().contains("a, y"), "{e}");
        assert!(matches!(read(&table().no_header().target(5), "1,2\n"), Err(DataError::UnknownColumn { .. })));
        assert!(matches!(CsvTable::new("/nonexistent/t.csv").load(), Err(DataError::Io { .. })));
    }

    #[test]
    fn out_of_range_or_fractional_label_names_its_line() {
        let t = table().class_target(2);
        let e = read(&t, "a,y\n1,0\n2,2\n").unwrap_err();
        assert_eq!(e, DataError::BadLabel { path: "t.csv".into(), line: 3, column: "2 (`y`)".into(), cell: "2".into(), num_classes: 2 });
        assert!(matches!(read(&t, "a,y\n1,0.5\n"), Err(DataError::BadLabel { line: 2, .. })));
        assert!(matches!(read(&t, "a,y\n1,-1\n"), Err(DataError::BadLabel { line: 2, .. })));
    }
}
