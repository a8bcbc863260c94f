//! Static files (`--static-dir`, `--pkg-dir`) served from a directory and never from outside
//! it, whatever links the directory holds.
//!
//! tower-http's `ServeDir` refuses `..`, absolute paths and their percent-encoded forms in the
//! URL, but then opens the path as the file system resolves it: `www/link.txt ->
//! ../secret.txt` served the secret, and a link to a directory served all of it. Here
//! `ServeDir` keeps the HTTP side (content types, HEAD, Range, ETag and Last-Modified with
//! conditional requests, a directory's `index.html`, the `/dir` → `/dir/` redirect) over a
//! [`Backend`] that resolves every link in the path first and opens the result only when it
//! lies inside the directory. Links that stay inside are followed; anything else is answered
//! 404, as a missing file is, so an answer tells nothing about what lies outside.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncSeek, ReadBuf};
use tower_http::services::ServeDir;
use tower_http::services::fs::{Backend, DefaultServeDirFallback, File};

/// The files of `dir`, for a service mounted at `mount` (`""` at the root, `"/pkg"` under
/// `/pkg/`; the trailing-slash redirect of a directory names its full path).
pub(crate) fn serve(dir: &Path, mount: &str) -> ServeDir<DefaultServeDirFallback, Contained> {
    ServeDir::with_backend(dir, Contained { dir: dir.into() }).redirect_path_prefix(mount)
}

/// A [`Backend`] that opens only what lies inside its directory once every link is resolved.
#[derive(Clone, Debug)]
pub(crate) struct Contained {
    /// The directory as configured.
    dir: Arc<Path>,
}

impl Contained {
    /// Open `path` (one under the directory, built by `ServeDir` from the URL), provided the
    /// file or directory it names lies inside the directory. Anything else is `NotFound`.
    fn open_inside(&self, path: &Path) -> io::Result<std::fs::File> {
        // The directory is resolved for each request, not once at start: it may itself be a
        // link that a deploy re-points (`current -> releases/42`); what it names now is what
        // may be served. Links inside it are resolved anew each time too, so a link swapped
        // after start is judged by where it leads now.
        let root = self.dir.canonicalize().map_err(not_found)?;
        let target = path.canonicalize().map_err(not_found)?;
        if !target.starts_with(&root) {
            return Err(outside(path));
        }
        // Files and directories only: opening a FIFO would block until a writer came.
        let kind = std::fs::metadata(&target).map_err(not_found)?.file_type();
        if !kind.is_file() && !kind.is_dir() {
            return Err(io::ErrorKind::NotFound.into());
        }
        let file = std::fs::File::open(&target)?;
        // A link swapped into the path between the check above and the open would have led
        // the open outside. The kernel's name for the opened file says where it really is.
        if opened_outside(&file, &root) {
            return Err(outside(path));
        }
        Ok(file)
    }
}

/// Whether the kernel names `file` outside `root` (Linux, through /proc; elsewhere, or
/// without /proc, the check before the open stands alone).
fn opened_outside(file: &std::fs::File, root: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let fd = format!("/proc/self/fd/{}", file.as_raw_fd());
        if let Ok(opened) = std::fs::read_link(fd) {
            return !opened.starts_with(root);
        }
    }
    // Read only on Linux.
    let _ = (file, root);
    false
}

/// The error of a path that resolves outside the directory: `NotFound`, as for a missing
/// file, so the answer does not tell the two apart.
fn outside(path: &Path) -> io::Error {
    tracing::debug!(path = %path.display(), "static file refused: it resolves outside the directory");
    io::ErrorKind::NotFound.into()
}

/// Any failure to resolve a path reads as `NotFound`: a link leading out to a missing,
/// unreadable or looping place must answer as a missing file does.
fn not_found(_: io::Error) -> io::Error {
    io::ErrorKind::NotFound.into()
}

/// Run blocking file-system calls off the async workers, as `tokio::fs` does.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(io::Error::other)?
}

type IoFuture<T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send>>;

impl Backend for Contained {
    type File = ContainedFile;
    type Metadata = std::fs::Metadata;
    type OpenFuture = IoFuture<ContainedFile>;
    type MetadataFuture = IoFuture<std::fs::Metadata>;

    fn open(&self, path: PathBuf) -> Self::OpenFuture {
        let this = self.clone();
        Box::pin(async move {
            let file = blocking(move || this.open_inside(&path)).await?;
            Ok(ContainedFile(tokio::fs::File::from_std(file)))
        })
    }

    /// The metadata of the opened file, not of the path: read from the path, it could
    /// describe a file outside that a link swapped in after the check leads to. (Opening a
    /// directory to read its metadata works on Unix, where this server runs.)
    fn metadata(&self, path: PathBuf) -> Self::MetadataFuture {
        let this = self.clone();
        Box::pin(blocking(move || this.open_inside(&path)?.metadata()))
    }
}

/// A file opened by [`Contained`].
#[derive(Debug)]
pub(crate) struct ContainedFile(tokio::fs::File);

impl AsyncRead for ContainedFile {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncSeek for ContainedFile {
    fn start_seek(mut self: Pin<&mut Self>, position: io::SeekFrom) -> io::Result<()> {
        Pin::new(&mut self.0).start_seek(position)
    }

    fn poll_complete(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Pin::new(&mut self.0).poll_complete(cx)
    }
}

impl File for ContainedFile {
    type Metadata = std::fs::Metadata;
    type MetadataFuture<'a> =
        Pin<Box<dyn Future<Output = io::Result<std::fs::Metadata>> + Send + 'a>>;

    fn metadata(&self) -> Self::MetadataFuture<'_> {
        Box::pin(self.0.metadata())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::opened_outside;

    /// The check after the open tells an opened file inside the root from one outside it
    /// (the race it closes cannot be staged from the socket).
    #[test]
    fn the_kernels_name_of_an_opened_file_places_it() {
        let manifest =
            std::fs::File::open(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
        let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .canonicalize()
            .unwrap();
        assert!(!opened_outside(&manifest, &crate_dir));
        assert!(opened_outside(&manifest, &crate_dir.join("src")));
    }
}
