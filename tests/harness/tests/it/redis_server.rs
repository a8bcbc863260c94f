//! The test Redis: it starts on a free port, answers, and a restart empties it.

use chorus_test_harness::redis::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Send one inline command and read the first answer line.
async fn command(port: u16, line: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 256];
    let n = stream.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).trim_end().to_owned()
}

#[tokio::test]
async fn a_restart_loses_everything() {
    let mut redis = RedisServer::start().await.unwrap();
    assert_eq!(command(redis.port, "SET chorus-test 1").await, "+OK");
    assert_eq!(command(redis.port, "GET chorus-test").await, "$1\r\n1");
    redis.restart().await.unwrap();
    assert_eq!(command(redis.port, "GET chorus-test").await, "$-1");
    redis.kill().await.unwrap();
    assert!(TcpStream::connect(("127.0.0.1", redis.port)).await.is_err());
}
