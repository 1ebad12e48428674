//! Per-call-minute aggregates: samples grouped by (call, minute of record
//! time); a closed minute is good when its mean (or max) is under the
//! threshold.

use std::collections::HashMap;
use std::fmt;

use super::config::MinuteStat;
use super::registry::SeriesRef;

const MINUTE_NS: i64 = 60_000_000_000;

struct Acc {
    minute: i64,
    sum: f64,
    n: u32,
    max: f64,
    seen_ns: i64,
    /// The `_total` and `_good_total` series.
    series: (SeriesRef, SeriesRef),
}

/// A closed call-minute: its series and whether it was good.
#[derive(Debug, PartialEq)]
pub(crate) struct Closed {
    pub(crate) series: (SeriesRef, SeriesRef),
    pub(crate) good: bool,
}

/// What became of a sample.
#[derive(Debug, PartialEq)]
pub(crate) enum Sample {
    Added,
    /// The call's previous minute closed.
    Rolled(Closed),
    CapHit,
}

/// The open minutes of one call-minute signal: one per call.
pub(crate) struct Minutes {
    threshold: f64,
    stat: MinuteStat,
    idle_ns: i64,
    cap: usize,
    open: HashMap<u128, Acc>,
}

impl fmt::Debug for Minutes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Minutes")
            .field("open", &self.open.len())
            .field("cap", &self.cap)
            .finish()
    }
}

impl Minutes {
    pub(crate) fn new(threshold: f64, stat: MinuteStat, idle_ns: i64, cap: usize) -> Minutes {
        Minutes {
            threshold,
            stat,
            idle_ns,
            cap,
            open: HashMap::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.open.len()
    }

    fn close(&self, a: &Acc) -> Closed {
        let v = match self.stat {
            MinuteStat::Mean => a.sum / f64::from(a.n.max(1)),
            MinuteStat::Max => a.max,
        };
        Closed {
            series: a.series,
            good: v < self.threshold,
        }
    }

    /// Adds a sample `v` of call `key` at record time `t_ns`. A sample from
    /// an earlier minute than the call's open one joins the open one.
    pub(crate) fn sample(
        &mut self,
        key: u128,
        t_ns: i64,
        now_ns: i64,
        v: f64,
        series: (SeriesRef, SeriesRef),
    ) -> Sample {
        let minute = t_ns.div_euclid(MINUTE_NS);
        let fresh = Acc {
            minute,
            sum: v,
            n: 1,
            max: v,
            seen_ns: now_ns,
            series,
        };
        let full = self.open.len() >= self.cap;
        match self.open.get_mut(&key) {
            Some(a) if minute > a.minute => {
                let old = std::mem::replace(a, fresh);
                Sample::Rolled(self.close(&old))
            }
            Some(a) => {
                a.sum += v;
                a.n += 1;
                a.max = a.max.max(v);
                a.seen_ns = now_ns;
                Sample::Added
            }
            None if full => Sample::CapHit,
            None => {
                self.open.insert(key, fresh);
                Sample::Added
            }
        }
    }

    /// Closes the minutes of calls idle for longer than `idle` (by the
    /// caller's clock), or whose minute ended more than `idle` before the
    /// newest record time seen (`watermark_ns`).
    pub(crate) fn expire(&mut self, now_ns: i64, watermark_ns: i64, mut f: impl FnMut(Closed)) {
        let idle = self.idle_ns;
        let mut closed = Vec::new();
        self.open.retain(|_, a| {
            let minute_end = a.minute.saturating_add(1).saturating_mul(MINUTE_NS);
            let done = now_ns.saturating_sub(a.seen_ns) > idle
                || watermark_ns.saturating_sub(minute_end) > idle;
            if done {
                closed.push((a.sum, a.n, a.max, a.series));
            }
            !done
        });
        for (sum, n, max, series) in closed {
            let a = Acc {
                minute: 0,
                sum,
                n,
                max,
                seen_ns: 0,
                series,
            };
            f(self.close(&a));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_roll_and_expire() {
        let s = ((0, 0), (1, 0));
        let mut m = Minutes::new(2.0, MinuteStat::Mean, 90_000_000_000, 10);
        assert_eq!(m.sample(7, 0, 0, 1.0, s), Sample::Added);
        assert_eq!(m.sample(7, 30 * 1_000_000_000, 0, 2.5, s), Sample::Added);
        // mean 1.75 < 2: good.
        assert_eq!(
            m.sample(7, MINUTE_NS, 0, 5.0, s),
            Sample::Rolled(Closed {
                series: s,
                good: true
            })
        );
        let mut got = Vec::new();
        m.expire(10 * MINUTE_NS, 0, |c| got.push(c.good));
        assert_eq!(got, vec![false]);
        assert_eq!(m.len(), 0);

        let mut m = Minutes::new(2.0, MinuteStat::Max, MINUTE_NS, 1);
        m.sample(1, 0, 0, 1.0, s);
        assert_eq!(m.sample(2, 0, 0, 1.0, s), Sample::CapHit);
        m.sample(1, 1, 0, 3.0, s);
        let mut got = Vec::new();
        m.expire(0, 3 * MINUTE_NS, |c| got.push(c.good));
        assert_eq!(got, vec![false]);
    }
}
