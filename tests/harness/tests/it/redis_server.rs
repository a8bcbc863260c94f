//! The test Redis: it starts on a free port and answers; a restart empties it, unless it is
//! persistent, when it goes back to its last `SAVE`; a replica follows its primary and
//! takes over when promoted.

use chorus_test_harness::redis::{Connection, RedisServer, Reply, command, info_field};
use tokio::net::TcpStream;

fn ok() -> Reply {
    Reply::Status("OK".into())
}

fn bulk(text: &str) -> Reply {
    Reply::Bulk(text.as_bytes().to_vec())
}

#[tokio::test]
async fn a_restart_loses_everything() {
    let mut redis = RedisServer::start().await.unwrap();
    assert_eq!(
        redis.command(&["SET", "chorus-test", "1"]).await.unwrap(),
        ok()
    );
    assert_eq!(
        redis.command(&["GET", "chorus-test"]).await.unwrap(),
        bulk("1")
    );
    // Even a snapshot taken on request is not loaded again.
    assert_eq!(redis.command(&["SAVE"]).await.unwrap(), ok());
    assert!(redis.data_dir().join("dump.rdb").exists());
    redis.restart().await.unwrap();
    assert_eq!(
        redis.command(&["GET", "chorus-test"]).await.unwrap(),
        Reply::Nil
    );
    redis.kill().await.unwrap();
    assert!(TcpStream::connect(("127.0.0.1", redis.port)).await.is_err());
}

#[tokio::test]
async fn a_snapshot_restart_goes_back_in_time() {
    let mut redis = RedisServer::start_persistent().await.unwrap();
    let port = redis.port;
    assert_eq!(command(port, &["SET", "a", "1"]).await.unwrap(), ok());
    assert_eq!(command(port, &["SAVE"]).await.unwrap(), ok());
    assert_eq!(command(port, &["SET", "a", "2"]).await.unwrap(), ok());
    assert_eq!(command(port, &["SET", "b", "2"]).await.unwrap(), ok());
    redis.kill().await.unwrap();
    redis.start_again().await.unwrap();
    assert_eq!(redis.port, port);
    assert_eq!(command(port, &["GET", "a"]).await.unwrap(), bulk("1"));
    assert_eq!(command(port, &["GET", "b"]).await.unwrap(), Reply::Nil);
    // Nothing saves by itself: a kill without `SAVE` loses what came since.
    assert_eq!(command(port, &["SET", "a", "3"]).await.unwrap(), ok());
    redis.restart().await.unwrap();
    assert_eq!(command(port, &["GET", "a"]).await.unwrap(), bulk("1"));
}

#[tokio::test]
async fn a_promoted_replica_has_the_data_and_takes_writes() {
    let mut primary = RedisServer::start().await.unwrap();
    assert_eq!(
        primary.command(&["SET", "before", "1"]).await.unwrap(),
        ok()
    );
    let mut replica = RedisServer::start_replica_of(&primary).await.unwrap();
    let info = replica.replication().await.unwrap();
    assert_eq!(info_field(&info, "role"), Some("slave"));
    assert_eq!(info_field(&info, "master_link_status"), Some("up"));
    assert_eq!(
        replica.command(&["GET", "before"]).await.unwrap(),
        bulk("1")
    );

    assert_eq!(primary.command(&["SET", "after", "2"]).await.unwrap(), ok());
    replica.wait_replicated(&primary).await.unwrap();
    assert_eq!(replica.command(&["GET", "after"]).await.unwrap(), bulk("2"));
    let refused = replica.command(&["SET", "x", "1"]).await.unwrap();
    assert!(
        matches!(&refused, Reply::Error(e) if e.starts_with("READONLY")),
        "{refused:?}"
    );

    primary.kill().await.unwrap();
    replica.promote().await.unwrap();
    assert_eq!(replica.command(&["SET", "x", "1"]).await.unwrap(), ok());
    assert_eq!(replica.command(&["GET", "after"]).await.unwrap(), bulk("2"));
    let info = replica.replication().await.unwrap();
    assert_eq!(info_field(&info, "role"), Some("master"));
}

#[tokio::test]
async fn a_connection_pipelines_and_receives_pushes() {
    let redis = RedisServer::start().await.unwrap();
    let mut subscriber = Connection::open(redis.port).await.unwrap();
    let subscribed = subscriber.command(&["SSUBSCRIBE", "ch"]).await.unwrap();
    assert_eq!(
        subscribed,
        Reply::Array(vec![bulk("ssubscribe"), bulk("ch"), Reply::Int(1)])
    );
    let numsub = redis
        .command(&["PUBSUB", "SHARDNUMSUB", "ch"])
        .await
        .unwrap();
    assert_eq!(numsub, Reply::Array(vec![bulk("ch"), Reply::Int(1)]));
    assert_eq!(
        redis.command(&["SPUBLISH", "ch", "hi"]).await.unwrap(),
        Reply::Int(1)
    );
    assert_eq!(
        subscriber.read().await.unwrap(),
        Reply::Array(vec![bulk("smessage"), bulk("ch"), bulk("hi")])
    );

    let mut connection = Connection::open(redis.port).await.unwrap();
    connection.send(&["SET", "k", ""]).await.unwrap();
    connection.send(&["GET", "k"]).await.unwrap();
    connection.send(&["INCR", "k"]).await.unwrap();
    assert_eq!(connection.read().await.unwrap(), ok());
    assert_eq!(connection.read().await.unwrap(), bulk(""));
    assert!(matches!(connection.read().await.unwrap(), Reply::Error(_)));
}
