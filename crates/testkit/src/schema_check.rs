//! A service's `schema.rs` checked against its migrated database: the tables, their primary keys
//! and their columns (name, type and nullability, in order) that the `diesel::table!` blocks
//! declare must be exactly those the migrations create, as `diesel print-schema` would write
//! them. A column added by a migration and missing from `schema.rs` fails the check, and so does
//! a type or nullability that drifted.

use crate::TestDb;

/// The lines of `schema.rs` that describe tables: `table (pk, …)` and `table.column -> Type`,
/// in the file's order. `#[sql_name = "…"]` gives the SQL name of the column that follows.
pub fn declared(schema_rs: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut table: Option<String> = None;
    let mut sql_name: Option<String> = None;
    for raw in schema_rs.lines() {
        let line = raw.trim();
        if let Some(current) = &table {
            if line == "}" {
                table = None;
            } else if let Some(name) = line.strip_prefix("#[sql_name = \"").and_then(|r| r.strip_suffix("\"]")) {
                sql_name = Some(name.to_owned());
            } else if let Some((column, ty)) = line.split_once("->") {
                let column = sql_name.take().unwrap_or_else(|| column.trim().trim_start_matches("r#").to_owned());
                lines.push(format!("{current}.{column} -> {}", ty.trim().trim_end_matches(',').trim()));
            }
        } else if let Some(head) = line.strip_suffix('{')
            && let Some((name, keys)) = head.trim().split_once(" (")
            && let Some(keys) = keys.trim().strip_suffix(')')
            && !name.contains(['!', ' '])
        {
            let name = name.rsplit('.').next().unwrap_or(name).to_owned();
            lines.push(format!("{name} ({keys})"));
            table = Some(name);
        }
    }
    lines
}

/// diesel's name for a PostgreSQL type (`information_schema.columns.udt_name`).
pub fn diesel_type(udt_name: &str) -> String {
    if let Some(element) = udt_name.strip_prefix('_') {
        return format!("Array<Nullable<{}>>", diesel_type(element));
    }
    let known = [
        ("int2", "Int2"),
        ("int4", "Int4"),
        ("int8", "Int8"),
        ("float4", "Float4"),
        ("float8", "Float8"),
        ("numeric", "Numeric"),
        ("bool", "Bool"),
        ("text", "Text"),
        ("varchar", "Varchar"),
        ("bpchar", "Bpchar"),
        ("bytea", "Bytea"),
        ("uuid", "Uuid"),
        ("json", "Json"),
        ("jsonb", "Jsonb"),
        ("date", "Date"),
        ("time", "Time"),
        ("timestamp", "Timestamp"),
        ("timestamptz", "Timestamptz"),
        ("interval", "Interval"),
        ("inet", "Inet"),
        ("oid", "Oid"),
    ];
    known.iter().find(|(pg, _)| *pg == udt_name).map_or_else(|| format!("<{udt_name}>"), |(_, d)| (*d).to_owned())
}

/// What the database holds in `schema`, in [`declared`]'s form: per table (by name), its
/// primary key, then its columns in order.
pub async fn actual(db: &TestDb, schema: &str) -> Vec<String> {
    let columns = db
        .text(&format!(
            "SELECT coalesce(string_agg(c.table_name || ' ' || c.column_name || ' ' || c.udt_name || ' ' || c.is_nullable, \
             E'\\n' ORDER BY c.table_name, c.ordinal_position), '') AS t \
             FROM information_schema.columns c JOIN information_schema.tables t USING (table_schema, table_name) \
             WHERE c.table_schema = '{schema}' AND t.table_type = 'BASE TABLE' \
             AND c.table_name <> '__diesel_schema_migrations'"
        ))
        .await;
    let keys = db
        .text(&format!(
            "SELECT coalesce(string_agg(table_name || ' ' || cols, E'\\n'), '') AS t FROM ( \
             SELECT tc.table_name, string_agg(k.column_name, ', ' ORDER BY k.ordinal_position) AS cols \
             FROM information_schema.table_constraints tc \
             JOIN information_schema.key_column_usage k USING (constraint_schema, constraint_name, table_name) \
             WHERE tc.table_schema = '{schema}' AND tc.constraint_type = 'PRIMARY KEY' \
             GROUP BY tc.table_name) p"
        ))
        .await;
    let key_of = |table: &str| {
        keys.lines().find_map(|l| l.split_once(' ').filter(|(t, _)| *t == table).map(|(_, cols)| cols.to_owned()))
    };
    let mut lines = Vec::new();
    let mut current = String::new();
    for row in columns.lines() {
        let parts: Vec<&str> = row.split(' ').collect();
        let [table, column, udt, nullable] = parts[..] else { continue };
        if table != current {
            current = table.to_owned();
            lines.push(format!("{table} ({})", key_of(table).unwrap_or_else(|| "no primary key".to_owned())));
        }
        let ty = diesel_type(udt);
        let ty = if nullable == "YES" { format!("Nullable<{ty}>") } else { ty };
        lines.push(format!("{table}.{column} -> {ty}"));
    }
    lines
}

/// The differences between what `schema.rs` declares and what the database holds, one line
/// each (`missing from schema.rs: …`, `not in the database: …`, or the order); empty when equal.
/// Tables are compared by name (the file's order of tables is free), columns in order.
pub fn differences(declared: &[String], actual: &[String]) -> Vec<String> {
    let by_table = |lines: &[String]| {
        let mut tables: Vec<Vec<String>> = Vec::new();
        for line in lines {
            if line.contains(" (") && !line.contains(" -> ") {
                tables.push(vec![line.clone()]);
            } else if let Some(last) = tables.last_mut() {
                last.push(line.clone());
            }
        }
        tables.sort();
        tables.concat()
    };
    let (declared, actual) = (by_table(declared), by_table(actual));
    let mut out: Vec<String> = actual
        .iter()
        .filter(|l| !declared.contains(l))
        .map(|l| format!("missing from schema.rs: {l}"))
        .chain(declared.iter().filter(|l| !actual.contains(l)).map(|l| format!("not in the database: {l}")))
        .collect();
    if out.is_empty() && declared != actual {
        out.push("the columns are in another order than the database's".to_owned());
    }
    out
}

/// Panics, listing every difference, unless `schema_rs` describes the tables of `schema` in
/// `db` exactly (see the module's documentation).
pub async fn assert_matches(db: &TestDb, schema: &str, schema_rs: &str) {
    let declared = declared(schema_rs);
    assert!(!declared.is_empty(), "no diesel::table! found in the schema.rs given");
    let actual = actual(db, schema).await;
    let found = differences(&declared, &actual);
    assert!(
        found.is_empty(),
        "schema.rs does not match the migrations of schema {schema}:\n  {}\n(regenerate it with diesel print-schema)",
        found.join("\n  ")
    );
}

#[cfg(test)]
mod tests {
    use super::{declared, diesel_type, differences};

    const SCHEMA_RS: &str = r#"
pub mod dokko {
    diesel::table! {
        dokko.permissions (id) {
            id -> Uuid,
            #[sql_name = "type"]
            type_ -> Nullable<Text>,
            r#match -> Int8,
        }
    }

    diesel::joinable!(permissions -> tenants (tenant_id));
}
"#;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn schema_rs_is_read_as_print_schema_writes_it() {
        assert_eq!(
            declared(SCHEMA_RS),
            lines(&[
                "permissions (id)",
                "permissions.id -> Uuid",
                "permissions.type -> Nullable<Text>",
                "permissions.match -> Int8"
            ])
        );
        assert_eq!(diesel_type("timestamptz"), "Timestamptz");
        assert_eq!(diesel_type("_text"), "Array<Nullable<Text>>");
    }

    #[test]
    fn a_column_a_migration_added_is_missing_from_schema_rs() {
        let declared = declared(SCHEMA_RS);
        let mut actual = declared.clone();
        assert!(differences(&declared, &actual).is_empty());
        actual.push("permissions.note -> Nullable<Text>".to_owned());
        assert_eq!(differences(&declared, &actual), ["missing from schema.rs: permissions.note -> Nullable<Text>"]);
        actual.pop();
        actual[2] = "permissions.type -> Text".to_owned();
        assert_eq!(
            differences(&declared, &actual),
            [
                "missing from schema.rs: permissions.type -> Text",
                "not in the database: permissions.type -> Nullable<Text>"
            ]
        );
        let swapped = lines(&[
            "permissions (id)",
            "permissions.type -> Nullable<Text>",
            "permissions.id -> Uuid",
            "permissions.match -> Int8",
        ]);
        assert_eq!(differences(&declared, &swapped), ["the columns are in another order than the database's"]);
    }
}
