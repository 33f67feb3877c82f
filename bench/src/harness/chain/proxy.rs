//! One proxy process: spawn, wait until it accepts connections, stop by pid.
//! The guard kills the process on drop, so an error, a panic or Ctrl-C never leaves it behind.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct ProxyProc {
    pub name: String,
    pub listen: SocketAddr,
    child: Option<Child>,
    stderr_path: PathBuf,
    terminated: bool,
}

/// How long a proxy may take to start listening (Squid needs about a second).
const READY_TIMEOUT: Duration = Duration::from_secs(15);

impl ProxyProc {
    /// Starts `program args…` with stdout/stderr in `dir/NAME.out`.
    pub fn spawn(name: &str, program: &Path, args: &[&str], listen: SocketAddr, dir: &Path) -> Result<Self, String> {
        let stderr_path = dir.join(format!("{name}.out"));
        let out = File::create(&stderr_path).map_err(|e| format!("{}: {e}", stderr_path.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        Ok(ProxyProc {
            name: name.to_string(),
            listen,
            child: Some(child),
            stderr_path,
            terminated: false,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Polls until the listen address accepts a connection; fails if the process exits first.
    pub async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!("{} exited ({status}): {}", self.name, self.output_tail()));
            }
            if let Ok(Ok(_probe)) =
                tokio::time::timeout(Duration::from_millis(200), tokio::net::TcpStream::connect(self.listen)).await
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "{} did not listen on {} within {READY_TIMEOUT:?}: {}",
            self.name,
            self.listen,
            self.output_tail()
        ))
    }

    /// Sends SIGTERM (by pid, once), so several proxies can shut down at the same time.
    pub fn terminate(&mut self) {
        if let Some(child) = &self.child
            && !self.terminated
        {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            self.terminated = true;
        }
    }

    /// SIGTERM, then SIGKILL after `grace`. Squid with `shutdown_lifetime 1 seconds` exits
    /// within about a second of SIGTERM.
    pub async fn stop(mut self, grace: Duration) {
        self.terminate();
        let Some(mut child) = self.child.take() else { return };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Last lines of the process's output, for error messages.
    pub fn output_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
        if tail.is_empty() { "no output".into() } else { tail }
    }
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
