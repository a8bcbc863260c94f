//! The test load balancer: connections spread round robin over the backends, skip a backend
//! that refuses, and are refused when every backend does.

use std::collections::BTreeMap;
use std::time::Duration;

use chorus_test_harness::balancer::Balancer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A backend that answers each connection with its own port, then echoes.
async fn backend() -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = socket.write_all(&port.to_be_bytes()).await;
                let mut buf = [0u8; 64];
                while let Ok(n @ 1..) = socket.read(&mut buf).await {
                    let _ = socket.write_all(&buf[..n]).await;
                }
            });
        }
    });
    (port, task)
}

/// Wait until nothing accepts on `port` any more. A listener dropped while another test of
/// this binary spawns a process lives on in the child until its `exec` closes it
/// (close-on-exec), and accepts meanwhile.
async fn wait_refused(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
        assert!(Instant::now() < deadline, "port {port} still accepts");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Connect through the balancer; answers the socket and the port of the backend reached.
async fn through(balancer: &Balancer) -> Option<(TcpStream, u16)> {
    let mut socket = TcpStream::connect(("127.0.0.1", balancer.port))
        .await
        .unwrap();
    let mut port = [0u8; 2];
    let read = tokio::time::timeout(Duration::from_secs(5), socket.read_exact(&mut port)).await;
    match read {
        Ok(Ok(_)) => Some((socket, u16::from_be_bytes(port))),
        _ => None,
    }
}

#[tokio::test]
async fn connections_go_round_robin_to_the_backends_that_accept() {
    let mut backends = Vec::new();
    for _ in 0..3 {
        backends.push(backend().await);
    }
    let ports: Vec<u16> = backends.iter().map(|(port, _)| *port).collect();
    let balancer = Balancer::open(ports.clone()).await.unwrap();

    let mut reached: BTreeMap<u16, usize> = BTreeMap::new();
    let mut sockets = Vec::new();
    for _ in 0..6 {
        let (mut socket, port) = through(&balancer).await.expect("relayed");
        *reached.entry(port).or_default() += 1;
        // The relay goes both ways, and the balancer knows where the connection went.
        socket.write_all(b"ping").await.unwrap();
        let mut echo = [0u8; 4];
        socket.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"ping");
        let local = socket.local_addr().unwrap();
        assert_eq!(balancer.backend_of(local), Some(port));
        sockets.push(socket);
    }
    let even: BTreeMap<u16, usize> = ports.iter().map(|&p| (p, 2)).collect();
    assert_eq!(reached, even, "six connections over three backends");

    // A backend that dies is skipped.
    let (dead, task) = backends.remove(1);
    task.abort();
    let _ = task.await;
    wait_refused(dead).await;
    for _ in 0..4 {
        let (_, port) = through(&balancer).await.expect("relayed to a survivor");
        assert_ne!(port, dead, "relayed to the dead backend");
    }

    // With every backend down, connections are closed before any answer.
    for (port, task) in backends {
        task.abort();
        let _ = task.await;
        wait_refused(port).await;
    }
    assert!(through(&balancer).await.is_none());
    assert_eq!(balancer.refused(), 1);
    drop(sockets);
}
