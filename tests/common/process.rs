//! Processes the tests start: a registry that ends them all (process groups included) when
//! a test ends or the watchdog fires, ports, and waiting for readiness.
#![allow(unused_imports)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use reqwest::cookie::{CookieStore, Jar};
use reqwest::redirect::Policy;
use serde_json::Value;

use super::*;

pub fn testenv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testenv")
}

/// Sends `sig` to one process, by syscall. Refuses ids that would mean "many processes".
pub fn signal(pid: u32, sig: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        if pid > 1 {
            // SAFETY: kill(2) with a positive id signals exactly that process.
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }
}

/// Sends `sig` to a whole process group, by syscall; never group 0 or 1.
pub fn signal_group(pgid: u32, sig: i32) {
    if let Ok(pgid) = i32::try_from(pgid) {
        if pgid > 1 {
            // SAFETY: kill(2) with a negative id signals exactly that process group.
            unsafe {
                libc::kill(-pgid, sig);
            }
        }
    }
}

/// A child process stopped (and reaped) on drop.
pub struct Proc {
    child: Child,
    pub name: &'static str,
}

/// What the watchdog needs to know of a running child: its pid, whether it leads a process
/// group of its own (stopped as a group), and a log worth showing.
pub struct Registered {
    pid: u32,
    name: &'static str,
    group: bool,
    log: Option<PathBuf>,
}

/// Every child the harness has started and not yet stopped.
pub static CHILDREN: Mutex<Vec<Registered>> = Mutex::new(Vec::new());

pub fn register(child: &Child, name: &'static str, group: bool, log: Option<PathBuf>) {
    watchdog();
    if let Ok(mut list) = CHILDREN.lock() {
        list.push(Registered {
            pid: child.id(),
            name,
            group,
            log,
        });
    }
}

pub fn unregister(pid: u32) {
    if let Ok(mut list) = CHILDREN.lock() {
        list.retain(|r| r.pid != pid);
    }
}

/// A limit on the whole test binary (`AUTHGATE_TEST_LIMIT` seconds, default 600). A test
/// that hangs would otherwise hold CI until its own timeout, with nothing said about where.
/// When the limit passes, this prints every thread's stack (gdb attached to this process;
/// libtest names each thread after its test), what each child was and the tail of its log,
/// stops the children, and exits with 124.
pub fn watchdog() {
    static START: Once = Once::new();
    START.call_once(|| {
        let limit = std::env::var("AUTHGATE_TEST_LIMIT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(600u64);
        std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                std::thread::sleep(Duration::from_secs(limit));
                watchdog_fire(limit);
            })
            .expect("start the watchdog thread");
    });
}

pub fn watchdog_fire(limit: u64) -> ! {
    let me = std::env::args().next().unwrap_or_default();
    eprintln!("\nwatchdog: {me} still running after {limit} s: the stacks of its threads:");
    let gdb = Command::new("gdb")
        .args(["-p", &std::process::id().to_string(), "-batch", "-nx"])
        .args([
            "-ex",
            "set print frame-arguments none",
            "-ex",
            "info threads",
        ])
        .args(["-ex", "thread apply all bt 40"])
        .stdin(Stdio::null())
        .spawn();
    match gdb {
        Ok(mut gdb) => {
            let deadline = Instant::now() + Duration::from_secs(60);
            while matches!(gdb.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = gdb.kill();
            let _ = gdb.wait();
        }
        Err(e) => eprintln!("watchdog: gdb did not start ({e}); no stacks"),
    }
    let children = CHILDREN
        .lock()
        .map(|l| {
            l.iter()
                .map(|r| (r.pid, r.name, r.group, r.log.clone()))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for (pid, name, group, log) in children {
        eprintln!("watchdog: child {name} (pid {pid}) was still running");
        if let Some(text) = log.and_then(|l| std::fs::read_to_string(l).ok()) {
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!(
                "watchdog: the last lines of {name}'s log:\n{}",
                tail.join("\n")
            );
        }
        if group {
            signal_group(pid, libc::SIGKILL);
        } else {
            signal(pid, libc::SIGKILL);
        }
    }
    std::process::exit(124);
}

impl Proc {
    /// Takes charge of `child`: stopped on drop, and by the watchdog if the binary hangs.
    pub fn new(child: Child, name: &'static str) -> Self {
        register(&child, name, false, None);
        Self { child, name }
    }

    /// As `new`, for a child that leads its own process group (the watchdog stops the group).
    pub fn group_leader(child: Child, name: &'static str) -> Self {
        register(&child, name, true, None);
        Self { child, name }
    }

    /// As `new`, with a log file the watchdog shows if the binary hangs.
    pub fn logging_to(child: Child, name: &'static str, log: PathBuf) -> Self {
        register(&child, name, false, Some(log));
        Self { child, name }
    }

    /// Sends SIGTERM (a graceful stop) and waits up to `limit` for the exit.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        signal(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // nginx's workers outlive a SIGKILLed master: stop it the way it wants to be stopped.
        if !(self.name == "nginx" && self.terminate(Duration::from_secs(5)).is_some()) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        unregister(self.child.id());
    }
}

/// A free port for a server that cannot report its own (the gateway, nginx, php).
///
/// Taken from *below* the kernel's ephemeral range, so that between this check and the
/// server's own bind nothing else can take it: every server started with port 0 and every
/// outgoing connection's local port comes from the ephemeral range. (A port handed out
/// from that range could be taken by a test running in parallel, or by a connection to
/// the port itself while nothing listens yet: a TCP self-connect that looks like a server.)
/// Each binary starts at its own offset; within a binary no port is handed out twice.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    watchdog();
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (first, span) = (10_000u32, low.saturating_sub(10_000).max(1_000));
    let offset = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = first + (offset + n) % span;
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!(
        "no free port below the ephemeral range ({first}..{})",
        first + span
    );
}

/// What the kernel says a process is doing: its state, threads and wait channel.
pub fn process_state(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or("?")
            .to_string()
    };
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    // Each thread: its name and where the kernel has it waiting.
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.flatten()
                .map(|t| {
                    let read = |f: &str| {
                        std::fs::read_to_string(t.path().join(f))
                            .unwrap_or_default()
                            .trim()
                            .to_string()
                    };
                    format!("{} in {}", read("comm"), read("wchan"))
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    format!(
        "state {}, {} threads, waiting in {:?} (threads: {threads})",
        field("State:"),
        field("Threads:"),
        wchan
    )
}

/// Prints the native stacks of every thread of `pid` (gdb, at most 30 s): what a stuck peer
/// was doing, for the log.
pub fn print_native_stacks(pid: u32) {
    eprintln!("harness: native stacks of pid {pid}:");
    let gdb = Command::new("gdb")
        .args(["-p", &pid.to_string(), "-batch", "-nx"])
        .args(["-ex", "set print frame-arguments none"])
        .args(["-ex", "thread apply all bt 25"])
        .stdin(Stdio::null())
        .spawn();
    let Ok(mut gdb) = gdb else {
        eprintln!("harness: gdb did not start; no stacks");
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while matches!(gdb.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = gdb.kill();
    let _ = gdb.wait();
}

pub fn write_file(path: &std::path::Path, text: &str) {
    let mut f = std::fs::File::create(path).expect("create");
    f.write_all(text.as_bytes()).expect("write");
}

/// Waits until something accepts TCP connections on `port` (a server that cannot report
/// readiness itself, like nginx).
pub fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(25));
    }
}
