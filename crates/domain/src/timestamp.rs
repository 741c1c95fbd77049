//! Timestamp formats of the seeds: RFC 3339 in UTC (Docora, Dokko) and integer Unix seconds
//! (Giistr). Use them with `#[serde(with = "...")]`.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Formats `at` as RFC 3339 in UTC with whole seconds: `2024-01-15T10:30:00Z`.
pub fn format_rfc3339(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC).replace_nanosecond(0).unwrap_or(at);
    at.format(&Rfc3339).unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// Formats `at` as RFC 3339 in UTC with milliseconds: `2024-01-15T10:30:00.123Z`.
pub fn format_rfc3339_millis(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    let millis = at.millisecond();
    let whole = format_rfc3339(at);
    // `whole` ends in `Z`; put the milliseconds before it.
    format!("{}.{millis:03}Z", &whole[..whole.len() - 1])
}

/// Parses an RFC 3339 timestamp (any offset) and returns it in UTC.
pub fn parse_rfc3339(text: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(text, &Rfc3339).map(|at| at.to_offset(UtcOffset::UTC))
}

/// `#[serde(with = "domain::timestamp::rfc3339")]`: RFC 3339, UTC, whole seconds.
pub mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(at: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_rfc3339(*at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }

    /// The same for `Option<OffsetDateTime>`, `null` when absent.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};
        use time::OffsetDateTime;

        pub fn serialize<S: Serializer>(at: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
            match at {
                Some(at) => s.serialize_str(&super::super::format_rfc3339(*at)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|text| super::super::parse_rfc3339(&text).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

/// `#[serde(with = "domain::timestamp::rfc3339_millis")]`: RFC 3339, UTC, milliseconds.
pub mod rfc3339_millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(at: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_rfc3339_millis(*at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "domain::timestamp::unix_seconds")]`: integer seconds since the Unix epoch.
pub mod unix_seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(at: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(at.unix_timestamp())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let seconds = i64::deserialize(d)?;
        OffsetDateTime::from_unix_timestamp(seconds).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn rfc3339_is_utc_with_whole_seconds() {
        let at = datetime!(2024-01-15 12:30:00.987654 +02:00);
        assert_eq!(format_rfc3339(at), "2024-01-15T10:30:00Z");
        assert_eq!(format_rfc3339_millis(at), "2024-01-15T10:30:00.987Z");
        assert_eq!(format_rfc3339_millis(datetime!(2024-01-15 10:30:00 UTC)), "2024-01-15T10:30:00.000Z");
    }

    #[test]
    fn rfc3339_round_trips_through_serde() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Row {
            #[serde(with = "rfc3339")]
            at: OffsetDateTime,
            #[serde(with = "unix_seconds")]
            seen: OffsetDateTime,
            #[serde(with = "rfc3339::option")]
            never: Option<OffsetDateTime>,
        }
        let row = Row { at: datetime!(2024-01-15 10:30:00 UTC), seen: datetime!(2024-01-15 10:30:00 UTC), never: None };
        let json = serde_json::to_string(&row).expect("serialises");
        assert_eq!(json, r#"{"at":"2024-01-15T10:30:00Z","seen":1705314600,"never":null}"#);
        let back: Row = serde_json::from_str(&json).expect("parses");
        assert_eq!(back.at, row.at);
        assert_eq!(back.seen, row.seen);
    }
}
