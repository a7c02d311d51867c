//! Where the app's server listens, megamode's side of it: a loopback TCP port or a Unix socket, and
//! a connection to either.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use tokio::net::{TcpStream, UnixStream};

use crate::error::{Error, Result};

/// A Unix socket path longer than this does not fit in `sockaddr_un` (with its NUL): its `sun_path`
/// is 108 bytes on Linux, 104 on macOS, where a longer path would pass here and fail at `bind`.
const MAX_SOCKET_PATH: usize = if cfg!(target_os = "linux") { 107 } else { 103 };

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Target {
    /// A free loopback port. The listener is closed before the server binds it, so another process
    /// could take the port in between; a Unix socket has no such race.
    pub fn free_port() -> Result<Target> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| Error::boot(format!("cannot find a free port on 127.0.0.1: {e}")))?;
        Ok(Target::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, port))))
    }

    /// A socket path in `dir` for this process's server; a stale socket left there is removed.
    pub fn socket_in(dir: &Path) -> Result<Target> {
        let path = dir.join(format!("server-{}.sock", std::process::id()));
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(Error::config(format!(
                "the server's socket path {} is longer than the {MAX_SOCKET_PATH} bytes a Unix socket \
                 allows: set MEGAMODE_TMP to a shorter directory, or MEGAMODE_TRANSPORT=tcp",
                path.display()
            )));
        }
        let _ = std::fs::remove_file(&path);
        // What could not be removed is another user's (in a sticky MEGAMODE_TMP, see `tmp_dir`): a
        // socket there could answer in the server's place.
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            return Err(Error::boot(format!(
                "the server's socket path {} is taken by a file of uid {} that megamode cannot \
                 remove: set MEGAMODE_TMP to a directory of your own, or MEGAMODE_TRANSPORT=tcp",
                path.display(),
                std::os::unix::fs::MetadataExt::uid(&meta)
            )));
        }
        Ok(Target::Unix(path))
    }

    /// The variables that tell the server where to listen: `PORT`, or `MEGAMODE_SOCKET`.
    pub fn env(&self) -> (&'static str, String) {
        match self {
            Target::Tcp(addr) => ("PORT", addr.port().to_string()),
            Target::Unix(path) => ("MEGAMODE_SOCKET", path.display().to_string()),
        }
    }

    pub async fn connect(&self) -> std::io::Result<Stream> {
        Ok(match self {
            Target::Tcp(addr) => Stream::Tcp(crate::io::connect_tcp(addr).await?),
            Target::Unix(path) => Stream::Unix(UnixStream::connect(path).await?),
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp(addr) => write!(f, "{addr}"),
            Target::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A connection to the server, of either kind.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_tell_the_server_where_to_listen() {
        let Target::Tcp(addr) = Target::free_port().unwrap() else {
            panic!("not TCP")
        };
        assert!(addr.ip().is_loopback());
        assert_eq!(Target::Tcp(addr).env(), ("PORT", addr.port().to_string()));
        let dir = std::env::temp_dir();
        let target = Target::socket_in(&dir).unwrap();
        let (name, path) = target.env();
        assert_eq!(name, "MEGAMODE_SOCKET");
        assert!(path.starts_with(dir.to_str().unwrap()) && path.ends_with(".sock"));
    }

    #[test]
    fn a_socket_path_too_long_is_refused_with_advice() {
        let dir = PathBuf::from(format!("/tmp/{}", "d".repeat(120)));
        let err = Target::socket_in(&dir).unwrap_err();
        assert!(err.message.contains("MEGAMODE_TMP"), "{err}");
    }

    #[test]
    fn both_kinds_connect() {
        crate::io::block_on(async {
            let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let target = Target::Tcp(tcp.local_addr().unwrap());
            assert!(matches!(target.connect().await.unwrap(), Stream::Tcp(_)));
            let dir = std::env::temp_dir().join(format!("megamode-listen-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let target = Target::socket_in(&dir).unwrap();
            let Target::Unix(path) = &target else {
                panic!("not Unix")
            };
            let _unix = tokio::net::UnixListener::bind(path).unwrap();
            assert!(matches!(target.connect().await.unwrap(), Stream::Unix(_)));
            std::fs::remove_dir_all(&dir).unwrap();
        });
    }
}
