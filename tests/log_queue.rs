//! The access log never makes a request wait. The log is a FIFO whose reader stops reading,
//! so the writer thread blocks in `write()`; a flood of requests on one client connection is
//! still answered in full, the records that found the writer's queue full are dropped and
//! counted (`hopproxy_log_records_dropped_total`, one stderr line when the losses start and
//! one with their count when writing works again), and once the reader reads again every
//! record is either in the log, whole, or counted as dropped. Loopback block 127.0.23.0/24.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Hop, keep_root, parse_log_line};

/// More records than can ever be held without dropping any while nobody reads: the pipe
/// (64 KiB, about 700 lines), the batch the blocked writer holds (at most a queue's worth) and
/// the queue (65,536 records). So at least 8,000 are dropped, however the threads are scheduled.
const FLOOD: usize = 140_000;

/// A request the proxy answers itself (it is the final recipient of an OPTIONS with
/// `Max-Forwards: 0`), keeping the connection: one log line, no upstream.
fn options(host: &str) -> String {
    format!("OPTIONS http://{host}/ HTTP/1.1\r\nHost: {host}\r\nMax-Forwards: 0\r\n\r\n")
}

/// Sends `count` pipelined requests on one connection to `proxy` and counts the `200`
/// answers (each a head only: `Content-Length: 0`). Panics on any other answer.
fn flood(proxy: SocketAddr, request: &str, count: usize) -> usize {
    let stream = TcpStream::connect_timeout(&proxy, Duration::from_secs(5)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let requests = request.repeat(1000);
    let sender = std::thread::spawn(move || {
        for _ in 0..count / 1000 {
            writer.write_all(requests.as_bytes()).unwrap();
        }
    });
    let mut reader = BufReader::new(stream);
    let mut answered = 0;
    let mut line = String::new();
    while answered < count {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if line.starts_with("HTTP/") {
            assert!(line.starts_with("HTTP/1.1 200 "), "answer {answered}: {line}");
            answered += 1;
        }
    }
    sender.join().unwrap();
    answered
}

/// `GET /metrics` on the metrics port; the value of `series`.
fn metric(addr: SocketAddr, series: &str) -> Option<u64> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn a_full_log_queue_drops_and_counts_records_and_never_stalls_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("access.fifo");
    mkfifo(&fifo);
    // Opening a FIFO's read end waits for its writer: the proxy opens the log at start-up.
    let (opened, reader_end) = std::sync::mpsc::channel();
    let path = fifo.clone();
    std::thread::spawn(move || {
        let _ = opened.send(std::fs::File::open(path));
    });
    let proxy: SocketAddr = "127.0.23.10:31280".parse().unwrap();
    let metrics: SocketAddr = "127.0.23.11:31280".parse().unwrap();
    let config = keep_root(&format!(
        "http_port {proxy}\naccess_log stdio:{} squid\nvisible_hostname queue.test\n\
         shutdown_lifetime 3 seconds\nmetrics_port {metrics}\nhttp_access allow all\n",
        fifo.display()
    ));
    let hop = Hop::start("queue", dir.path(), proxy, &config);
    let fifo_reader = reader_end
        .recv_timeout(Duration::from_secs(10))
        .expect("the proxy opened its log")
        .unwrap();

    // Nobody reads the FIFO: the writer blocks once the pipe is full, then its queue fills.
    let started = Instant::now();
    let answered = flood(proxy, &options("flood.invalid"), FLOOD);
    assert_eq!(answered, FLOOD, "every request is answered while the log is stuck");
    // Not a timing claim: a bound proving no request waited for the log (the writer is
    // still blocked now, so a request that waited would never have been answered).
    assert!(started.elapsed() < Duration::from_secs(240), "{:?}", started.elapsed());
    let dropped_series = "hopproxy_log_records_dropped_total";
    let dropped = metric(metrics, dropped_series).expect("the metrics endpoint answers");
    assert!(dropped >= 8_000, "{dropped} dropped: the queue never filled");
    assert!(dropped < FLOOD as u64, "{dropped}");

    // The reader comes back: what was queued reaches the log, whole lines only.
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(fifo_reader).lines() {
            let Ok(line) = line else { return };
            sink.lock().unwrap().push(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let logged = lines.lock().unwrap().len() as u64;
        let dropped = metric(metrics, dropped_series).unwrap_or(0);
        if logged + dropped >= FLOOD as u64 {
            assert_eq!(logged + dropped, FLOOD as u64, "each record logged or counted, once");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{logged} logged + {dropped} dropped of {FLOOD}\n{}",
            hop.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let dropped = metric(metrics, dropped_series).unwrap();
    for line in lines.lock().unwrap().iter() {
        let line = parse_log_line(line);
        assert_eq!(
            (line.code.as_str(), line.method.as_str(), line.url.as_str()),
            ("TCP_MISS/200", "OPTIONS", "http://flood.invalid/")
        );
    }

    // The operator was told once when the losses began and once, with the count, when
    // writing worked again.
    let stderr = hop.wait_for_stderr("its queue was full");
    assert_eq!(
        stderr.matches("losing records until it works again").count(),
        1,
        "{stderr}"
    );
    let stderr = hop.wait_for_stderr("writing again after losing");
    assert!(
        stderr.contains(&format!("writing again after losing {dropped} records")),
        "{dropped} dropped:\n{stderr}"
    );

    // Logging goes on.
    assert_eq!(flood(proxy, &options("after.invalid"), 1000), 1000);
    let deadline = Instant::now() + Duration::from_secs(10);
    while lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("http://after.invalid/"))
        .count()
        < 1000
    {
        assert!(Instant::now() < deadline, "logging did not resume");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(metric(metrics, dropped_series), Some(dropped), "nothing dropped after");
}
