//! The `chorus-bench` command line.
//!
//! Options before or after the subcommand apply to every workload (`--protocol`, `--url`,
//! `--secret`, `--json`, `--quick`, `--threads`, ...). A workload's own options default to
//! the figures, or to a few seconds' worth with `--quick`; an option given
//! explicitly always wins.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::client::Target;
use crate::protocol::{
    Protocol, baseline::Baseline, chorus::Chorus, json::Json, socketio::SocketIo,
};
use crate::report::Report;
use crate::workload::ramp::{Layout, Ramp};
use crate::workload::{self, Env};
use crate::{Error, Result};

/// Load generator for Chorus and its peers.
#[derive(Debug, Parser)]
#[command(name = "chorus-bench", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Common {
    /// Protocol spoken.
    #[arg(long, global = true, value_enum, default_value_t = ProtocolName::Chorus)]
    protocol: ProtocolName,
    /// Server URL (ws://host:port/path); repeat for several instances (connections go round
    /// robin). Without a path: /ws (chorus), / (ws, baseline),
    /// /socket.io/?EIO=4&transport=websocket (socketio).
    #[arg(long = "url", global = true)]
    urls: Vec<String>,
    /// The Chorus servers' token secret (tokens are signed per connection).
    #[arg(
        long,
        global = true,
        env = "CHORUS_TOKEN_SECRET",
        hide_env_values = true
    )]
    secret: Option<String>,
    /// Print one JSON object per result (JSON lines) instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Shrink every workload to a few seconds (a smoke test: figures mean little).
    #[arg(long, global = true)]
    quick: bool,
    /// Runtime worker threads. Default: the CPUs this process may run on (see taskset).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Spread loopback connections over this many source addresses, 127.0.0.2 and up
    /// (0: let the kernel choose).
    #[arg(long, global = true, default_value_t = 16)]
    source_ips: u8,
    /// Seconds a connect, greeting and join may take.
    #[arg(long, global = true, default_value_t = 10.0)]
    connect_timeout: f64,
    /// The server's process id (one server on this machine): every result then reports the
    /// server's CPU time beside the generator's, and `idle` its resident memory.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProtocolName {
    /// chorus-server (needs --secret).
    Chorus,
    /// The Node `ws` peer (JSON text frames).
    Ws,
    /// The Socket.IO peer (Engine.IO v4 over WebSocket).
    Socketio,
    /// The raw Rust baseline peer (binary).
    Baseline,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Closed-loop echo round trips, per connection count and body size.
    Echo(EchoArgs),
    /// Room fan-out 1 -> N at a rising open-loop rate: deliveries/s while p99 <= 50 ms.
    #[command(alias = "fanout-ramp")]
    Ramp(RampCommand),
    /// All-to-all chat rooms at a rising open-loop rate.
    Chat(ChatArgs),
    /// Closed-loop room fan-out with a window of publishes in flight (bench/redis-scale.sh).
    Fanout(FanoutArgs),
    /// Joined idle connections; with --server-pid, the server's RSS per connection.
    Idle(IdleArgs),
    /// Reconnect storm: drop every client at once, time until all are back and rejoined.
    Storm(StormArgs),
    /// The generator alone against a local blaster: frames parsed per CPU-second.
    Ceiling(CeilingArgs),
    /// idle, echo, ramp, chat and storm in turn, with their defaults.
    Suite,
    /// Write BENCHMARKS.md and its SVG charts from a run's results (bench/run.sh).
    Render(RenderArgs),
}

#[derive(Debug, Args)]
struct EchoArgs {
    /// Connection counts, one run each. Default: 1,10,100 (quick: 1,10).
    #[arg(long, value_delimiter = ',')]
    connections: Option<Vec<usize>>,
    /// Body sizes in bytes, one run each. Default: 32,1024.
    #[arg(long, value_delimiter = ',')]
    body: Option<Vec<usize>>,
    /// Seconds measured per run. Default: 3 (quick: 0.5).
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds of load before measuring. Default: 0.5 (quick: 0.2).
    #[arg(long)]
    warmup: Option<f64>,
}

#[derive(Debug, Args)]
struct RampArgs {
    /// Deliveries per second of the first step. Default: 10000 (quick: 2000).
    #[arg(long)]
    from: Option<f64>,
    /// Each step asks for this many times the deliveries of the last. Default: 2.
    #[arg(long)]
    factor: Option<f64>,
    /// Most rising steps. Default: 12 (quick: 2).
    #[arg(long)]
    max_steps: Option<usize>,
    /// Bisecting steps between the last step that held and the first that failed.
    /// Default: 2 (quick: 0).
    #[arg(long)]
    refine: Option<usize>,
    /// Seconds of publishing per step. Default: 1.5 (quick: 0.5).
    #[arg(long)]
    step: Option<f64>,
    /// A step holds while p99 is at most this many milliseconds. Default: 50.
    #[arg(long)]
    p99_limit: Option<f64>,
    /// Body size in bytes. Default: 64.
    #[arg(long)]
    body: Option<usize>,
}

#[derive(Debug, Args)]
struct RampCommand {
    /// Subscriber counts, one ramp each. Default: 100,1000,5000 (quick: 100).
    #[arg(long, value_delimiter = ',')]
    subscribers: Option<Vec<usize>>,
    #[command(flatten)]
    ramp: RampArgs,
}

#[derive(Debug, Args)]
struct ChatArgs {
    /// Room sizes, one ramp each. Default: 16,32.
    #[arg(long, value_delimiter = ',')]
    members: Option<Vec<usize>>,
    /// Rooms. Default: 16 (quick: 2).
    #[arg(long)]
    rooms: Option<usize>,
    #[command(flatten)]
    ramp: RampArgs,
}

#[derive(Debug, Args)]
struct FanoutArgs {
    /// Rooms.
    #[arg(long, default_value_t = 4)]
    rooms: usize,
    /// Subscribers per room.
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Publishers per room.
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Unacknowledged publishes each publisher keeps in flight.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Body size in bytes (at least the 12-byte stamp).
    #[arg(long, default_value_t = 64)]
    body: usize,
    /// Seconds measured. Default: 10 (quick: 1).
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds of load before measuring. Default: 2 (quick: 0.2).
    #[arg(long)]
    warmup: Option<f64>,
}

#[derive(Debug, Args)]
struct IdleArgs {
    /// Totals of connections to reach in turn (each keeps the last's); `max` is as many as
    /// the open-file limit allows. Default: 10000,max (quick: 200).
    #[arg(long, value_delimiter = ',')]
    connections: Option<Vec<workload::idle::Total>>,
    /// Connections per room.
    #[arg(long, default_value_t = 100)]
    room_size: usize,
    /// Seconds each total is held before the server's RSS is read. Default: 3 (quick: 0.5).
    #[arg(long)]
    hold: Option<f64>,
}

#[derive(Debug, Args)]
struct StormArgs {
    /// Clients. Default: 10000 (quick: 200).
    #[arg(long)]
    clients: Option<usize>,
    /// Clients per room.
    #[arg(long, default_value_t = 100)]
    room_size: usize,
    /// Each client's first reconnect waits a random time below this, in milliseconds.
    /// Default: 1000 (quick: 200).
    #[arg(long)]
    jitter: Option<u64>,
    /// Seconds after its drop a client gives up. Default: 60 (quick: 20).
    #[arg(long)]
    deadline: Option<f64>,
    /// What drops the connections.
    #[arg(long, value_enum, default_value_t = workload::storm::Trigger::Client)]
    trigger: workload::storm::Trigger,
    /// With --trigger server: seconds to wait for the drop.
    #[arg(long, default_value_t = 120.0)]
    wait: f64,
    /// With --trigger server: a file written once every client is connected and joined.
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CeilingArgs {
    /// Body size in bytes.
    #[arg(long, default_value_t = 64)]
    body: usize,
    /// Seconds per receiver. Default: 3 (quick: 0.5).
    #[arg(long)]
    duration: Option<f64>,
    /// Receivers to measure. Default: hand,tungstenite.
    #[arg(long, value_enum, value_delimiter = ',')]
    receiver: Option<Vec<workload::ceiling::Receiver>>,
    /// Connections the blaster writes to in turn.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Frames per write to each connection. Default: 256 KiB worth.
    #[arg(long)]
    frames_per_write: Option<usize>,
}

#[derive(Debug, Args)]
struct RenderArgs {
    /// The results, JSON lines (`--json` output of the workloads and bench/codec.sh).
    #[arg(long)]
    results: PathBuf,
    /// What the run was: machine, versions, settings (one JSON object).
    #[arg(long)]
    meta: PathBuf,
    /// The markdown page to write.
    #[arg(long)]
    markdown: PathBuf,
    /// The directory for the SVG charts: the page's directory or one below it.
    #[arg(long)]
    charts: PathBuf,
}

/// Parse the command line, run, and print; the process's exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chorus-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Run a parsed command line, printing each result as it comes.
pub fn run(cli: Cli) -> Result<()> {
    let threads = cli
        .common
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    let json = cli.common.json;
    runtime.block_on(execute(cli, threads, &mut |report: &Report| {
        report.print(json)
    }))
}

/// Run a parsed command line on the current runtime, handing each result to `emit` as it
/// comes.
pub async fn execute(cli: Cli, threads: usize, emit: &mut dyn FnMut(&Report)) -> Result<()> {
    if let Command::Render(args) = &cli.command {
        let run = crate::render::Run::read(&args.results, &args.meta)?;
        return crate::render::write(&run, &args.markdown, &args.charts);
    }
    let common = &cli.common;
    let quick = common.quick;
    // The ceiling signs no token: any secret does.
    let secret = match (&common.secret, &cli.command) {
        (Some(secret), _) => Some(secret.as_str()),
        (None, Command::Ceiling(_)) => Some("unused by the ceiling"),
        (None, _) => None,
    };
    let protocol: Arc<dyn Protocol> = match common.protocol {
        ProtocolName::Chorus => Arc::new(Chorus::new(secret.ok_or_else(|| {
            Error::Usage("--protocol chorus needs --secret (the servers' token secret)".into())
        })?)),
        ProtocolName::Ws => Arc::new(Json),
        ProtocolName::Socketio => Arc::new(SocketIo),
        ProtocolName::Baseline => Arc::new(Baseline),
    };
    if let Command::Ceiling(args) = &cli.command {
        let ceiling = workload::ceiling::Ceiling {
            body: args.body,
            duration: seconds(args.duration, 3.0, 0.5, quick),
            receivers: args.receiver.clone().unwrap_or_else(|| {
                vec![
                    workload::ceiling::Receiver::Hand,
                    workload::ceiling::Receiver::Tungstenite,
                ]
            }),
            connections: args.connections,
            frames_per_write: args.frames_per_write,
        };
        let reports =
            tokio::task::spawn_blocking(move || workload::ceiling::run(protocol, &ceiling, quick))
                .await
                .expect("the ceiling does not panic")?;
        for report in &reports {
            emit(report);
        }
        return Ok(());
    }
    let target = Target::new(
        protocol,
        &common.urls,
        common.source_ips,
        Duration::from_secs_f64(common.connect_timeout),
    )
    .await?;
    let env = Env {
        target: Arc::new(target),
        threads,
        quick,
        server_pid: common.server_pid,
    };
    match &cli.command {
        Command::Echo(args) => echo(&env, args, emit).await,
        Command::Ramp(args) => ramp(&env, args, emit).await,
        Command::Chat(args) => chat(&env, args, emit).await,
        Command::Fanout(args) => {
            let fanout = workload::fanout::Fanout {
                rooms: args.rooms,
                subscribers: args.subscribers,
                publishers: args.publishers,
                window: args.window.max(1),
                body: args.body,
                duration: seconds(args.duration, 10.0, 1.0, quick),
                warmup: seconds(args.warmup, 2.0, 0.2, quick),
            };
            emit(&workload::fanout::run(&env, &fanout).await?);
            Ok(())
        }
        Command::Idle(args) => idle(&env, args, emit).await,
        Command::Storm(args) => storm(&env, args, emit).await,
        Command::Suite => {
            // Idle first: its RSS per connection is only right on a server whose heap has
            // not yet grown and been freed by other workloads.
            let idle_args = IdleArgs {
                connections: None,
                room_size: 100,
                hold: None,
            };
            idle(&env, &idle_args, emit).await?;
            echo(&env, &default_echo(), emit).await?;
            ramp(&env, &default_ramp(), emit).await?;
            chat(&env, &default_chat(), emit).await?;
            storm(&env, &default_storm(), emit).await
        }
        Command::Ceiling(_) | Command::Render(_) => unreachable!("handled above"),
    }
}

async fn echo(env: &Env, args: &EchoArgs, emit: &mut dyn FnMut(&Report)) -> Result<()> {
    let quick = env.quick;
    let echo = workload::echo::Echo {
        connections: args
            .connections
            .clone()
            .unwrap_or_else(|| if quick { vec![1, 10] } else { vec![1, 10, 100] }),
        bodies: args.body.clone().unwrap_or_else(|| vec![32, 1024]),
        duration: seconds(args.duration, 3.0, 0.5, quick),
        warmup: seconds(args.warmup, 0.5, 0.2, quick),
    };
    workload::echo::run(env, &echo, emit).await?;
    Ok(())
}

fn ramp_of(args: &RampArgs, quick: bool) -> Ramp {
    Ramp {
        from: args.from.unwrap_or(if quick { 2000.0 } else { 10_000.0 }),
        factor: args.factor.unwrap_or(2.0).max(1.01),
        max_steps: args.max_steps.unwrap_or(if quick { 2 } else { 12 }),
        refine: args.refine.unwrap_or(if quick { 0 } else { 2 }),
        step: seconds(args.step, 1.5, 0.5, quick),
        p99_limit: Duration::from_secs_f64(args.p99_limit.unwrap_or(50.0) / 1e3),
        body: args.body.unwrap_or(64),
    }
}

async fn ramp(env: &Env, args: &RampCommand, emit: &mut dyn FnMut(&Report)) -> Result<()> {
    let ramp = ramp_of(&args.ramp, env.quick);
    let counts = args.subscribers.clone().unwrap_or_else(|| {
        if env.quick {
            vec![100]
        } else {
            vec![100, 1000, 5000]
        }
    });
    for subscribers in counts {
        emit(&workload::ramp::run(env, Layout::Fanout { subscribers }, &ramp).await?);
    }
    Ok(())
}

async fn chat(env: &Env, args: &ChatArgs, emit: &mut dyn FnMut(&Report)) -> Result<()> {
    let ramp = ramp_of(&args.ramp, env.quick);
    let rooms = args.rooms.unwrap_or(if env.quick { 2 } else { 16 });
    for members in args.members.clone().unwrap_or_else(|| vec![16, 32]) {
        emit(&workload::ramp::run(env, Layout::Chat { rooms, members }, &ramp).await?);
    }
    Ok(())
}

async fn idle(env: &Env, args: &IdleArgs, emit: &mut dyn FnMut(&Report)) -> Result<()> {
    use workload::idle::Total;
    let idle = workload::idle::Idle {
        totals: args.connections.clone().unwrap_or_else(|| {
            if env.quick {
                vec![Total::Count(200)]
            } else {
                vec![Total::Count(10_000), Total::Max]
            }
        }),
        room_size: args.room_size,
        hold: seconds(args.hold, 3.0, 0.5, env.quick),
    };
    workload::idle::run(env, &idle, emit).await?;
    Ok(())
}

async fn storm(env: &Env, args: &StormArgs, emit: &mut dyn FnMut(&Report)) -> Result<()> {
    let quick = env.quick;
    let storm = workload::storm::Storm {
        clients: args.clients.unwrap_or(if quick { 200 } else { 10_000 }),
        room_size: args.room_size,
        jitter: Duration::from_millis(args.jitter.unwrap_or(if quick { 200 } else { 1000 })),
        deadline: seconds(args.deadline, 60.0, 20.0, quick),
        trigger: args.trigger,
        wait: Duration::from_secs_f64(args.wait),
        ready_file: args.ready_file.clone(),
    };
    emit(&workload::storm::run(env, &storm).await?);
    Ok(())
}

fn default_echo() -> EchoArgs {
    EchoArgs {
        connections: None,
        body: None,
        duration: None,
        warmup: None,
    }
}

fn default_ramp_args() -> RampArgs {
    RampArgs {
        from: None,
        factor: None,
        max_steps: None,
        refine: None,
        step: None,
        p99_limit: None,
        body: None,
    }
}

fn default_ramp() -> RampCommand {
    RampCommand {
        subscribers: None,
        ramp: default_ramp_args(),
    }
}

fn default_chat() -> ChatArgs {
    ChatArgs {
        members: None,
        rooms: None,
        ramp: default_ramp_args(),
    }
}

fn default_storm() -> StormArgs {
    StormArgs {
        clients: None,
        room_size: 100,
        jitter: None,
        deadline: None,
        trigger: workload::storm::Trigger::Client,
        wait: 120.0,
        ready_file: None,
    }
}

/// An optional number of seconds, with its normal and quick defaults.
fn seconds(given: Option<f64>, normal: f64, quick_default: f64, quick: bool) -> Duration {
    Duration::from_secs_f64(
        given
            .unwrap_or(if quick { quick_default } else { normal })
            .max(0.0),
    )
}
