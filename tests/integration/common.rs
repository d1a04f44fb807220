//! Helpers shared by the integration tests.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use burn::tensor::Tensor;
use focalyolo::compute::device::{ComputeDevice, DeviceChoice};
use focalyolo::output::report::FrameRecord;

/// `../shared` beside the checkout (or `$FOCALYOLO_SHARED`), when it is there.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("FOCALYOLO_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    dir.join("README.md").is_file().then_some(dir)
}

/// The reference material, or an early return with the reason printed; a failure instead
/// where `FOCALYOLO_REQUIRE_SHARED` is set (CI), so that a run without it cannot pass.
macro_rules! require_shared {
    () => {
        match $crate::common::shared_dir() {
            Some(dir) => dir,
            None if std::env::var_os("FOCALYOLO_REQUIRE_SHARED").is_some() => {
                panic!("FOCALYOLO_REQUIRE_SHARED is set and the reference material (../shared) is not here")
            }
            None => {
                println!("skipped: the reference material (../shared) is not here");
                return;
            }
        }
    };
}
pub(crate) use require_shared;

/// The CPU backend, and the wgpu device when an adapter exists (lavapipe in CI, where
/// `FOCALYOLO_REQUIRE_GPU=1` makes a missing adapter a failure rather than a skip).
pub fn test_devices() -> Vec<ComputeDevice> {
    let mut devices = vec![ComputeDevice::cpu()];
    match ComputeDevice::select(DeviceChoice::Gpu) {
        Ok(gpu) => devices.push(gpu),
        Err(err) if std::env::var_os("FOCALYOLO_REQUIRE_GPU").is_some() => {
            panic!("no wgpu adapter: {err}")
        }
        Err(err) => println!("wgpu device skipped: {err}"),
    }
    devices
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("f32 tensor")
}

/// Largest |a - b|, after checking the shapes agree.
pub fn max_abs_diff<const D: usize>(
    ours: Tensor<D>,
    reference: &focalyolo::weights::WeightTensor,
) -> f32 {
    assert_eq!(ours.dims().to_vec(), reference.shape, "shape");
    to_vec(ours)
        .iter()
        .zip(&reference.values)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, nan_max)
}

/// The larger of two differences, NaN if either is: a fold with `f32::max` would skip a NaN,
/// and a kernel or model writing NaN would pass.
pub fn nan_max(worst: f32, difference: f32) -> f32 {
    if difference.is_nan() || difference > worst {
        difference
    } else {
        worst
    }
}

/// `focalyolo run` with the shared yolo11n.pt on the CPU: `source`, then `args`, its JSON
/// lines to `json`.
pub fn run_yolo11n(shared: &Path, source: &Path, args: &[&str], json: &Path) -> Output {
    yolo11n_run(shared, source, args, json)
        .output()
        .expect("the binary runs")
}

/// The command [`run_yolo11n`] runs, to start it beside something else.
pub fn yolo11n_run(
    shared: &Path,
    source: impl AsRef<OsStr>,
    args: &[&str],
    json: &Path,
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_focalyolo"));
    command
        .args(["run", "--device", "cpu", "--weights"])
        .arg(shared.join("weights/yolo11n.pt"))
        .arg("--source")
        .arg(source)
        .args(args)
        .arg("--json")
        .arg(json);
    command
}

/// Fail with `run`'s stderr unless it succeeded.
pub fn succeeded(output: &Output) {
    assert!(
        output.status.success(),
        "run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The frame records `run --json` wrote, one per line.
pub fn frame_records(json: &Path) -> Vec<FrameRecord> {
    std::fs::read_to_string(json)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is a frame record"))
        .collect()
}

/// A guard against a hang that is not a speed check: `budget` of the time a fair share of
/// this machine gives the tests. Wall time counts in full while no more tasks are runnable
/// than there are cores, and in proportion `cores / load` (the 1-minute load average) while
/// more are, so another job beside the suite stretches the wait instead of failing it. A
/// first inference on lavapipe compiles every kernel: 34 s alone here (60 s with no shader
/// cache), over 300 s of wall time with another CPU job running. Never more than
/// [`HangGuard::WALL_LIMIT`] of wall time, so a real hang still ends.
pub struct HangGuard {
    budget: Duration,
    used: Duration,
    started: Instant,
    last: Instant,
}

impl HangGuard {
    pub const WALL_LIMIT: Duration = Duration::from_secs(1200);

    pub fn new(budget: Duration) -> Self {
        let now = Instant::now();
        Self {
            budget,
            used: Duration::ZERO,
            started: now,
            last: now,
        }
    }

    /// Count the time since the last check at the machine's current share; panic naming
    /// `what` once the budget or the wall limit is spent.
    pub fn check(&mut self, what: &str) {
        let now = Instant::now();
        self.used += (now - self.last).mul_f64(machine_share());
        self.last = now;
        let waited = now - self.started;
        assert!(
            self.used < self.budget && waited < Self::WALL_LIMIT,
            "timed out waiting for {what}: {waited:.0?} of wall time, {:.0?} of a fair share of the machine",
            self.used
        );
    }
}

/// `limit`, a bound on wall time that holds on an idle machine, stretched as [`HangGuard`]
/// stretches its budget: in full while no more tasks are runnable than there are cores, by
/// `load / cores` (the 1-minute load average, read now) while more are. For a bound checked
/// after the fact, on a latency or a run's length just measured. Never more than
/// [`HangGuard::WALL_LIMIT`].
pub fn load_scaled(limit: Duration) -> Duration {
    Duration::try_from_secs_f64(limit.as_secs_f64() / machine_share())
        .map_or(HangGuard::WALL_LIMIT, |scaled| {
            scaled.min(HangGuard::WALL_LIMIT)
        })
}

/// The share of a core each runnable task gets: 1 unless the load average is above the
/// number of cores (and 1 where the load cannot be read).
fn machine_share() -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<f64>().ok());
    load.map_or(1.0, |load| (cores / load).min(1.0))
}

/// An HTTP server on 127.0.0.1 that serves one body at any path, whole or by the byte
/// range asked for (ffmpeg asks for ranges to seek), to at most [`HttpFile::MOST_REQUESTS`]
/// requests, each on its own thread; it stops when dropped.
pub struct HttpFile {
    address: std::net::SocketAddr,
    stop: Option<std::sync::mpsc::Sender<()>>,
    server: Option<std::thread::JoinHandle<()>>,
}

impl HttpFile {
    pub const MOST_REQUESTS: usize = 32;

    pub fn serve(body: Vec<u8>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let body = std::sync::Arc::new(body);
        let server = std::thread::spawn(move || {
            let mut served = 0;
            while served < Self::MOST_REQUESTS
                && let Err(std::sync::mpsc::TryRecvError::Empty) = stopped.try_recv()
            {
                match listener.accept() {
                    Ok((connection, _)) => {
                        served += 1;
                        let body = body.clone();
                        std::thread::spawn(move || answer(connection, &body));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self {
            address,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// The address of `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.address)
    }
}

impl Drop for HttpFile {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

/// Answer one request for `body` on `connection`: 206 with the part asked for by a
/// `Range: bytes=START-[END]` header, else 200 with all of it. A client that goes away
/// mid-answer (ffmpeg seeking elsewhere) ends it.
fn answer(connection: std::net::TcpStream, body: &[u8]) {
    use std::io::{BufRead, Write};
    let timeout = Some(Duration::from_secs(30));
    if connection.set_nonblocking(false).is_err()
        || connection.set_read_timeout(timeout).is_err()
        || connection.set_write_timeout(timeout).is_err()
    {
        return;
    }
    let Ok(reading) = connection.try_clone() else {
        return;
    };
    let mut range = None;
    let mut lines = std::io::BufReader::new(reading).lines();
    while let Some(Ok(line)) = lines.next() {
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(bytes) = lower.strip_prefix("range: bytes=")
            && let Some((start, end)) = bytes.split_once('-')
            && let Ok(start) = start.trim().parse::<usize>()
        {
            let last = end.trim().parse::<usize>().unwrap_or(usize::MAX);
            range = Some((start, last.min(body.len().saturating_sub(1))));
        }
    }
    let mut connection = connection;
    let head = match range {
        Some((start, last)) if start < body.len() => format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{last}/{}\r\n\
             Content-Length: {}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n",
            body.len(),
            last + 1 - start
        ),
        Some(_) => format!(
            "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n",
            body.len()
        ),
        None => format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\n\
             Connection: close\r\n\r\n",
            body.len()
        ),
    };
    let part = match range {
        Some((start, last)) if start < body.len() => &body[start..=last],
        Some(_) => &[][..],
        None => body,
    };
    let _ = connection
        .write_all(head.as_bytes())
        .and_then(|()| connection.write_all(part));
}
