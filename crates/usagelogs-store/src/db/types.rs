//! The two column types whose storage differs between the dialects, mapped for SQLite,
//! PostgreSQL and the [`MultiBackend`] of [`AnyConnection`](super::conn::AnyConnection).
//!
//! - [`UtcMicros`]: an instant. PostgreSQL `timestamptz`; SQLite `INTEGER` microseconds since
//!   1970-01-01 00:00:00 UTC. Values are [`Micros`], always exact to the microsecond, so both
//!   dialects round-trip them exactly.
//! - [`JsonObject`]: a JSON object. PostgreSQL `jsonb`; SQLite `TEXT`.

use super::conn::MultiBackend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::query_builder::QueryId;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{BigInt, HasSqlType, Jsonb, SqlType, Text, Timestamptz};
use diesel::sqlite::{Sqlite, SqliteValue};
use serde_json::{Map, Value};
use std::io::Write;
use time::{Duration, OffsetDateTime, UtcOffset};

/// SQL type of an instant stored to the microsecond.
#[derive(Debug, Clone, Copy, Default, SqlType, QueryId)]
#[diesel(postgres_type(oid = 1184, array_oid = 1185))]
#[diesel(sqlite_type(name = "Long"))]
pub struct UtcMicros;

/// SQL type of a JSON object.
#[derive(Debug, Clone, Copy, Default, SqlType, QueryId)]
#[diesel(postgres_type(oid = 3802, array_oid = 3807))]
#[diesel(sqlite_type(name = "Text"))]
pub struct JsonObject;

/// An instant in UTC, exact to the microsecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, AsExpression, FromSqlRow)]
#[diesel(sql_type = UtcMicros)]
pub struct Micros(OffsetDateTime);

const NANOS_PER_MICRO: i128 = 1_000;

impl Micros {
    /// The latest microsecond at or before `t`.
    pub fn floor(t: OffsetDateTime) -> Self {
        let nanos = t.unix_timestamp_nanos();
        Self::from_nanos(nanos.div_euclid(NANOS_PER_MICRO) * NANOS_PER_MICRO)
    }

    /// The earliest microsecond at or after `t`.
    pub fn ceil(t: OffsetDateTime) -> Self {
        let nanos = t.unix_timestamp_nanos();
        let floor = nanos.div_euclid(NANOS_PER_MICRO) * NANOS_PER_MICRO;
        Self::from_nanos(if floor == nanos { floor } else { floor + NANOS_PER_MICRO })
    }

    /// Whether `t` is already exact to the microsecond.
    pub fn is_exact(t: OffsetDateTime) -> bool {
        t.unix_timestamp_nanos().rem_euclid(NANOS_PER_MICRO) == 0
    }

    fn from_nanos(nanos: i128) -> Self {
        // In range: `nanos` is within a microsecond of a valid instant, and the ceiling of the
        // last representable instant is only reached for times near year 9999.
        let t = OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .unwrap_or_else(|_| OffsetDateTime::UNIX_EPOCH + Duration::nanoseconds_i128(nanos));
        Self(t.to_offset(UtcOffset::UTC))
    }

    /// Microseconds since the Unix epoch.
    pub fn unix_micros(self) -> i64 {
        // An OffsetDateTime spans ±9999 years: about 3.2e17 µs, well inside i64.
        i64::try_from(self.0.unix_timestamp_nanos() / NANOS_PER_MICRO).unwrap_or(i64::MAX)
    }

    /// The instant (UTC offset).
    pub fn get(self) -> OffsetDateTime {
        self.0
    }
}

impl ToSql<UtcMicros, Sqlite> for Micros {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.unix_micros());
        Ok(IsNull::No)
    }
}

impl FromSql<UtcMicros, Sqlite> for Micros {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let micros = <i64 as FromSql<BigInt, Sqlite>>::from_sql(value)?;
        let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * NANOS_PER_MICRO)
            .map_err(|e| format!("stored time {micros} µs is out of range: {e}"))?;
        Ok(Self(t))
    }
}

impl ToSql<UtcMicros, Pg> for Micros {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <OffsetDateTime as ToSql<Timestamptz, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<UtcMicros, Pg> for Micros {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let t = <OffsetDateTime as FromSql<Timestamptz, Pg>>::from_sql(value)?;
        Ok(Self(t.to_offset(UtcOffset::UTC)))
    }
}

impl HasSqlType<UtcMicros> for MultiBackend {
    fn metadata(lookup: &mut Self::MetadataLookup) -> Self::TypeMetadata {
        MultiBackend::lookup_sql_type::<UtcMicros>(lookup)
    }
}

impl FromSql<UtcMicros, MultiBackend> for Micros {
    fn from_sql(bytes: <MultiBackend as diesel::backend::Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        bytes.from_sql::<Micros, UtcMicros>()
    }
}

impl ToSql<UtcMicros, MultiBackend> for Micros {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, MultiBackend>) -> serialize::Result {
        out.set_value((UtcMicros, self));
        Ok(IsNull::No)
    }
}

/// A JSON object read back (an entry's metadata).
#[derive(Debug, Clone, PartialEq, FromSqlRow)]
#[diesel(sql_type = JsonObject)]
pub struct Json(pub Map<String, Value>);

fn into_object(value: Value) -> deserialize::Result<Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(format!("stored metadata is not a JSON object: {other}").into()),
    }
}

impl FromSql<JsonObject, Sqlite> for Json {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
        Ok(Self(into_object(serde_json::from_str(&text)?)?))
    }
}

impl FromSql<JsonObject, Pg> for Json {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let value = <Value as FromSql<Jsonb, Pg>>::from_sql(value)?;
        Ok(Self(into_object(value)?))
    }
}

impl HasSqlType<JsonObject> for MultiBackend {
    fn metadata(lookup: &mut Self::MetadataLookup) -> Self::TypeMetadata {
        MultiBackend::lookup_sql_type::<JsonObject>(lookup)
    }
}

impl FromSql<JsonObject, MultiBackend> for Json {
    fn from_sql(bytes: <MultiBackend as diesel::backend::Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        bytes.from_sql::<Json, JsonObject>()
    }
}

/// A JSON object already serialized (metadata being written).
#[derive(Debug, Clone, PartialEq, Eq, AsExpression)]
#[diesel(sql_type = JsonObject)]
pub struct JsonText(pub String);

impl ToSql<JsonObject, Sqlite> for JsonText {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.0.as_str());
        Ok(IsNull::No)
    }
}

impl ToSql<JsonObject, Pg> for JsonText {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        // jsonb binary format: a version byte, then the JSON text.
        out.write_all(&[1])?;
        out.write_all(self.0.as_bytes())?;
        Ok(IsNull::No)
    }
}

impl ToSql<JsonObject, MultiBackend> for JsonText {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, MultiBackend>) -> serialize::Result {
        out.set_value((JsonObject, self));
        Ok(IsNull::No)
    }
}

#[cfg(test)]
mod tests {
    use super::Micros;
    use time::Duration;
    use time::macros::datetime;

    #[test]
    fn rounding_to_the_microsecond() {
        let t = datetime!(2024-02-29 23:59:59.999999 UTC);
        assert!(Micros::is_exact(t));
        assert_eq!(Micros::floor(t).get(), t);
        assert_eq!(Micros::ceil(t).get(), t);
        let between = t + Duration::nanoseconds(1);
        assert!(!Micros::is_exact(between));
        assert_eq!(Micros::floor(between).get(), t);
        assert_eq!(Micros::ceil(between).get(), datetime!(2024-03-01 00:00 UTC));
        // Before the epoch, floor still rounds down.
        let old = datetime!(1969-12-31 23:59:59.9999995 UTC);
        assert_eq!(Micros::floor(old).get(), datetime!(1969-12-31 23:59:59.999999 UTC));
        assert_eq!(Micros::floor(old).unix_micros(), -1);
        // Offsets are normalised to UTC.
        let local = datetime!(2024-03-01 01:30 +02:00);
        assert_eq!(Micros::floor(local).get(), datetime!(2024-02-29 23:30 UTC));
        assert_eq!(Micros::floor(local).get().offset(), time::UtcOffset::UTC);
    }
}
