//! redis-server and nginx for the cluster test and the cluster benchmark:
//! started on free loopback ports with everything they write in a folder
//! of the caller's, ready when these return (polled, never slept on), and
//! stopped when dropped. nginx runs the committed
//! `contrib/nginx/wasimancer.conf`, with only its replicas and port filled in.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// How long anything may take to become true before the test fails; the
/// test moves on as soon as it is.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Poll `ready` until it holds.
pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// A program the test needs, or a clear failure saying how to get it.
fn program(name: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "{name} is needed by this test: apt-get install redis-server nginx (.ci/run does)"
    );
    Command::new(name)
}

/// A process the test started, killed when dropped.
pub struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// redis-server on a loopback port, keeping nothing on disk.
pub struct Redis {
    process: Option<Process>,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    pub fn start(dir: &Path) -> Self {
        let mut redis = Self {
            process: None,
            port: free_port(),
            dir: dir.to_path_buf(),
        };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Start it (again, on the same port).
    pub fn restart(&mut self) {
        let log = std::fs::File::create(self.dir.join("redis.log")).unwrap();
        let child = program("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.process = Some(Process(child));
        let port = self.port;
        wait_until("redis-server answers PING", || ping(port));
    }

    /// Stop it and wait until it is gone.
    pub fn stop(&mut self) {
        self.process = None;
        let port = self.port;
        wait_until("redis-server is gone", || !ping(port));
    }
}

pub fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut answer = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut answer).is_ok()
        && &answer == b"+PONG\r\n"
}

/// nginx with the committed configuration, its replicas and port filled in.
pub struct Nginx {
    _process: Process,
    pub port: u16,
}

impl Nginx {
    pub fn start(dir: &Path, replicas: &[String]) -> Self {
        let port = free_port();
        let committed =
            std::fs::read_to_string(repo().join("contrib/nginx/wasimancer.conf")).unwrap();
        let servers: String = replicas
            .iter()
            .map(|address| format!("    server {address} max_fails=1 fail_timeout=5s;\n"))
            .collect();
        let begin = committed.find("    # replicas:begin\n").unwrap();
        let end = committed.find("    # replicas:end\n").unwrap();
        let site = format!("{}{servers}{}", &committed[..begin], &committed[end..])
            .replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
        assert!(site.contains(&format!("listen 127.0.0.1:{port};")));
        std::fs::write(dir.join("wasimancer.conf"), site).unwrap();
        // SAFETY: geteuid only reads the process's user id.
        let root = unsafe { libc::geteuid() } == 0;
        let d = dir.display();
        // Everything nginx writes stays in `dir`; as root (CI), its workers
        // must be root too to use that folder.
        let main = format!(
            "{user}daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/client_body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             include {d}/wasimancer.conf;\n}}\n",
            user = if root { "user root;\n" } else { "" },
        );
        std::fs::write(dir.join("nginx.conf"), main).unwrap();
        let child = program("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let mut process = Process(child);
        wait_until("nginx listens", || {
            if let Ok(Some(status)) = process.0.try_wait() {
                let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                panic!("nginx stopped ({status}): {log}");
            }
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Self {
            _process: process,
            port,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nginx {
    /// Its master stops its workers on SIGTERM; killed, it would leave them
    /// running.
    fn drop(&mut self) {
        // SAFETY: kill only sends a signal to the nginx this test started.
        unsafe {
            libc::kill(self._process.0.id() as i32, libc::SIGTERM);
        }
        let _ = self._process.0.wait();
    }
}
