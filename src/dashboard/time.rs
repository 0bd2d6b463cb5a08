//! Times as people read them, rendered on the server (so pages read right without
//! JavaScript): "5 minutes ago", "in 7 days", and a full UTC date for a tooltip. The
//! browser may refine the full date to its own time zone.

use actix_web::cookie::time::{format_description::well_known::Rfc3339, Date, Month, OffsetDateTime};

/// "just now", "5 minutes ago", "in 3 hours", "2 days ago"…, relative to `now`.
pub fn relative(at: i64, now: i64) -> String {
    let (delta, future) = if at > now {
        (at - now, true)
    } else {
        (now - at, false)
    };
    if delta < 60 {
        // Clocks of replicas differ by a little: a minute either way is "now".
        return "just now".into();
    }
    let (n, unit) = match delta {
        d if d < 3600 => (d / 60, "minute"),
        d if d < 86_400 => (d / 3600, "hour"),
        d if d < 30 * 86_400 => (d / 86_400, "day"),
        d if d < 365 * 86_400 => (d / (30 * 86_400), "month"),
        d => (d / (365 * 86_400), "year"),
    };
    let plural = if n == 1 { "" } else { "s" };
    if future {
        format!("in {n} {unit}{plural}")
    } else {
        format!("{n} {unit}{plural} ago")
    }
}

/// "1 Dec 2026, 13:05 UTC".
pub fn absolute(at: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    match OffsetDateTime::from_unix_timestamp(at) {
        Ok(t) => format!(
            "{} {} {}, {:02}:{:02} UTC",
            t.day(),
            MONTHS[usize::from(u8::from(t.month())) - 1],
            t.year(),
            t.hour(),
            t.minute()
        ),
        Err(_) => "an unknown time".into(),
    }
}

/// RFC 3339, for `<time datetime>`.
pub fn machine(at: i64) -> String {
    OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// A time as a page shows it: relative text, full date, machine form.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShownTime {
    /// "5 minutes ago".
    pub relative: String,
    /// "1 Dec 2026, 13:05 UTC".
    pub absolute: String,
    /// RFC 3339.
    pub machine: String,
    /// Unix seconds.
    pub unix: i64,
}

impl ShownTime {
    /// `at` as seen at `now`.
    pub fn new(at: i64, now: i64) -> Self {
        Self {
            relative: relative(at, now),
            absolute: absolute(at),
            machine: machine(at),
            unix: at,
        }
    }
}

/// `YYYY-MM-DD` as a calendar date.
pub fn parse_date(s: &str) -> Option<Date> {
    let mut parts = s.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_digit());
    if !(digits(y, 4) && digits(m, 2) && digits(d, 2)) {
        return None;
    }
    let month = Month::try_from(m.parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()
}

/// Today in UTC (due dates are calendar dates; the browser may refine the words).
pub fn today() -> Date {
    OffsetDateTime::now_utc().date()
}

/// A due date as a page shows it: "today", "tomorrow", "Fri 4 Dec".
#[derive(Debug, Clone)]
pub struct DueDate {
    /// In words.
    pub text: String,
    /// `YYYY-MM-DD`.
    pub machine: String,
    /// Before today.
    pub overdue: bool,
    /// Days from today (negative: past).
    pub days: i64,
}

impl DueDate {
    /// `date` (`YYYY-MM-DD`) as seen on `today`; `None` if it is not a date.
    pub fn new(date: &str, today: Date) -> Option<Self> {
        let d = parse_date(date)?;
        let days = (d - today).whole_days();
        let text = match days {
            0 => "today".to_owned(),
            1 => "tomorrow".to_owned(),
            -1 => "yesterday".to_owned(),
            _ => {
                let weekday = &format!("{}", d.weekday())[..3];
                let month = &format!("{}", d.month())[..3];
                if d.year() == today.year() {
                    format!("{weekday} {} {month}", d.day())
                } else {
                    format!("{weekday} {} {month} {}", d.day(), d.year())
                }
            }
        };
        Some(Self {
            text,
            machine: date.to_owned(),
            overdue: days < 0,
            days,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_dates_read_naturally() {
        let today = parse_date("2026-12-01").expect("date");
        let text = |d: &str| DueDate::new(d, today).expect("due").text;
        assert_eq!(text("2026-12-01"), "today");
        assert_eq!(text("2026-12-02"), "tomorrow");
        assert_eq!(text("2026-11-30"), "yesterday");
        assert_eq!(text("2026-12-04"), "Fri 4 Dec");
        assert_eq!(text("2027-01-15"), "Fri 15 Jan 2027");
        assert!(DueDate::new("2026-11-20", today).expect("due").overdue);
        assert!(!DueDate::new("2026-12-01", today).expect("due").overdue);
        for bad in ["soon", "2026-02-30", "+202-01-01", "2026-+1-01", "2026-1-01"] {
            assert!(DueDate::new(bad, today).is_none(), "{bad}");
        }
    }

    #[test]
    fn relative_times_read_naturally() {
        let now = 1_764_590_000;
        assert_eq!(relative(now - 5, now), "just now");
        assert_eq!(relative(now - 60, now), "1 minute ago");
        assert_eq!(relative(now - 7_200, now), "2 hours ago");
        assert_eq!(relative(now - 3 * 86_400, now), "3 days ago");
        assert_eq!(relative(now + 7 * 86_400, now), "in 7 days");
        assert_eq!(relative(now + 30, now), "just now");
        assert_eq!(relative(now, now), "just now");
    }

    #[test]
    fn absolute_times_are_utc_and_unambiguous() {
        assert_eq!(absolute(0), "1 Jan 1970, 00:00 UTC");
        assert_eq!(absolute(1_764_597_900), "1 Dec 2025, 14:05 UTC");
        assert_eq!(machine(0), "1970-01-01T00:00:00Z");
    }
}
