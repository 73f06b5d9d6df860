//! Kvrocks' cron expressions (`bgsave-cron`, `compact-cron`, ...): groups of five fields,
//! minute hour day-of-month month day-of-week, in local time. A field is `*`, `*/n`, or a
//! comma list of numbers and `l-r` ranges. Several groups in one value mean "any of them".

/// One field of a schedule.
#[derive(Clone, Debug, PartialEq)]
enum Field {
    Any,
    Every(u32),
    /// Numbers and inclusive ranges.
    List(Vec<(u32, u32)>),
}

impl Field {
    fn parse(s: &str, min: u32, max: u32) -> Result<Field, String> {
        let number = |t: &str, what: &str| -> Result<u32, String> {
            t.parse::<u32>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| format!("{what} in a cron expression, between {min} and {max}"))
        };
        if s == "*" {
            return Ok(Field::Any);
        }
        if let Some(n) = s.strip_prefix("*/") {
            let n = number(n, "an integer is expected after `*/`")?;
            if n == 0 {
                return Err("interval value after `*/` cannot be zero".into());
            }
            return Ok(Field::Every(n));
        }
        let mut list = Vec::new();
        for part in s.split(',') {
            match part.split_once('-') {
                Some((l, r)) => {
                    let l = number(l, "an integer is expected before `-`")?;
                    let r = number(r, "an integer is expected after `-`")?;
                    if l >= r {
                        return Err(
                            "for pattern `l-r` in cron expression, r should be larger than l"
                                .into(),
                        );
                    }
                    list.push((l, r));
                }
                None => {
                    let n = number(part, "an integer is expected")?;
                    list.push((n, n));
                }
            }
        }
        Ok(Field::List(list))
    }

    /// `offset` is the field's first value (1 for days of the month and months), from which
    /// `*/n` counts, as in Kvrocks.
    fn matches(&self, v: u32, offset: u32) -> bool {
        match self {
            Field::Any => true,
            Field::Every(n) => v.saturating_sub(offset).is_multiple_of(*n),
            Field::List(list) => list.iter().any(|(l, r)| (*l..=*r).contains(&v)),
        }
    }
}

/// A parsed cron value: any of its five-field groups.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule(Vec<[Field; 5]>);

/// A local time, as the fields of a schedule see it.
#[derive(Clone, Copy, Debug)]
pub struct LocalTime {
    pub minute: u32,
    pub hour: u32,
    pub mday: u32,
    /// 1 to 12.
    pub month: u32,
    /// 0 (Sunday) to 6.
    pub wday: u32,
    /// Unix seconds, for telling minutes apart.
    pub unix: i64,
}

impl LocalTime {
    pub fn now() -> LocalTime {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let t = unix as libc::time_t;
        // SAFETY: localtime_r writes only into `tm`, which lives on this stack.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        unsafe { libc::localtime_r(&t, &mut tm) };
        LocalTime {
            minute: tm.tm_min as u32,
            hour: tm.tm_hour as u32,
            mday: tm.tm_mday as u32,
            month: tm.tm_mon as u32 + 1,
            wday: tm.tm_wday as u32,
            unix,
        }
    }

    /// The minute this time falls in, so that a schedule fires once per matching minute.
    pub fn minute_stamp(&self) -> i64 {
        self.unix.div_euclid(60)
    }
}

impl Schedule {
    /// None for an empty value (no schedule). Errors read like Kvrocks'.
    pub fn parse(text: &str) -> Result<Option<Schedule>, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.is_empty() {
            return Ok(None);
        }
        if !words.len().is_multiple_of(5) {
            return Err("cron expression format error, should only contain 5x fields".to_string());
        }
        let fail = |e: String| format!("cron expression format error: {e}");
        let mut groups = Vec::new();
        for g in words.chunks(5) {
            groups.push([
                Field::parse(g[0], 0, 59).map_err(fail)?,
                Field::parse(g[1], 0, 23).map_err(fail)?,
                Field::parse(g[2], 1, 31).map_err(fail)?,
                Field::parse(g[3], 1, 12).map_err(fail)?,
                Field::parse(g[4], 0, 6).map_err(fail)?,
            ]);
        }
        Ok(Some(Schedule(groups)))
    }

    pub fn matches(&self, t: &LocalTime) -> bool {
        self.0.iter().any(|[minute, hour, mday, month, wday]| {
            minute.matches(t.minute, 0)
                && hour.matches(t.hour, 0)
                && mday.matches(t.mday, 1)
                && month.matches(t.month, 1)
                && wday.matches(t.wday, 0)
        })
    }
}

/// The scheduled jobs, run every second by the maintenance thread: `bgsave-cron` and
/// `compact-cron` fire once in each matching minute, and the backup's retention rules apply.
#[derive(Default)]
pub struct Jobs {
    bgsave: Option<i64>,
    compact: Option<i64>,
    checker: Option<i64>,
}

impl Jobs {
    pub fn tick(&mut self, server: &crate::server::Server) {
        let now = LocalTime::now();
        let (bgsave, compact, mut checker, range) = {
            let cfg = server.config.read();
            (
                cfg.get("bgsave-cron").to_string(),
                cfg.get("compact-cron").to_string(),
                cfg.get("compaction-checker-cron").to_string(),
                cfg.get("compaction-checker-range").to_string(),
            )
        };
        // Kvrocks' older form: an hour range `a-b` means every minute of those hours.
        if checker.trim().is_empty() {
            if let Some((a, b)) = range.trim().split_once('-') {
                if a.parse::<u8>().is_ok_and(|a| a < 24) && b.parse::<u8>().is_ok_and(|b| b < 24) {
                    checker = format!("* {a}-{b} * * *");
                }
            }
        }
        if fires(&checker, &now, &mut self.checker) {
            check_compaction_in_background(server);
        }
        if fires(&bgsave, &now, &mut self.bgsave) {
            match crate::backup::bgsave(server) {
                Ok(()) => tracing::info!("scheduled backup (bgsave-cron) started"),
                Err(e) => tracing::warn!(error = %e, "scheduled backup (bgsave-cron) not started"),
            }
        }
        // As in Kvrocks, compact-cron gives way to compaction-checker-cron.
        if checker.trim().is_empty() && fires(&compact, &now, &mut self.compact) {
            compact_in_background(server);
        }
        crate::backup::retain(server);
    }
}

/// Whether `schedule` fires now: it matches, and has not fired in this minute yet.
fn fires(schedule: &str, now: &LocalTime, last: &mut Option<i64>) -> bool {
    let Ok(Some(s)) = Schedule::parse(schedule) else {
        return false;
    };
    if !s.matches(now) || *last == Some(now.minute_stamp()) {
        return false;
    }
    *last = Some(now.minute_stamp());
    true
}

/// Kvrocks' compaction checker, on its own thread: clients are never held up.
fn check_compaction_in_background(server: &crate::server::Server) {
    let Some(engine) = server.engine() else {
        return;
    };
    if engine.is_compacting() {
        return;
    }
    let (age, ratio) = {
        let cfg = server.config.read();
        (
            cfg.get_i64("force-compact-file-age").max(0) as u64,
            cfg.get_i64("force-compact-file-min-deleted-percentage") as f64 / 100.0,
        )
    };
    let _ = std::thread::Builder::new()
        .name("compaction-check".into())
        .spawn(move || {
            let started = std::time::Instant::now();
            let files = engine.check_compaction(std::time::Duration::from_secs(age), ratio);
            tracing::info!(
                files = files.len(),
                seconds = started.elapsed().as_secs(),
                "compaction checker done"
            );
        });
}

fn compact_in_background(server: &crate::server::Server) {
    let Some(engine) = server.engine() else {
        return;
    };
    if engine.is_compacting() {
        tracing::warn!("scheduled compaction (compact-cron) skipped: a compaction runs");
        return;
    }
    let _ = std::thread::Builder::new()
        .name("compact-cron".into())
        .spawn(move || {
            let started = std::time::Instant::now();
            tracing::info!("scheduled compaction (compact-cron) started");
            if engine.compact_all() {
                tracing::info!(
                    seconds = started.elapsed().as_secs(),
                    "scheduled compaction finished"
                );
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: u32, hour: u32, mday: u32, month: u32, wday: u32) -> LocalTime {
        LocalTime {
            minute,
            hour,
            mday,
            month,
            wday,
            unix: 0,
        }
    }

    #[test]
    fn kvrocks_expressions_parse_and_match() {
        assert_eq!(Schedule::parse("").unwrap(), None);
        let s = Schedule::parse("0 3 * * *").unwrap().unwrap();
        assert!(s.matches(&at(0, 3, 17, 5, 2)));
        assert!(!s.matches(&at(1, 3, 17, 5, 2)));
        let s = Schedule::parse("*/15 1-3,7 * * 0").unwrap().unwrap();
        assert!(s.matches(&at(30, 2, 1, 1, 0)));
        assert!(s.matches(&at(45, 7, 1, 1, 0)));
        assert!(!s.matches(&at(30, 4, 1, 1, 0)));
        assert!(!s.matches(&at(30, 2, 1, 1, 1)));
        // Days of the month and months count `*/n` from 1.
        let s = Schedule::parse("0 0 */10 */2 *").unwrap().unwrap();
        assert!(s.matches(&at(0, 0, 11, 3, 4)));
        assert!(!s.matches(&at(0, 0, 10, 3, 4)));
        // Two groups: either.
        let s = Schedule::parse("0 3 * * * 30 4 * * *").unwrap().unwrap();
        assert!(s.matches(&at(30, 4, 9, 9, 3)));
    }

    #[test]
    fn bad_expressions_are_refused_with_kvrocks_texts() {
        assert_eq!(
            Schedule::parse("0 3 * *").unwrap_err(),
            "cron expression format error, should only contain 5x fields"
        );
        for bad in [
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "*/0 * * * *",
            "5-5 * * * *",
            "a * * * *",
        ] {
            let e = Schedule::parse(bad).unwrap_err();
            assert!(
                e.starts_with("cron expression format error: "),
                "{bad}: {e}"
            );
        }
    }
}
