//! The control socket: a Unix domain socket on which every server, headless
//! or not, lets consoles of its own user (and root) attach.
//!
//! The socket is made 0600 in a folder only its owner may enter (0700), so
//! the filesystem keeps other users out; the peer's uid (SO_PEERCRED) is
//! checked as well, in case the folder is opened up later. A socket left
//! behind by a server that died is replaced; one a live server listens on
//! is an error that names that server's pid.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{UnixListener, UnixStream};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use super::hub::Hub;
use super::protocol::{Frame, FrameCodec};
use super::session;
use super::transport::Transport;

/// Consoles attached at once through the socket; more are refused.
const CONSOLES_AT_ONCE: usize = 32;

/// Why the control socket cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error(
        "a wasimancer server{} already listens on the control socket {}: stop it, or give this server another --port or --control-socket",
        pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default(),
        path.display()
    )]
    InUse { path: PathBuf, pid: Option<i32> },
    #[error(
        "the control socket's folder {} is writable by other users, who could replace the socket: choose a folder only you can write (--control-socket)",
        .0.display()
    )]
    SharedFolder(PathBuf),
    #[error(
        "the control socket's folder {} belongs to uid {owner}, not to this server's user (uid {us}): choose another with --control-socket",
        path.display()
    )]
    ForeignFolder { path: PathBuf, owner: u32, us: u32 },
    #[error("{} exists and is not a socket: remove it, or choose another path with --control-socket", .0.display())]
    NotASocket(PathBuf),
    #[error("the control socket path {} has no folder", .0.display())]
    NoFolder(PathBuf),
    #[error("cannot set up the control socket {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// This process's effective uid.
pub fn own_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Where a server on `port` puts its socket by default: under
/// `$XDG_RUNTIME_DIR/wasimancer/` (per user, cleaned at logout), under
/// `/run/wasimancer/` for root, else in a private folder in the temp folder.
pub fn default_path(port: u16) -> PathBuf {
    let file = format!("{port}.sock");
    let uid = own_uid();
    if uid == 0 {
        return Path::new("/run/wasimancer").join(file);
    }
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir.join("wasimancer").join(file),
        _ => std::env::temp_dir()
            .join(format!("wasimancer-{uid}"))
            .join(file),
    }
}

/// Whether a peer of `uid` may attach to a server running as `owner`.
pub fn may_attach(uid: u32, owner: u32) -> bool {
    uid == owner || uid == 0
}

/// A bound control socket. Dropping it removes the socket file, if it is
/// still the one this server made.
pub struct ControlSocket {
    path: PathBuf,
    listener: UnixListener,
    /// The socket file's identity (device, inode), to remove only our own.
    identity: (u64, u64),
}

impl ControlSocket {
    /// Make the folder (0700) if needed, check it, replace a stale socket,
    /// and listen.
    pub fn bind(path: &Path) -> Result<Self, SocketError> {
        let io_error = |source| SocketError::Io {
            path: path.to_path_buf(),
            source,
        };
        let folder = path
            .parent()
            .filter(|folder| !folder.as_os_str().is_empty())
            .ok_or_else(|| SocketError::NoFolder(path.to_path_buf()))?;
        prepare_folder(folder)?;
        match std::fs::symlink_metadata(path) {
            Ok(metadata) => {
                use std::os::unix::fs::FileTypeExt;
                if !metadata.file_type().is_socket() {
                    return Err(SocketError::NotASocket(path.to_path_buf()));
                }
                match std::os::unix::net::UnixStream::connect(path) {
                    Ok(live) => {
                        let pid = peer_pid(&live);
                        return Err(SocketError::InUse {
                            path: path.to_path_buf(),
                            pid,
                        });
                    }
                    // Nobody listens: a server died without cleaning up.
                    Err(_) => std::fs::remove_file(path).map_err(io_error)?,
                }
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error(error)),
        }
        let listener = UnixListener::bind(path).map_err(io_error)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_error)?;
        let metadata = std::fs::symlink_metadata(path).map_err(io_error)?;
        Ok(Self {
            path: path.to_path_buf(),
            listener,
            identity: (metadata.dev(), metadata.ino()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accept consoles until `shutdown`.
    pub async fn serve(self, hub: Hub, shutdown: CancellationToken) {
        let owner = own_uid();
        let attached = Arc::new(AtomicUsize::new(0));
        loop {
            let stream = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        tracing::warn!(%error, "the control socket could not accept a console");
                        continue;
                    }
                },
            };
            let hub = hub.clone();
            let shutdown = shutdown.clone();
            let attached = Arc::clone(&attached);
            tokio::spawn(async move {
                serve_connection(stream, hub, owner, attached, shutdown).await;
            });
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|metadata| (metadata.dev(), metadata.ino()) == self.identity);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The folder must exist (made 0700 if not), belong to us (or root, like
/// `/run`), and be writable by nobody else.
fn prepare_folder(folder: &Path) -> Result<(), SocketError> {
    let io_error = |source| SocketError::Io {
        path: folder.to_path_buf(),
        source,
    };
    match std::fs::DirBuilder::new().mode(0o700).create(folder) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(folder)
            .map_err(io_error)?,
        Err(error) => return Err(io_error(error)),
    }
    let metadata = std::fs::metadata(folder).map_err(io_error)?;
    let us = own_uid();
    if metadata.uid() != us && metadata.uid() != 0 {
        return Err(SocketError::ForeignFolder {
            path: folder.to_path_buf(),
            owner: metadata.uid(),
            us,
        });
    }
    if metadata.mode() & 0o022 != 0 {
        return Err(SocketError::SharedFolder(folder.to_path_buf()));
    }
    Ok(())
}

/// The pid of the process at the other end of a Unix socket.
fn peer_pid(stream: &std::os::unix::net::UnixStream) -> Option<i32> {
    use std::os::fd::AsRawFd;
    let mut credentials = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut length = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED writes at most `length` bytes into `credentials`.
    let status = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut credentials as *mut libc::ucred).cast(),
            &mut length,
        )
    };
    (status == 0 && credentials.pid > 0).then_some(credentials.pid)
}

/// One console: check who it is, then hand it to the session.
async fn serve_connection(
    stream: UnixStream,
    hub: Hub,
    owner: u32,
    attached: Arc<AtomicUsize>,
    shutdown: CancellationToken,
) {
    let credentials = stream.peer_cred().ok();
    let uid = credentials.as_ref().map(|c| c.uid());
    let pid = credentials.as_ref().and_then(|c| c.pid());
    let peer = match pid {
        Some(pid) => format!("pid {pid}, uid {}", uid.unwrap_or(u32::MAX)),
        None => "unknown peer".to_string(),
    };
    let mut framed = Framed::new(stream, FrameCodec::server());
    let refusal = match uid {
        None => Some("the server cannot tell who is connecting (no SO_PEERCRED)".to_string()),
        Some(uid) if !may_attach(uid, owner) => Some(format!(
            "uid {uid} may not attach: only the server's user (uid {owner}) and root may"
        )),
        Some(_) if attached.load(Ordering::SeqCst) >= CONSOLES_AT_ONCE => Some(format!(
            "{CONSOLES_AT_ONCE} consoles are attached already; detach one first"
        )),
        Some(_) => None,
    };
    if let Some(reason) = refusal {
        tracing::warn!("refused a console ({peer}): {reason}");
        use futures_util::SinkExt;
        let _ = tokio::time::timeout(
            session::WRITE_TIMEOUT,
            framed.send(Frame::Refused { reason }),
        )
        .await;
        return;
    }
    attached.fetch_add(1, Ordering::SeqCst);
    let _ = session::serve_console(hub, Transport::new(framed), &peer, shutdown).await;
    attached.fetch_sub(1, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn folder(mode: u32) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a temporary folder");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        dir
    }

    #[test]
    fn only_the_owner_and_root_may_attach() {
        assert!(may_attach(1000, 1000));
        assert!(may_attach(0, 1000));
        assert!(!may_attach(1001, 1000));
    }

    #[test]
    fn the_default_path_is_per_port() {
        let path = default_path(3001);
        assert!(path.ends_with("3001.sock"), "{}", path.display());
        assert!(path.is_absolute());
    }

    #[tokio::test]
    async fn the_socket_is_private_in_a_private_folder_and_removed_after() {
        let dir = folder(0o755);
        let path = dir.path().join("control").join("3001.sock");
        let socket = ControlSocket::bind(&path).expect("it binds");
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        drop(socket);
        assert!(!path.exists(), "the socket goes with the server");
    }

    #[tokio::test]
    async fn a_live_socket_is_an_error_naming_its_pid_and_a_stale_one_is_replaced() {
        let dir = folder(0o700);
        let path = dir.path().join("3001.sock");
        let live = ControlSocket::bind(&path).expect("it binds");
        match ControlSocket::bind(&path) {
            Err(SocketError::InUse { pid, .. }) => {
                assert_eq!(pid, Some(std::process::id() as i32))
            }
            other => panic!("expected in use, got {:?}", other.map(|_| ())),
        }
        // A server that died leaves its socket behind: nobody listens.
        std::mem::forget(live);
        let stale = std::os::unix::net::UnixListener::bind(dir.path().join("other.sock")).unwrap();
        drop(stale);
        let socket = ControlSocket::bind(&dir.path().join("other.sock"));
        assert!(socket.is_ok(), "a stale socket is replaced");
    }

    #[test]
    fn a_folder_others_may_write_or_a_file_that_is_not_a_socket_is_refused() {
        let shared = folder(0o777);
        assert!(matches!(
            ControlSocket::bind(&shared.path().join("3001.sock")),
            Err(SocketError::SharedFolder(_))
        ));
        let dir = folder(0o700);
        let file = dir.path().join("3001.sock");
        std::fs::write(&file, "not a socket").unwrap();
        assert!(matches!(
            ControlSocket::bind(&file),
            Err(SocketError::NotASocket(_))
        ));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a socket");
    }
}
