//! CPU time and resident memory of a process and its descendants, from /proc.
//!
//! Descendants count because a proxy may run helpers (Squid's pinger, log daemons); the
//! figures are "what this proxy costs the machine".

use std::fs;
use std::sync::OnceLock;

/// Clock ticks per second for /proc/PID/stat (`getconf CLK_TCK`; Linux is 100 everywhere we run).
pub fn clk_tck() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// Fields after the `(comm)` of /proc/PID/stat; comm may contain spaces and parentheses.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// utime + stime of one process, in clock ticks (stat fields 14 and 15).
fn cpu_ticks_of(pid: u32) -> u64 {
    stat_fields(pid)
        .map(|f| {
            // After comm: [0]=state [1]=ppid … [11]=utime [12]=stime.
            let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            get(11) + get(12)
        })
        .unwrap_or(0)
}

fn ppid_of(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// `pid` and every live descendant.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut all: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            if let Some(p) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok())
                && let Some(pp) = ppid_of(p)
            {
                all.push((p, pp));
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    // Bounded: each pass adds only children of pids already found, and pids are unique.
    while i < out.len() && out.len() <= all.len() + 1 {
        let parent = out[i];
        out.extend(all.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    out
}

/// CPU ticks of the given processes and all their descendants.
pub fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter().flat_map(|&p| tree(p)).map(cpu_ticks_of).sum()
}

/// VmRSS in KiB of the given processes and all their descendants.
pub fn rss_kib(pids: &[u32]) -> u64 {
    pids.iter().flat_map(|&p| tree(p)).map(rss_kib_of).sum()
}

fn rss_kib_of(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Busy ticks of the whole machine so far (all CPUs, /proc/stat: user, nice, system, steal).
/// irq/softirq are left out: loopback traffic is largely softirq work that the kernel may not
/// charge to our processes, and counting it would blame "others" for our own packets.
pub fn machine_busy_ticks() -> u64 {
    let text = fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal …
    [0, 1, 2, 7].iter().filter_map(|&i| v.get(i)).sum()
}

/// CPU ticks of this process plus its reaped children (the proxies, once stopped).
pub fn own_ticks() -> u64 {
    stat_fields(std::process::id())
        .map(|f| (11..=14).filter_map(|i| f.get(i)?.parse::<u64>().ok()).sum())
        .unwrap_or(0)
}

/// The soft limit on open files, to size the idle test to what this process may hold.
pub fn nofile_limit() -> Option<u64> {
    let text = fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_and_rss() {
        let me = std::process::id();
        assert!(rss_kib(&[me]) > 0);
        assert!(tree(me).contains(&me));
        let _ = cpu_ticks(&[me]);
        assert!(clk_tck() > 0);
        assert!(nofile_limit().unwrap_or(1) > 0);
    }
}
