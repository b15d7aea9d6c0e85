//! Contact rows sent as JSON (API imports, manual entries), turned into a
//! table while serde parses them.
//!
//! Columns are looked up in a hash map (a row with many keys costs linear
//! time, not quadratic), and the column cap is enforced the moment one too
//! many appears, so a hostile body stops being parsed at column 201 instead
//! of after every key was collected. Values are kept as the text a CSV cell
//! would hold; the body is never copied into an intermediate `Value` tree.

use crate::error::FieldError;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::collections::HashMap;
use std::fmt;

/// Most distinct fields the rows of one request may use (as many as a CSV
/// header may have).
pub const MAX_COLUMNS: usize = bizcontacts_ingest::MAX_COLUMNS;

/// Most type errors reported for one request.
const MAX_ERRORS: usize = 20;

/// Rows as a table: columns in order of first appearance, each row's values
/// under them (blank where a row lacks the field).
#[derive(Debug, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Values that are objects or arrays, named by path.
    pub errors: Vec<FieldError>,
    index: HashMap<String, usize>,
}

impl Table {
    fn column(&mut self, name: String) -> Result<usize, String> {
        if let Some(i) = self.index.get(&name) {
            return Ok(*i);
        }
        if self.columns.len() == MAX_COLUMNS {
            return Err(format!(
                "rows may use at most {MAX_COLUMNS} distinct fields"
            ));
        }
        let i = self.columns.len();
        self.columns.push(name.clone());
        self.index.insert(name, i);
        Ok(i)
    }
}

/// A JSON array of row objects (`rows` of an API import).
#[derive(Debug, Default)]
pub struct Rows(pub Table);

/// One row object (a manual entry).
#[derive(Debug, Default)]
pub struct OneRow(pub Table);

impl<'de> de::Deserialize<'de> for Rows {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RowsVisitor;
        impl<'de> Visitor<'de> for RowsVisitor {
            type Value = Table;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of objects of field name to value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Table, A::Error> {
                let mut table = Table::default();
                loop {
                    let seed = RowSeed {
                        table: &mut table,
                        path: Some("rows"),
                    };
                    if seq.next_element_seed(seed)?.is_none() {
                        return Ok(table);
                    }
                }
            }
        }
        d.deserialize_seq(RowsVisitor).map(Rows)
    }
}

impl<'de> de::Deserialize<'de> for OneRow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut table = Table::default();
        RowSeed {
            table: &mut table,
            path: None,
        }
        .deserialize(d)?;
        Ok(OneRow(table))
    }
}

/// Reads one row object into `table` (a new row at its end).
struct RowSeed<'a> {
    table: &'a mut Table,
    /// `rows` for an API import (errors name `rows[i].field`), `None` for a
    /// manual entry (errors name the field).
    path: Option<&'static str>,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of field name to value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let row_index = self.table.rows.len();
        let mut row: Vec<String> = vec![String::new(); self.table.columns.len()];
        while let Some(name) = map.next_key::<String>()? {
            let column = self.table.column(name).map_err(de::Error::custom)?;
            if column >= row.len() {
                row.resize(column + 1, String::new());
            }
            match map.next_value::<Cell>()?.0 {
                Some(text) => row[column] = text,
                None if self.table.errors.len() < MAX_ERRORS => {
                    let name = &self.table.columns[column];
                    let field = match self.path {
                        Some(p) => format!("{p}[{row_index}].{name}"),
                        None => name.clone(),
                    };
                    self.table.errors.push(FieldError::new(
                        field,
                        "must be a string, number, boolean or null",
                    ));
                }
                None => {}
            }
        }
        self.table.rows.push(row);
        Ok(())
    }
}

/// A value as the text a CSV cell would hold; `None` for objects and arrays,
/// which are not contact values (their content is skipped, not kept).
struct Cell(Option<String>);

impl<'de> de::Deserialize<'de> for Cell {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CellVisitor;
        impl<'de> Visitor<'de> for CellVisitor {
            type Value = Cell;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number, boolean or null")
            }
            fn visit_str<E>(self, v: &str) -> Result<Cell, E> {
                Ok(Cell(Some(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Cell, E> {
                Ok(Cell(Some(v)))
            }
            // Numbers keep their JSON spelling: an MCC sent as 742 is "742".
            fn visit_u64<E>(self, v: u64) -> Result<Cell, E> {
                Ok(Cell(Some(v.to_string())))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Cell, E> {
                Ok(Cell(Some(v.to_string())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Cell, E> {
                Ok(Cell(serde_json::Number::from_f64(v).map(|n| n.to_string())))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Cell, E> {
                Ok(Cell(Some(v.to_string())))
            }
            fn visit_unit<E>(self) -> Result<Cell, E> {
                Ok(Cell(Some(String::new())))
            }
            fn visit_none<E>(self) -> Result<Cell, E> {
                Ok(Cell(Some(String::new())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Cell, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Cell(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Cell, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Cell(None))
            }
        }
        d.deserialize_any(CellVisitor)
    }
}

impl Table {
    /// Every row padded to the full width (rows read before a column first
    /// appeared are shorter).
    pub fn padded(mut self) -> Self {
        let width = self.columns.len();
        for row in &mut self.rows {
            row.resize(width, String::new());
        }
        self
    }

    /// A table of one row from (field, value) pairs built by the intake itself.
    pub fn one(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let (columns, row): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
        Table {
            rows: vec![row],
            columns,
            ..Table::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_a_table_in_order_of_first_appearance() {
        let Rows(t) = serde_json::from_str(
            r#"[{"company_name":"Acme","mcc":742},{"email":"a@b.co","company_name":null,"x":true}]"#,
        )
        .unwrap();
        let t = t.padded();
        assert_eq!(t.columns, ["company_name", "mcc", "email", "x"]);
        assert_eq!(t.rows[0], ["Acme", "742", "", ""]);
        assert_eq!(t.rows[1], ["", "", "a@b.co", "true"]);
        assert!(t.errors.is_empty());
    }

    #[test]
    fn objects_and_arrays_are_named_errors() {
        let Rows(t) = serde_json::from_str(r#"[{"a":"1"},{"a":{"deep":[1,2]},"b":[1]}]"#).unwrap();
        let fields: Vec<_> = t.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["rows[1].a", "rows[1].b"]);
    }

    #[test]
    fn the_column_cap_stops_parsing_at_once() {
        let body = format!(
            "{{{}}}",
            (0..100_000)
                .map(|i| format!("\"k{i}\":1"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let err = serde_json::from_str::<OneRow>(&body).unwrap_err();
        assert!(
            err.to_string().contains("at most 200 distinct fields"),
            "{err}"
        );
        // Repeated keys are one column.
        let OneRow(t) = serde_json::from_str(r#"{"a":"1","a":"2"}"#).unwrap();
        assert_eq!((t.columns.len(), t.rows[0][0].as_str()), (1, "2"));
    }
}
