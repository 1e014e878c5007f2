//! Private store processes. A [`PostgresServer`] is a cluster in a data directory of
//! ours, initialised on first use and reused afterwards; a [`RedisServer`] is a child
//! process. PostgreSQL refuses to run as root, so when we are root its commands run as
//! the `postgres` user (through `runuser`) and its directory is handed to that user.

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A free TCP port on the loopback interface (the kernel's pick for port 0).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn am_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The directory of the newest installed PostgreSQL server binaries.
pub fn postgres_bin_dir() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (/usr/lib/postgresql is missing): apt-get install postgresql")?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, p)| p)
        .context("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
}

/// A private PostgreSQL cluster. Dropping it stops the server.
#[derive(Debug)]
pub struct PostgresServer {
    /// The cluster's data directory (kept between runs).
    data_dir: PathBuf,
    /// Directory of the server's Unix socket and log.
    run_dir: PathBuf,
    /// Where it listens on 127.0.0.1.
    port: u16,
    /// Server binaries.
    bin: PathBuf,
    /// Whether commands must run as the `postgres` user.
    as_postgres: bool,
    /// Whether `Drop` stops the server (false once stopped explicitly).
    running: bool,
}

impl PostgresServer {
    /// Initialises `dir` on first use, then starts the server on `port` and waits until
    /// it accepts connections. `durable` false turns off fsync (tests only).
    pub fn start(dir: &Path, port: u16, durable: bool) -> anyhow::Result<Self> {
        let bin = postgres_bin_dir()?;
        let as_postgres = am_root();
        std::fs::create_dir_all(dir)?;
        let data_dir = dir.join("data");
        let run_dir = dir.join("run");
        std::fs::create_dir_all(&run_dir)?;
        let mut server = Self {
            data_dir,
            run_dir,
            port,
            bin,
            as_postgres,
            running: false,
        };
        if as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir))?;
        }
        if !server.data_dir.join("PG_VERSION").exists() {
            let mut init = server.command("initdb");
            init.arg("-D").arg(&server.data_dir).args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]);
            if !durable {
                init.arg("--no-sync");
            }
            run(&mut init).context("initdb")?;
            let mut conf =
                String::from("\nlisten_addresses = '127.0.0.1'\nmax_connections = 300\n");
            if !durable {
                // Not crash-safe against power loss, but an immediate stop (as the
                // fault tests do) loses nothing: commits still reach the OS.
                conf.push_str("fsync = off\nfull_page_writes = off\n");
            }
            let conf_path = server.data_dir.join("postgresql.conf");
            let mut existing = std::fs::read_to_string(&conf_path)?;
            existing.push_str(&conf);
            std::fs::write(&conf_path, existing)?;
        }
        server.resume()?;
        Ok(server)
    }

    /// Like [`start`](Self::start) on a free port, retrying with another port when
    /// the one picked was taken in the meantime (ports are found by binding port 0
    /// and releasing it, so another process can take one first).
    pub fn start_on_free_port(dir: &Path, durable: bool) -> anyhow::Result<Self> {
        let mut last = None;
        for _ in 0..5 {
            match Self::start(dir, free_port()?, durable) {
                Ok(server) => return Ok(server),
                Err(e) if format!("{e:#}").contains("could not start server") => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no free port for PostgreSQL")))
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// Starts a stopped server again (same directory, same port) and waits for it.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.run_dir.display()
        );
        run(self
            .command("pg_ctl")
            .arg("start")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(self.run_dir.join("postgres.log"))
            .args(["-w", "-t", "60", "-o", &options]))
        .with_context(|| format!("starting PostgreSQL on port {}", self.port))?;
        self.running = true;
        wait_for_port(self.port, Duration::from_secs(30))
    }

    /// Serves TLS with `cert_pem` (chain) and `key_pem`, and refuses plain-text TCP
    /// connections (the Unix socket stays open to the superuser); restarts the server.
    pub fn require_tls(&mut self, cert_pem: &str, key_pem: &str) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let cert = self.data_dir.join("server.crt");
        let key = self.data_dir.join("server.key");
        std::fs::write(&cert, cert_pem)?;
        std::fs::write(&key, key_pem)?;
        // Postgres refuses a key others can read.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
        let conf_path = self.data_dir.join("postgresql.conf");
        let mut conf = std::fs::read_to_string(&conf_path)?;
        conf.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf_path, conf)?;
        std::fs::write(
            self.data_dir.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 reject\n",
        )?;
        if self.as_postgres {
            run(Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&cert)
                .arg(&key)
                .arg(self.data_dir.join("pg_hba.conf")))?;
        }
        self.stop(false)?;
        self.resume()
    }

    /// Stops the server now (`immediate`: like a crash; else a fast clean shutdown).
    pub fn stop(&mut self, immediate: bool) -> anyhow::Result<()> {
        let mode = if immediate { "immediate" } else { "fast" };
        run(self
            .command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", mode, "-w", "-t", "60"]))?;
        self.running = false;
        Ok(())
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for `database` as the `postgres` superuser.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if self.running {
            let _ = self.stop(false);
        }
    }
}

/// A private Redis server, a child process killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    /// The running server.
    child: Option<std::process::Child>,
    /// Its port on 127.0.0.1.
    port: u16,
    /// Its working directory (dump file when persistent).
    dir: PathBuf,
    /// Whether it snapshots to disk (local launcher) or keeps nothing (tests).
    persistent: bool,
}

impl RedisServer {
    /// Starts `redis-server` on `port` with `dir` as its working directory.
    pub fn start(dir: &Path, port: u16, persistent: bool) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut server = Self {
            child: None,
            port,
            dir: dir.to_owned(),
            persistent,
        };
        server.resume()?;
        Ok(server)
    }

    /// Starts a stopped server again on the same port.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        let save = if self.persistent { "60 1" } else { "" };
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", save, "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--logfile", "redis.log"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (apt-get install redis-server)")?;
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(15))
    }

    /// Kills the server (as a crash would).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Polls until something accepts connections on `port`, or the deadline passes.
pub fn wait_for_port(port: u16, deadline: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if start.elapsed() > deadline {
            bail!("nothing listens on 127.0.0.1:{port} after {deadline:?}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}
