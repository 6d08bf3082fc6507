//! Business hours (R14): `{"mon": [["08:00", "18:00"]], "sat": [["09:00", "13:00"]]}` in the
//! service's time zone. A day missing from the map is closed; a service without hours is
//! always open.

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::Value;

/// A service's weekly opening hours in its time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct BusinessHours {
    tz: Tz,
    /// Per weekday (Monday first), the open intervals, start < end.
    days: [Vec<(NaiveTime, NaiveTime)>; 7],
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl BusinessHours {
    /// Parses the stored JSON and time zone name; explains what is wrong.
    pub fn parse(hours: &Value, time_zone: &str) -> Result<Self, String> {
        let tz: Tz = time_zone.parse().map_err(|_| format!("unknown time zone {time_zone:?}"))?;
        let map = hours.as_object().ok_or("business_hours must be an object of days")?;
        let mut days: [Vec<(NaiveTime, NaiveTime)>; 7] = Default::default();
        for (key, intervals) in map {
            let i = DAYS.iter().position(|d| d == key).ok_or_else(|| format!("unknown day {key:?} (mon..sun)"))?;
            let list = intervals.as_array().ok_or_else(|| format!("{key}: expected a list of [start, end]"))?;
            for interval in list {
                let pair = interval
                    .as_array()
                    .filter(|p| p.len() == 2)
                    .ok_or_else(|| format!("{key}: expected [start, end]"))?;
                let time = |v: &Value| {
                    v.as_str()
                        .and_then(|s| NaiveTime::parse_from_str(s, "%H:%M").ok())
                        .ok_or_else(|| format!("{key}: times are \"HH:MM\""))
                };
                let (start, end) = (time(&pair[0])?, time(&pair[1])?);
                if start >= end {
                    return Err(format!("{key}: {start} is not before {end}"));
                }
                days[i].push((start, end));
            }
            days[i].sort();
        }
        Ok(Self { tz, days })
    }

    /// Whether the service is open at `at`.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.tz);
        let t = local.time();
        self.days[local.weekday().num_days_from_monday() as usize].iter().any(|(s, e)| *s <= t && t < *e)
    }

    /// The next instant the service opens after `at` (within two weeks), if it ever does.
    pub fn next_opening(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&self.tz);
        for offset in 0..15 {
            let date = local.date_naive() + Duration::days(offset);
            let day = date.weekday().num_days_from_monday() as usize;
            for (start, _) in &self.days[day] {
                let candidate = self.tz.from_local_datetime(&date.and_time(*start)).earliest()?.with_timezone(&Utc);
                if candidate > at {
                    return Some(candidate);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hours() -> BusinessHours {
        BusinessHours::parse(
            &json!({"mon": [["08:00", "12:00"], ["13:00", "18:00"]], "sat": [["09:00", "13:00"]]}),
            "America/Sao_Paulo",
        )
        .unwrap()
    }

    #[test]
    fn open_and_closed_in_the_services_time_zone() {
        let h = hours();
        // Monday 2026-03-02 11:00 in São Paulo is 14:00 UTC.
        assert!(h.is_open(Utc.with_ymd_and_hms(2026, 3, 2, 14, 0, 0).unwrap()));
        // 12:30 local: lunch break.
        assert!(!h.is_open(Utc.with_ymd_and_hms(2026, 3, 2, 15, 30, 0).unwrap()));
        // Sunday: closed all day.
        assert!(!h.is_open(Utc.with_ymd_and_hms(2026, 3, 1, 14, 0, 0).unwrap()));
    }

    #[test]
    fn next_opening_skips_closed_days() {
        let h = hours();
        // Saturday 2026-03-07 14:00 local (17:00 UTC) -> Monday 08:00 local (11:00 UTC).
        let at = Utc.with_ymd_and_hms(2026, 3, 7, 17, 0, 0).unwrap();
        assert_eq!(h.next_opening(at), Some(Utc.with_ymd_and_hms(2026, 3, 9, 11, 0, 0).unwrap()));
    }

    #[test]
    fn malformed_hours_are_explained() {
        assert!(BusinessHours::parse(&json!({"funday": []}), "UTC").unwrap_err().contains("funday"));
        assert!(BusinessHours::parse(&json!({"mon": [["18:00", "08:00"]]}), "UTC").is_err());
        assert!(BusinessHours::parse(&json!({}), "Mars/Base").unwrap_err().contains("time zone"));
    }
}
