//! The `starttime`/`endtime` parameters of the logs API, the window they yield, and the RFC 2822
//! date format of Quay's responses.

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Date, Duration, Month, OffsetDateTime, Time, UtcOffset};

/// Earliest year accepted in a date parameter.
pub const MIN_YEAR: i32 = 1970;
/// Latest year accepted in a date parameter (the end day plus one must still be representable
/// in every client).
pub const MAX_YEAR: i32 = 9998;

/// Why the date parameters were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateParamError {
    /// A parameter that is not a date in one of the accepted formats.
    #[error("Invalid {param} '{value}': expected a date as MM/DD/YYYY or YYYY-MM-DD (UTC, year {MIN_YEAR}-{MAX_YEAR})")]
    Invalid { param: &'static str, value: String },
    /// The start lies after the end.
    #[error("Invalid time span selected")]
    InvalidSpan,
    /// An aggregate window longer than the configured maximum.
    #[error("Invalid date range for logs")]
    RangeTooLong,
}

fn digits(s: &str, min: usize, max: usize) -> Option<u32> {
    if s.len() < min || s.len() > max || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn make_date(year: u32, month: u32, day: u32) -> Option<Date> {
    let year = i32::try_from(year).ok()?;
    if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
        return None;
    }
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    Date::from_calendar_date(year, month, u8::try_from(day).ok()?).ok()
}

fn parse_date(value: &str) -> Option<Date> {
    // Quay tolerates trailing whitespace (but not leading), so do we.
    let s = value.trim_end();
    if let Some((m, rest)) = s.split_once('/') {
        let (d, y) = rest.split_once('/')?;
        return make_date(digits(y, 4, 4)?, digits(m, 1, 2)?, digits(d, 1, 2)?);
    }
    let mut parts = s.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    make_date(digits(y, 4, 4)?, digits(m, 2, 2)?, digits(d, 2, 2)?)
}

/// Parses one date parameter. `None` or an empty value means "not given".
///
/// Accepts `MM/DD/YYYY` (one- or two-digit month and day) and ISO `YYYY-MM-DD`, both meaning that
/// calendar day in UTC.
pub fn parse_date_param(param: &'static str, raw: Option<&str>) -> Result<Option<Date>, DateParamError> {
    match raw {
        None | Some("") => Ok(None),
        Some(v) => parse_date(v)
            .map(Some)
            .ok_or_else(|| DateParamError::Invalid { param, value: v.chars().take(64).collect() }),
    }
}

/// A half-open window of time `[start, end)` in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeWindow {
    start: OffsetDateTime,
    end: OffsetDateTime,
}

impl TimeWindow {
    /// A window from two instants; `start` must not be after `end`.
    pub fn new(start: OffsetDateTime, end: OffsetDateTime) -> Result<Self, DateParamError> {
        let (start, end) = (start.to_offset(UtcOffset::UTC), end.to_offset(UtcOffset::UTC));
        if start > end {
            return Err(DateParamError::InvalidSpan);
        }
        Ok(Self { start, end })
    }

    /// The window of the logs API for the raw `starttime` and `endtime` values.
    ///
    /// Missing start: `now − 24 h`; missing end: `now`. The end day is inclusive, so one day is
    /// added to it: the window is `[start, end + 1 day)`. A start at or after that bound (an
    /// empty window) is [`DateParamError::InvalidSpan`].
    pub fn from_params(
        starttime: Option<&str>,
        endtime: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Self, DateParamError> {
        let now = now.to_offset(UtcOffset::UTC);
        let start = match parse_date_param("starttime", starttime)? {
            Some(d) => midnight(d),
            None => now - Duration::DAY,
        };
        let end = match parse_date_param("endtime", endtime)? {
            Some(d) => midnight(d),
            None => now,
        } + Duration::DAY;
        if start >= end {
            return Err(DateParamError::InvalidSpan);
        }
        Ok(Self { start, end })
    }

    /// Refuses a window longer than `max_days` days (the aggregate endpoints' limit).
    pub fn check_max_days(self, max_days: u32) -> Result<Self, DateParamError> {
        if self.end - self.start > Duration::days(i64::from(max_days)) {
            return Err(DateParamError::RangeTooLong);
        }
        Ok(self)
    }

    /// The inclusive start.
    pub fn start(&self) -> OffsetDateTime {
        self.start
    }

    /// The exclusive end.
    pub fn end(&self) -> OffsetDateTime {
        self.end
    }

    /// Whether `t` lies inside the window.
    pub fn contains(&self, t: OffsetDateTime) -> bool {
        self.start <= t && t < self.end
    }
}

/// 00:00:00 UTC of a calendar day.
pub fn midnight(d: Date) -> OffsetDateTime {
    d.with_time(Time::MIDNIGHT).assume_utc()
}

const RFC2822: &[BorrowedFormatItem<'static>] = format_description!(
    "[weekday repr:short], [day padding:zero] [month repr:short] [year padding:zero repr:full] [hour]:[minute]:[second] -0000"
);

/// Formats an instant as Quay does: RFC 2822 in UTC with a literal `-0000`, whole seconds,
/// English names, two-digit day: `Tue, 05 Mar 2024 13:07:09 -0000`.
pub fn format_rfc2822(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC).format(RFC2822).unwrap_or_else(|_| String::from("Thu, 01 Jan 1970 00:00:00 -0000"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::{date, datetime};

    const NOW: OffsetDateTime = datetime!(2024-03-05 13:07:09.123456 UTC);

    #[test]
    fn both_formats() {
        assert_eq!(parse_date_param("starttime", Some("03/05/2024")), Ok(Some(date!(2024 - 03 - 05))));
        assert_eq!(parse_date_param("starttime", Some("3/5/2024")), Ok(Some(date!(2024 - 03 - 05))));
        assert_eq!(parse_date_param("starttime", Some("2024-03-05")), Ok(Some(date!(2024 - 03 - 05))));
        assert_eq!(parse_date_param("starttime", Some("03/05/2024 ")), Ok(Some(date!(2024 - 03 - 05))));
        assert_eq!(parse_date_param("starttime", Some("02/29/2024")), Ok(Some(date!(2024 - 02 - 29))));
        assert_eq!(parse_date_param("starttime", Some("")), Ok(None));
        assert_eq!(parse_date_param("starttime", None), Ok(None));
    }

    #[test]
    fn every_error_case() {
        for bad in [
            " 03/05/2024",
            "02/30/2024",
            "02/29/2023",
            "13/01/2024",
            "00/10/2024",
            "03/00/2024",
            "03/05/24",
            "03/05/02024",
            "003/05/2024",
            "03-05-2024",
            "2024-3-5",
            "2024/03/05",
            "2024-03-05T00:00:00",
            "12/31/1969",
            "01/01/9999",
            "today",
            "03/05/2024x",
            "+3/05/2024",
        ] {
            let err = parse_date_param("endtime", Some(bad)).unwrap_err();
            assert!(matches!(err, DateParamError::Invalid { param: "endtime", .. }), "{bad}");
            assert!(err.to_string().contains("endtime"), "{err}");
            assert!(err.to_string().contains("MM/DD/YYYY"), "{err}");
        }
        assert!(parse_date_param("starttime", Some("01/01/1970")).unwrap().is_some());
        assert!(parse_date_param("starttime", Some("12/31/9998")).unwrap().is_some());
    }

    #[test]
    fn window_is_inclusive_of_the_end_day() {
        let w = TimeWindow::from_params(Some("12/01/2016"), Some("1/09/2017"), NOW).unwrap();
        assert_eq!(format_rfc2822(w.start()), "Thu, 01 Dec 2016 00:00:00 -0000");
        assert_eq!(format_rfc2822(w.end()), "Tue, 10 Jan 2017 00:00:00 -0000");
    }

    #[test]
    fn defaults_are_time_of_day_based() {
        let w = TimeWindow::from_params(None, None, NOW).unwrap();
        assert_eq!(w.start(), NOW - Duration::DAY);
        assert_eq!(w.end(), NOW + Duration::DAY);
        let w = TimeWindow::from_params(Some(""), Some(""), NOW).unwrap();
        assert_eq!(w.start(), NOW - Duration::DAY);
    }

    #[test]
    fn spans() {
        assert!(TimeWindow::from_params(Some("03/05/2024"), Some("03/05/2024"), NOW).is_ok());
        assert_eq!(
            TimeWindow::from_params(Some("03/06/2024"), Some("03/05/2024"), NOW),
            Err(DateParamError::InvalidSpan)
        );
        // Only an end day long past: the default start lies after it.
        assert_eq!(TimeWindow::from_params(None, Some("01/01/2024"), NOW), Err(DateParamError::InvalidSpan));
        // An end of yesterday still overlaps the default start (now − 24 h).
        assert!(TimeWindow::from_params(None, Some("03/04/2024"), NOW).is_ok());
        assert_eq!(
            TimeWindow::from_params(Some("bad"), Some("03/05/2024"), NOW).unwrap_err(),
            DateParamError::Invalid { param: "starttime", value: "bad".into() }
        );
    }

    #[test]
    fn aggregate_maximum() {
        let w = TimeWindow::from_params(Some("03/01/2024"), Some("03/31/2024"), NOW).unwrap();
        assert!(w.check_max_days(31).is_ok());
        let w = TimeWindow::from_params(Some("03/01/2024"), Some("04/01/2024"), NOW).unwrap();
        assert_eq!(w.check_max_days(31), Err(DateParamError::RangeTooLong));
        assert!(w.check_max_days(32).is_ok());
    }

    #[test]
    fn rfc2822() {
        assert_eq!(format_rfc2822(NOW), "Tue, 05 Mar 2024 13:07:09 -0000");
        assert_eq!(format_rfc2822(datetime!(2024-02-29 00:00:00 UTC)), "Thu, 29 Feb 2024 00:00:00 -0000");
        let offset = datetime!(2024-03-05 01:00:00 +02:00);
        assert_eq!(format_rfc2822(offset), "Mon, 04 Mar 2024 23:00:00 -0000");
    }

    fn arb_date() -> impl Strategy<Value = Date> {
        (MIN_YEAR..=MAX_YEAR, 1u8..=12, 1u8..=31)
            .prop_filter_map("valid date", |(y, m, d)| Date::from_calendar_date(y, Month::try_from(m).ok()?, d).ok())
    }

    proptest! {
        #[test]
        fn us_format_round_trips(d in arb_date(), pad in any::<bool>()) {
            let s = if pad {
                format!("{:02}/{:02}/{:04}", u8::from(d.month()), d.day(), d.year())
            } else {
                format!("{}/{}/{:04}", u8::from(d.month()), d.day(), d.year())
            };
            prop_assert_eq!(parse_date_param("starttime", Some(&s)), Ok(Some(d)));
        }

        #[test]
        fn iso_format_round_trips(d in arb_date()) {
            let s = format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day());
            prop_assert_eq!(parse_date_param("starttime", Some(&s)), Ok(Some(d)));
        }

        #[test]
        fn parser_never_panics(s in "\\PC{0,24}") {
            let _ = parse_date_param("starttime", Some(&s));
        }

        #[test]
        fn impossible_days_are_refused(y in MIN_YEAR..=MAX_YEAR, m in 1u8..=12, d in 29u8..=31) {
            let month = Month::try_from(m).unwrap();
            let valid = Date::from_calendar_date(y, month, d).is_ok();
            let s = format!("{m:02}/{d:02}/{y:04}");
            prop_assert_eq!(parse_date_param("starttime", Some(&s)).is_ok(), valid);
        }

        #[test]
        fn window_spans_whole_days(a in arb_date(), b in arb_date()) {
            let fa = format!("{:04}-{:02}-{:02}", a.year(), u8::from(a.month()), a.day());
            let fb = format!("{:04}-{:02}-{:02}", b.year(), u8::from(b.month()), b.day());
            match TimeWindow::from_params(Some(&fa), Some(&fb), NOW) {
                Ok(w) => {
                    prop_assert!(a <= b);
                    prop_assert_eq!(w.start(), midnight(a));
                    prop_assert_eq!(w.end(), midnight(b) + Duration::DAY);
                }
                Err(e) => {
                    prop_assert!(a > b);
                    prop_assert_eq!(e, DateParamError::InvalidSpan);
                }
            }
        }

        #[test]
        fn formatter_matches_components(secs in 0i64..253_402_300_799i64, nanos in 0u32..1_000_000_000) {
            let t = OffsetDateTime::from_unix_timestamp(secs).unwrap() + Duration::nanoseconds(i64::from(nanos));
            let s = format_rfc2822(t);
            prop_assert!(s.ends_with(" -0000"));
            prop_assert_eq!(s.len(), "Tue, 05 Mar 2024 13:07:09 -0000".len());
            let expected_day = format!("{:02}", t.day());
            prop_assert_eq!(&s[5..7], expected_day.as_str());
            let back = time::PrimitiveDateTime::parse(
                &s[..s.len() - 6],
                format_description!("[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second]"),
            ).unwrap().assume_utc();
            prop_assert_eq!(back.unix_timestamp(), t.unix_timestamp());
        }
    }
}
