//! Static files (`--static-dir` at `/`, `--pkg-dir` at `/pkg/`) come from inside their
//! directory only, whatever links it holds. A link that stays inside is followed; a link to
//! an outside file or directory, absolute or relative, answers exactly as a missing file
//! (404), also after it was swapped while the server ran; traversal in the URL (`..`,
//! percent-encoded, backslashes, NUL, absolute paths) answers 404 or 400. What the file
//! service gave users stays: content types, HEAD, Range, ETag/Last-Modified with conditional
//! requests, a directory's `index.html` and the `/dir` → `/dir/` redirect.
//!
//! Requests are written by hand on a TCP socket: an HTTP client library would normalize
//! `..` and backslashes away before sending.

#![cfg(unix)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::common::{TestServer, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// The content of every file outside the served directories.
const SECRET: &str = "SECRET-FROM-OUTSIDE-THE-DIRECTORY";
const HELLO: &str = "hello, static files";
const SUB_INDEX: &str = "<p>the sub index</p>";
const PAGE: &str = "a page in sub";

/// The two mounts: `--static-dir` at the root and `--pkg-dir` under `/pkg`.
const MOUNTS: [&str; 2] = ["", "/pkg"];

/// A temporary tree, removed on drop (links are removed, never followed):
///
/// ```text
/// secret.txt                 SECRET
/// outside/{index.html,inner.txt}   SECRET
/// www/ and pkg/, each:
///   hello.txt, sub/index.html, sub/page.txt
///   alias.txt -> hello.txt            inside
///   sub-alias -> sub                  inside
///   round-trip.txt -> ../<dir>/hello.txt   out and back in: inside
///   link.txt -> ../secret.txt         outside file
///   absolute.txt -> <tree>/secret.txt outside file, absolute link
///   outdir -> ../outside              outside directory
///   dangling.txt -> ../missing.txt    nowhere
/// ```
struct Tree {
    root: PathBuf,
}

impl Tree {
    fn new(test: &str) -> Tree {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "chorus-static-{}-{test}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("outside")).unwrap();
        fs::write(root.join("secret.txt"), SECRET).unwrap();
        fs::write(root.join("outside/inner.txt"), SECRET).unwrap();
        fs::write(root.join("outside/index.html"), SECRET).unwrap();
        for dir in ["www", "pkg"] {
            let d = root.join(dir);
            fs::create_dir_all(d.join("sub")).unwrap();
            fs::write(d.join("hello.txt"), HELLO).unwrap();
            fs::write(d.join("sub/index.html"), SUB_INDEX).unwrap();
            fs::write(d.join("sub/page.txt"), PAGE).unwrap();
            symlink("hello.txt", d.join("alias.txt")).unwrap();
            symlink("sub", d.join("sub-alias")).unwrap();
            symlink(format!("../{dir}/hello.txt"), d.join("round-trip.txt")).unwrap();
            symlink("../secret.txt", d.join("link.txt")).unwrap();
            symlink(root.join("secret.txt"), d.join("absolute.txt")).unwrap();
            symlink("../outside", d.join("outdir")).unwrap();
            symlink("../missing.txt", d.join("dangling.txt")).unwrap();
        }
        Tree { root }
    }

    /// The served directory of a mount.
    fn dir(&self, mount: &str) -> PathBuf {
        self.root.join(if mount.is_empty() { "www" } else { "pkg" })
    }

    /// A server with both directories.
    async fn serve(&self) -> TestServer {
        let (www, pkg) = (self.dir(""), self.dir("/pkg"));
        TestServer::start_with(|c| {
            c.static_dir = Some(www);
            c.pkg_dir = Some(pkg);
        })
        .await
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// An HTTP answer read off the socket.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Neither the head nor the body carries anything from outside.
    fn assert_no_secret(&self, what: &str) {
        assert!(
            !self.text().contains(SECRET) && !self.head.contains(SECRET),
            "{what}: outside content was served:\n{}\n\n{}",
            self.head,
            self.text()
        );
    }
}

/// Send `method target` (written as is, not normalized) with `headers`, read the answer.
async fn request(
    server: &TestServer,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut text = format!(
        "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        server.addr
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    tcp.write_all(text.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    timeout(WAIT, tcp.read_to_end(&mut bytes))
        .await
        .expect("the answer in time")
        .unwrap();
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(&bytes)));
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Answer {
        status,
        head,
        body: bytes[end + 4..].to_vec(),
    }
}

async fn get(server: &TestServer, target: &str) -> Answer {
    request(server, "GET", target, &[]).await
}

/// `target` answers 200 with `body`.
async fn assert_served(server: &TestServer, target: &str, body: &str) {
    let answer = get(server, target).await;
    assert_eq!(answer.status, 200, "GET {target}:\n{}", answer.head);
    assert_eq!(answer.text(), body, "GET {target}");
}

/// `target` answers exactly as a missing file of the same mount does.
async fn assert_as_missing(server: &TestServer, mount: &str, target: &str) {
    for method in ["GET", "HEAD"] {
        let missing = request(server, method, &format!("{mount}/no-such-file.txt"), &[]).await;
        assert_eq!(missing.status, 404);
        let answer = request(server, method, target, &[]).await;
        answer.assert_no_secret(&format!("{method} {target}"));
        assert_eq!(
            answer.status, 404,
            "{method} {target} must answer as a missing file:\n{}",
            answer.head
        );
        assert_eq!(answer.body, missing.body, "{method} {target}");
        assert_eq!(
            answer.header("content-length"),
            missing.header("content-length"),
            "{method} {target}"
        );
    }
}

#[tokio::test]
async fn files_and_links_that_stay_inside_are_served() {
    let tree = Tree::new("inside");
    let server = tree.serve().await;
    for mount in MOUNTS {
        assert_served(&server, &format!("{mount}/hello.txt"), HELLO).await;
        assert_served(&server, &format!("{mount}/alias.txt"), HELLO).await;
        assert_served(&server, &format!("{mount}/round-trip.txt"), HELLO).await;
        assert_served(&server, &format!("{mount}/sub/"), SUB_INDEX).await;
        assert_served(&server, &format!("{mount}/sub/page.txt"), PAGE).await;
        assert_served(&server, &format!("{mount}/sub-alias/"), SUB_INDEX).await;
        assert_served(&server, &format!("{mount}/sub-alias/page.txt"), PAGE).await;
    }
}

#[tokio::test]
async fn links_to_outside_files_and_directories_answer_as_a_missing_file() {
    let tree = Tree::new("outside");
    let server = tree.serve().await;
    for mount in MOUNTS {
        for path in [
            "/link.txt",
            "/absolute.txt",
            "/dangling.txt",
            // A directory link must not even redirect: that would tell it exists.
            "/outdir",
            "/outdir/",
            "/outdir/inner.txt",
            "/outdir/index.html",
            "/outdir/../secret.txt",
            "/sub-alias/../link.txt",
        ] {
            assert_as_missing(&server, mount, &format!("{mount}{path}")).await;
        }
    }
}

#[tokio::test]
async fn a_link_swapped_to_lead_outside_while_serving_is_refused() {
    let tree = Tree::new("swapped");
    let server = tree.serve().await;
    for mount in MOUNTS {
        let dir = tree.dir(mount);
        symlink("hello.txt", dir.join("swap.txt")).unwrap();
        symlink("sub", dir.join("swap-dir")).unwrap();
        assert_served(&server, &format!("{mount}/swap.txt"), HELLO).await;
        assert_served(&server, &format!("{mount}/swap-dir/page.txt"), PAGE).await;

        fs::remove_file(dir.join("swap.txt")).unwrap();
        symlink("../secret.txt", dir.join("swap.txt")).unwrap();
        fs::remove_file(dir.join("swap-dir")).unwrap();
        symlink("../outside", dir.join("swap-dir")).unwrap();
        assert_as_missing(&server, mount, &format!("{mount}/swap.txt")).await;
        assert_as_missing(&server, mount, &format!("{mount}/swap-dir/inner.txt")).await;
        assert_as_missing(&server, mount, &format!("{mount}/swap-dir/")).await;
    }
}

#[tokio::test]
async fn traversal_in_the_url_never_reaches_outside() {
    let tree = Tree::new("traversal");
    let server = tree.serve().await;
    let absolute = tree.root.join("secret.txt");
    let absolute = absolute.to_str().unwrap();
    let encoded_absolute = absolute.replace('/', "%2f");
    for mount in MOUNTS {
        for path in [
            "/../secret.txt".to_owned(),
            "/../../secret.txt".to_owned(),
            "/%2e%2e/secret.txt".to_owned(),
            "/%2E%2E/secret.txt".to_owned(),
            "/.%2e/secret.txt".to_owned(),
            "/%2e%2e%2fsecret.txt".to_owned(),
            "/sub/..%2f..%2fsecret.txt".to_owned(),
            "/sub/%2e%2e/%2e%2e/secret.txt".to_owned(),
            "/..\\secret.txt".to_owned(),
            "/sub\\..\\..\\secret.txt".to_owned(),
            "/%5c..%5csecret.txt".to_owned(),
            "/sub/..%5c..%5csecret.txt".to_owned(),
            "/hello.txt%00".to_owned(),
            "/%00/../secret.txt".to_owned(),
            format!("/{encoded_absolute}"),
            format!("/{absolute}"),
            "/outdir%2finner.txt".to_owned(),
            "/outdir%2f..%2f..%2fsecret.txt".to_owned(),
        ] {
            let target = format!("{mount}{path}");
            let answer = get(&server, &target).await;
            answer.assert_no_secret(&format!("GET {target}"));
            assert!(
                matches!(answer.status, 400 | 404),
                "GET {target} must answer 404 or 400:\n{}",
                answer.head
            );
        }
    }
}

#[tokio::test]
async fn content_types_head_ranges_validators_and_redirects_are_kept() {
    let tree = Tree::new("http");
    let server = tree.serve().await;
    for mount in MOUNTS {
        let hello = format!("{mount}/hello.txt");
        let full = get(&server, &hello).await;
        assert_eq!(full.status, 200);
        assert!(
            full.header("content-type")
                .is_some_and(|t| t.starts_with("text/plain")),
            "{}",
            full.head
        );
        let index = get(&server, &format!("{mount}/sub/")).await;
        assert!(
            index
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/html")),
            "{}",
            index.head
        );

        let head = request(&server, "HEAD", &hello, &[]).await;
        assert_eq!(head.status, 200);
        assert_eq!(
            head.header("content-length"),
            Some(&*HELLO.len().to_string())
        );
        assert!(head.body.is_empty());

        let range = request(&server, "GET", &hello, &[("range", "bytes=0-4")]).await;
        assert_eq!(range.status, 206, "{}", range.head);
        assert_eq!(range.text(), &HELLO[..5]);

        let etag = full.header("etag").expect("an ETag").to_owned();
        let again = request(&server, "GET", &hello, &[("if-none-match", &etag)]).await;
        assert_eq!(again.status, 304, "{}", again.head);
        let modified = full
            .header("last-modified")
            .expect("Last-Modified")
            .to_owned();
        let again = request(&server, "GET", &hello, &[("if-modified-since", &modified)]).await;
        assert_eq!(again.status, 304, "{}", again.head);

        for dir in ["/sub", "/sub-alias"] {
            let redirect = get(&server, &format!("{mount}{dir}")).await;
            assert!(
                matches!(redirect.status, 301 | 307 | 308),
                "{}",
                redirect.head
            );
            assert_eq!(
                redirect.header("location"),
                Some(&*format!("{mount}{dir}/")),
                "GET {mount}{dir}"
            );
        }
    }
}

/// The tree really holds what the tests read through links (so a 404 is the server's doing).
#[test]
fn the_outside_files_exist_and_the_links_lead_to_them() {
    let tree = Tree::new("sanity");
    for mount in MOUNTS {
        let dir = tree.dir(mount);
        let read = |p: &str| fs::read_to_string(dir.join(p)).unwrap();
        assert_eq!(read("link.txt"), SECRET);
        assert_eq!(read("absolute.txt"), SECRET);
        assert_eq!(read("outdir/inner.txt"), SECRET);
        assert_eq!(read("alias.txt"), HELLO);
        assert!(Path::new(&dir.join("sub-alias/index.html")).exists());
    }
}
