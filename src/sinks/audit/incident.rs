//! The breach clock: incident records on the audit topic.
//!
//! When PHI is found where it should not be, HIPAA's breach-notification
//! clock runs from discovery: notice without unreasonable delay and no later
//! than 60 days after it (45 CFR 164.404(b)). `scrubs audit incident open`
//! records the discovery as an event on the audit topic, sealed into its own
//! hash chain (stream [`INCIDENT_STREAM`]), so that the record of when the
//! clock started is as tamper-evident as the access log itself; `close`
//! records the resolution the same way, and `list` reads the topic back
//! and shows each open incident with the days left.
//!
//! Record shapes (the `record` member of the audit payload, see
//! [`super::payload`]):
//!
//! ```text
//! {"kind":"incident","action":"open","id":"<16 hex>","discovered_at":"2026-12-06T10:00:00Z",
//!  "discovered_unix_nano":...,"notify_by":"2027-02-04T10:00:00Z","notify_by_unix_nano":...,
//!  "opened_by":"...","categories":["ssn","name"],"source":"visit-api","summary":"..."}
//! {"kind":"incident","action":"close","id":"<16 hex>","closed_at":"...","closed_unix_nano":...,
//!  "closed_by":"...","resolution":"..."}
//! ```
//!
//! The text fields are written by an operator and must not carry PHI: the
//! command refuses any that the rule engine would redact (the check is the
//! caller's, see `scrubs audit incident`). Each event's Kafka key is the
//! incident id, so an incident's records share a partition and stay in
//! order.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::verify::{read_all_partitions, reader_config};
use super::AuditConfig;
use crate::pipeline::AuditEvent;
use crate::Category;

/// The audit stream that incident records are sealed into.
pub const INCIDENT_STREAM: &str = "scrubs-incidents";

/// The latest a breach may be notified after its discovery (45 CFR
/// 164.404(b)).
pub const NOTIFY_WITHIN: Duration = Duration::from_secs(60 * 86_400);

const DAY_NANOS: i128 = 86_400 * 1_000_000_000;

/// What an operator states when opening an incident.
pub struct Opening {
    /// When the incident was discovered, Unix nanoseconds.
    pub discovered_unix_nano: u64,
    /// Who is recording it.
    pub opened_by: String,
    /// The PHI categories involved.
    pub categories: Vec<Category>,
    /// The source (service, sidecar, vendor) where the PHI was found.
    pub source: String,
    /// What happened, without PHI.
    pub summary: String,
}

impl fmt::Debug for Opening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opening")
            .field("discovered_unix_nano", &self.discovered_unix_nano)
            .field("categories", &self.categories)
            .field("summary_bytes", &self.summary.len())
            .finish_non_exhaustive()
    }
}

/// A fresh incident id: 16 random hex digits.
pub fn new_id() -> String {
    let n: u64 = rand::random();
    format!("{n:016x}")
}

/// The audit event that opens incident `id`.
pub fn open_event(id: &str, o: &Opening, now_unix_nano: u64) -> AuditEvent {
    let notify_by = o
        .discovered_unix_nano
        .saturating_add(NOTIFY_WITHIN.as_nanos() as u64);
    let categories: Vec<&str> = o.categories.iter().map(|c| c.as_str()).collect();
    event(
        id,
        now_unix_nano,
        json!({
            "kind": "incident",
            "action": "open",
            "id": id,
            "discovered_at": format_rfc3339(o.discovered_unix_nano),
            "discovered_unix_nano": o.discovered_unix_nano,
            "notify_by": format_rfc3339(notify_by),
            "notify_by_unix_nano": notify_by,
            "opened_by": o.opened_by,
            "categories": categories,
            "source": o.source,
            "summary": o.summary,
        }),
    )
}

/// The audit event that closes incident `id`.
pub fn close_event(id: &str, closed_by: &str, resolution: &str, now_unix_nano: u64) -> AuditEvent {
    event(
        id,
        now_unix_nano,
        json!({
            "kind": "incident",
            "action": "close",
            "id": id,
            "closed_at": format_rfc3339(now_unix_nano),
            "closed_unix_nano": now_unix_nano,
            "closed_by": closed_by,
            "resolution": resolution,
        }),
    )
}

fn event(id: &str, now_unix_nano: u64, record: serde_json::Value) -> AuditEvent {
    AuditEvent {
        source: "scrubs-incident".into(),
        stream: INCIDENT_STREAM.into(),
        key: Some(id.to_string()),
        time_unix_nano: now_unix_nano,
        record,
    }
}

/// An incident as the topic records it.
pub struct Incident {
    /// The incident id.
    pub id: String,
    /// When it was discovered, Unix nanoseconds.
    pub discovered_unix_nano: u64,
    /// The notification deadline, Unix nanoseconds.
    pub notify_by_unix_nano: u64,
    /// Who opened it.
    pub opened_by: String,
    /// PHI category names.
    pub categories: Vec<String>,
    /// Where the PHI was found.
    pub source: String,
    /// What happened.
    pub summary: String,
    /// The resolution, once closed.
    pub closed: Option<Closure>,
}

/// How an incident was closed.
pub struct Closure {
    /// When, Unix nanoseconds.
    pub at_unix_nano: u64,
    /// By whom.
    pub by: String,
    /// The resolution as recorded.
    pub resolution: String,
}

impl fmt::Debug for Incident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incident")
            .field("id", &self.id)
            .field("discovered_unix_nano", &self.discovered_unix_nano)
            .field("categories", &self.categories)
            .field("closed", &self.closed.is_some())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Closure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Closure")
            .field("at_unix_nano", &self.at_unix_nano)
            .finish_non_exhaustive()
    }
}

impl Incident {
    /// Days until the notification deadline, rounded up: 60 just after
    /// discovery, 1 on the last day, 0 or less once it has passed (then
    /// [`Incident::overdue`]).
    pub fn days_left(&self, now_unix_nano: u64) -> i64 {
        let left = i128::from(self.notify_by_unix_nano) - i128::from(now_unix_nano);
        (left + DAY_NANOS - 1).div_euclid(DAY_NANOS) as i64
    }

    /// Whether the notification deadline has passed.
    pub fn overdue(&self, now_unix_nano: u64) -> bool {
        now_unix_nano > self.notify_by_unix_nano
    }
}

/// The incidents found on the topic, in the order they were opened.
#[derive(Debug, Default)]
pub struct IncidentLog {
    incidents: Vec<Incident>,
    by_id: HashMap<String, usize>,
    /// Incident records that could not be read (a missing member, a close
    /// without its open): counted, not shown.
    pub unreadable: u64,
}

#[derive(Deserialize)]
struct Payload {
    stream: String,
    record: serde_json::Value,
}

impl IncidentLog {
    /// Takes one audit message's payload; anything that is not an incident
    /// record is ignored.
    pub fn push_payload(&mut self, payload: &[u8]) {
        let Ok(p) = serde_json::from_slice::<Payload>(payload) else {
            return;
        };
        if p.stream != INCIDENT_STREAM || p.record["kind"] != "incident" {
            return;
        }
        if !self.push_record(&p.record) {
            self.unreadable += 1;
        }
    }

    fn push_record(&mut self, r: &serde_json::Value) -> bool {
        let text = |k: &str| r[k].as_str().map(str::to_string);
        let num = |k: &str| r[k].as_u64();
        let Some(id) = text("id") else {
            return false;
        };
        match r["action"].as_str() {
            Some("open") => {
                let (Some(discovered), Some(notify_by)) =
                    (num("discovered_unix_nano"), num("notify_by_unix_nano"))
                else {
                    return false;
                };
                if self.by_id.contains_key(&id) {
                    // A re-sent copy (delivery is at least once).
                    return true;
                }
                let categories = r["categories"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|c| c.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                self.by_id.insert(id.clone(), self.incidents.len());
                self.incidents.push(Incident {
                    id,
                    discovered_unix_nano: discovered,
                    notify_by_unix_nano: notify_by,
                    opened_by: text("opened_by").unwrap_or_default(),
                    categories,
                    source: text("source").unwrap_or_default(),
                    summary: text("summary").unwrap_or_default(),
                    closed: None,
                });
                true
            }
            Some("close") => {
                let Some(&i) = self.by_id.get(&id) else {
                    return false;
                };
                let inc = &mut self.incidents[i];
                if inc.closed.is_none() {
                    inc.closed = Some(Closure {
                        at_unix_nano: num("closed_unix_nano").unwrap_or(0),
                        by: text("closed_by").unwrap_or_default(),
                        resolution: text("resolution").unwrap_or_default(),
                    });
                }
                true
            }
            _ => false,
        }
    }

    /// Every incident, open or closed, in the order they were opened.
    pub fn incidents(&self) -> &[Incident] {
        &self.incidents
    }

    /// The incident with this id.
    pub fn get(&self, id: &str) -> Option<&Incident> {
        self.by_id.get(id).map(|&i| &self.incidents[i])
    }
}

/// Reads every incident record on the audit topic of `cfg` (its brokers,
/// topic and security settings). Blocking.
pub fn read_incidents(cfg: &AuditConfig, idle_timeout: Duration) -> Result<IncidentLog, String> {
    let c = reader_config(&cfg.brokers, cfg.security.as_ref())?;
    let mut log = IncidentLog::default();
    read_all_partitions(c, &cfg.brokers, &cfg.topic, idle_timeout, |_, _, _, v| {
        if let Some(v) = v {
            log.push_payload(v);
        }
    })?;
    Ok(log)
}

/// Unix nanoseconds as an RFC 3339 UTC time with whole seconds
/// (`2026-12-06T10:00:00Z`).
pub fn format_rfc3339(unix_nano: u64) -> String {
    let secs = (unix_nano / 1_000_000_000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, the inverse of the parser's `days_from_civil`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::container::parse_rfc3339;
    use crate::sinks::audit::payload::Sealer;

    #[test]
    fn times_round_trip_through_the_parser() {
        for t in [
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59Z",
            "2026-12-06T10:00:00Z",
            "2027-02-04T10:00:00Z",
            "2100-03-01T00:00:01Z",
        ] {
            let n = parse_rfc3339(t.as_bytes()).unwrap();
            assert_eq!(format_rfc3339(n), t);
        }
    }

    fn payload(sealer: &mut Sealer, ev: &AuditEvent) -> Vec<u8> {
        sealer.seal(ev).payload
    }

    #[test]
    fn open_then_close_with_the_sixty_day_clock() {
        let discovered = parse_rfc3339(b"2026-12-06T10:00:00Z").unwrap();
        let o = Opening {
            discovered_unix_nano: discovered,
            opened_by: "oncall".into(),
            categories: vec![Category::Ssn, Category::Name],
            source: "visit-api".into(),
            summary: "unredacted identifiers reached the log vendor".into(),
        };
        let mut sealer = Sealer::new(None, "test", HashMap::new());
        let mut log = IncidentLog::default();
        let open = open_event("00000000000000aa", &o, discovered);
        assert_eq!(open.record["notify_by"], "2027-02-04T10:00:00Z");
        log.push_payload(&payload(&mut sealer, &open));
        // A second copy of the same record (at-least-once delivery) and a
        // record of another stream change nothing.
        log.push_payload(&payload(&mut sealer, &open));
        let mut other = open_event("00000000000000aa", &o, discovered);
        other.stream = "/var/log/app.log".into();
        log.push_payload(&payload(&mut sealer, &other));
        assert_eq!(log.incidents().len(), 1);
        let inc = log.get("00000000000000aa").unwrap();
        assert_eq!(inc.categories, ["ssn", "name"]);
        assert_eq!(inc.days_left(discovered), 60);
        assert_eq!(inc.days_left(discovered + 1), 60);
        let deadline = parse_rfc3339(b"2027-02-04T10:00:00Z").unwrap();
        assert_eq!(inc.days_left(deadline - 1), 1);
        assert!(!inc.overdue(deadline));
        assert!(inc.overdue(deadline + 1));
        assert_eq!(inc.days_left(deadline + 1), 0);
        let later = parse_rfc3339(b"2027-02-05T10:00:00Z").unwrap();
        assert_eq!(inc.days_left(later), -1);

        log.push_payload(&payload(
            &mut sealer,
            &close_event(
                "00000000000000aa",
                "privacy-officer",
                "vendor purged",
                later,
            ),
        ));
        let inc = log.get("00000000000000aa").unwrap();
        assert_eq!(inc.closed.as_ref().unwrap().by, "privacy-officer");
        // A close without its open is counted, not invented.
        log.push_payload(&payload(
            &mut sealer,
            &close_event("00000000000000bb", "x", "y", later),
        ));
        assert_eq!(log.unreadable, 1);
        assert_eq!(log.incidents().len(), 1);
    }

    #[test]
    fn debug_shows_no_operator_text() {
        let o = Opening {
            discovered_unix_nano: 1,
            opened_by: "someone".into(),
            categories: vec![Category::Email],
            source: "src".into(),
            summary: "summary text".into(),
        };
        let d = format!("{o:?}");
        assert!(!d.contains("summary text") && !d.contains("someone"), "{d}");
    }
}
