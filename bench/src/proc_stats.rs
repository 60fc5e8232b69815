//! Process statistics read from `/proc` (CPU time, resident memory, open
//! file limit) and raising this process's own file descriptor limit.
//!
//! CPU time is `utime + stime` from `/proc/PID/stat`, in clock ticks
//! (`sysconf(_SC_CLK_TCK)`, usually 100 per second); resident memory is
//! `VmRSS` from `/proc/PID/status`.

use std::io;

/// One reading of a process's CPU time and resident memory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Sample {
    /// User plus system CPU time so far, in seconds.
    pub(crate) cpu_s: f64,
    /// System (kernel) CPU time so far, in seconds.
    pub(crate) sys_s: f64,
    /// Resident set size, in KiB.
    pub(crate) rss_kib: u64,
}

/// What a process used between two samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Usage {
    /// CPU seconds spent between the two samples.
    pub(crate) cpu_s: f64,
    /// Of which in the kernel (system time).
    pub(crate) sys_s: f64,
    /// Resident set size at the first sample, in KiB.
    pub(crate) rss_before_kib: u64,
    /// Resident set size at the second sample, in KiB.
    pub(crate) rss_after_kib: u64,
}

impl Usage {
    /// The usage between `before` and `after`.
    pub(crate) fn between(before: Sample, after: Sample) -> Usage {
        Usage {
            cpu_s: (after.cpu_s - before.cpu_s).max(0.0),
            sys_s: (after.sys_s - before.sys_s).max(0.0),
            rss_before_kib: before.rss_kib,
            rss_after_kib: after.rss_kib,
        }
    }
}

/// Watches one process (the server under test, or this process).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProcWatch {
    pid: u32,
    ticks_per_s: f64,
}

impl ProcWatch {
    /// Watch process `pid`; fails if it cannot be read now.
    pub(crate) fn new(pid: u32) -> io::Result<ProcWatch> {
        let watch = ProcWatch {
            pid,
            ticks_per_s: clock_ticks_per_second(),
        };
        watch.sample()?;
        Ok(watch)
    }

    /// Watch this process.
    pub(crate) fn this_process() -> io::Result<ProcWatch> {
        ProcWatch::new(std::process::id())
    }

    /// The watched process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Read CPU time and RSS now.
    pub(crate) fn sample(&self) -> io::Result<Sample> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let (utime, stime) =
            parse_stat_cpu_ticks(&stat).ok_or_else(|| invalid("/proc/PID/stat"))?;
        let rss_kib = parse_status_rss_kib(&status).ok_or_else(|| invalid("/proc/PID/status"))?;
        Ok(Sample {
            cpu_s: (utime + stime) as f64 / self.ticks_per_s,
            sys_s: stime as f64 / self.ticks_per_s,
            rss_kib,
        })
    }

    /// The soft "Max open files" limit of the watched process, if readable.
    pub(crate) fn open_files_limit(&self) -> Option<u64> {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.pid)).ok()?;
        parse_limits_open_files(&limits)
    }

    /// How many threads the watched process has, if readable.
    pub(crate) fn threads(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|l| l.starts_with("Threads:"))?;
        line["Threads:".len()..].trim().parse().ok()
    }

    /// How many file descriptors the watched process has open, if readable.
    pub(crate) fn open_files(&self) -> Option<usize> {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .ok()
            .map(|dir| dir.count())
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("cannot parse {what}"))
}

/// `sysconf(_SC_CLK_TCK)`, falling back to 100.
pub(crate) fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions and only reads configuration.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// `(utime, stime)` (fields 14 and 15, in clock ticks) from the text of
/// `/proc/PID/stat`.
///
/// The command name (field 2) is in parentheses and may itself contain
/// spaces and parentheses, so fields are counted after the last `)`.
pub(crate) fn parse_stat_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // After the name come field 3 (state) onwards: utime is field 14, the
    // 12th field after the name.
    let mut fields = after_comm.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// `VmRSS` in KiB from the text of `/proc/PID/status`.
pub(crate) fn parse_status_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The soft limit on the "Max open files" line of `/proc/PID/limits`.
pub(crate) fn parse_limits_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Raise this process's `RLIMIT_NOFILE` soft limit to its hard limit and
/// return the new soft limit.
pub(crate) fn raise_fd_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: `limit` is a valid rlimit with cur <= max.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_ticks_after_a_tricky_command_name() {
        // Fields: pid (comm) state ppid pgrp session tty tpgid flags minflt
        // cminflt majflt cmajflt utime stime ...
        let stat = "4242 (my (odd) server) S 1 4242 4242 0 -1 4194560 1500 0 3 0 250 75 0 0 20 0 9 0 1234 56789 1024";
        assert_eq!(parse_stat_cpu_ticks(stat), Some((250, 75)));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
        assert_eq!(parse_stat_cpu_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn parses_rss_and_open_files_limit() {
        let status = "Name:\tfawkes\nVmPeak:\t  200000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_status_rss_kib(status), Some(12345));
        assert_eq!(parse_status_rss_kib("Name:\tkthread\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             95000                95000                processes \n\
                      Max open files            20000                20000                files     \n";
        assert_eq!(parse_limits_open_files(limits), Some(20000));
    }

    #[test]
    fn reads_this_process() {
        let watch = ProcWatch::this_process().expect("own /proc entry");
        let sample = watch.sample().expect("sample");
        assert!(sample.rss_kib > 0);
        assert!(sample.cpu_s >= 0.0);
        assert!(watch.open_files().unwrap_or(0) > 0);
    }
}
