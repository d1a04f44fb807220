//! `run --source URL` against real servers started here, on 127.0.0.1 only: ffmpeg serving
//! MPEG-TS over TCP and MJPEG over HTTP, GStreamer's RTSP server (`tests/servers/`), a
//! server that accepts and never sends, a refused port. Every server and run is bounded in
//! time (a fair share of the machine's, [`HangGuard`]) and stopped by the test.

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{TryRecvError, channel};
use std::time::{Duration, Instant};

use crate::common::{
    HangGuard, HttpFile, frame_records, load_scaled, require_shared, run_yolo11n, yolo11n_run,
};

/// The longest any run or server here may take before the test fails (and kills it): time
/// at a fair share of the machine ([`HangGuard`]), so a busy machine stretches it.
const LONGEST: Duration = Duration::from_secs(120);

/// A child process killed when the test is done with it, even on a failed assertion.
pub struct Running(Child);

impl Running {
    fn start(command: &mut Command) -> Self {
        Self(
            command
                .stdin(Stdio::null())
                .spawn()
                .expect("the process starts"),
        )
    }

    /// Its exit, waiting at most `within` of a fair share of the machine ([`HangGuard`]).
    fn wait(&mut self, within: Duration) -> ExitStatus {
        let mut guard = HangGuard::new(within);
        let waiting_for = format!("a process to exit, {within:?} at most");
        loop {
            if let Some(status) = self.0.try_wait().expect("waitable") {
                return status;
            }
            guard.check(&waiting_for);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its exit and output (stdout and stderr piped), waiting at most `within`.
    fn output(mut self, within: Duration) -> Output {
        let status = self.wait(within);
        let mut stderr = Vec::new();
        if let Some(mut pipe) = self.0.stderr.take() {
            pipe.read_to_end(&mut stderr).unwrap();
        }
        Output {
            status,
            stdout: Vec::new(),
            stderr,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nothing listens on (free a moment ago).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// ffmpeg serving `seconds` of `clip`, re-encoded as a live encoder would (H.264, no
/// B-frames, a key frame every second), at its own pace (`-re`, unless `paced` is false),
/// to one client of `url`.
pub fn ffmpeg_server(
    clip: &Path,
    seconds: f64,
    paced: bool,
    format: &[&str],
    url: &str,
) -> Running {
    let mut command = Command::new("ffmpeg");
    command.args(["-hide_banner", "-loglevel", "error", "-nostdin"]);
    if paced {
        command.arg("-re");
    }
    command
        .args(["-t", &seconds.to_string(), "-i"])
        .arg(clip)
        .arg("-an")
        .args(format)
        .arg(url);
    Running::start(&mut command)
}

pub const MPEG_TS_H264: [&str; 10] = [
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-tune",
    "zerolatency",
    "-g",
    "10",
    "-f",
    "mpegts",
];

/// `run` on `url` with `args`, stderr piped.
fn start_run(shared: &Path, url: &str, args: &[&str], json: &Path) -> Running {
    Running::start(yolo11n_run(shared, url, args, json).stderr(Stdio::piped()))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Wait (bounded by [`LONGEST`] of a fair share of the machine) until `json` holds at least
/// `lines` frame records.
fn wait_for_records(json: &Path, lines: usize) {
    let mut guard = HangGuard::new(LONGEST);
    let waiting_for = format!("{lines} frame records");
    while std::fs::read_to_string(json).map_or(0, |text| text.lines().count()) < lines {
        guard.check(&waiting_for);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// MPEG-2 video in MPEG-TS: another codec than [`MPEG_TS_H264`]'s.
const MPEG_TS_MPEG2: [&str; 8] = [
    "-c:v",
    "mpeg2video",
    "-q:v",
    "4",
    "-g",
    "10",
    "-f",
    "mpegts",
];

#[test]
fn a_stream_stopped_and_restarted_at_another_size_and_codec_is_followed_until_the_timeout() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("frames.jsonl");
    let saved = dir.path().join("annotated.mp4");
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let listen = format!("{url}?listen=1");
    // 480×360 H.264, then 640×360 MPEG-2.
    let first = shared.join("videos/vamsi_pedestrians.avi");
    let second = shared.join("videos/ckd_traffic.webm");
    let mut server = ffmpeg_server(&first, 60.0, true, &MPEG_TS_H264, &listen);
    let save = saved.to_str().unwrap();
    let run = start_run(
        &shared,
        &url,
        &["--imgsz", "320", "--reconnect-timeout", "4", "--save", save],
        &json,
    );
    wait_for_records(&json, 5);
    // Stopped mid-way; back a second later with another clip of another size and codec.
    drop(server);
    std::thread::sleep(Duration::from_secs(1));
    server = ffmpeg_server(&second, 3.0, true, &MPEG_TS_MPEG2, &listen);
    assert!(server.wait(LONGEST).success(), "the second server serves");
    let last_server_ended = Instant::now();
    let output = run.output(LONGEST);
    let ended_after = last_server_ended.elapsed();
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    // Not before the timeout (less the time the last frames took to arrive); and on an idle
    // machine within 10 s, more on a busy one.
    let latest = load_scaled(Duration::from_secs(10));
    assert!(
        (Duration::from_secs(3)..latest).contains(&ended_after),
        "the run ends about 4 s after the last server (by {latest:?} at this load): {ended_after:?}\n{log}"
    );
    assert!(log.contains("reconnecting (attempt 1"), "{log}");
    assert!(log.contains("(--reconnect-timeout), the run ends"), "{log}");
    let records = frame_records(&json);
    let widths: Vec<u32> = records.iter().map(|r| r.width).collect();
    let switch = widths
        .iter()
        .position(|&w| w == 640)
        .expect("frames of the second clip");
    assert!(switch > 0, "frames of the first clip come first");
    assert!(
        widths[..switch].iter().all(|&w| w == 480) && widths[switch..].iter().all(|&w| w == 640),
        "{widths:?}"
    );
    // One timeline across the two connections: frame numbers and times go on rising.
    for pair in records.windows(2) {
        assert!(
            pair[1].frame > pair[0].frame,
            "{} then {}",
            pair[0].frame,
            pair[1].frame
        );
        assert!(
            pair[1].pts > pair[0].pts,
            "{} then {}",
            pair[0].pts,
            pair[1].pts
        );
    }
    assert!(
        log.contains("1 reconnections"),
        "the summary counts the reconnection: {log}"
    );
    // The saved video holds every processed frame, the second clip's fitted into the
    // first's size, and plays.
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=width,height,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&saved)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&probe.stdout).trim(),
        format!("480,360,{}", records.len())
    );
}

/// The frames of the local file at `path` (`ffprobe -count_frames`).
fn frames_in(path: &Path) -> usize {
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&probe.stdout).trim().to_string();
    text.parse().unwrap_or_else(|_| panic!("ffprobe: {text}"))
}

#[test]
fn a_remote_file_with_a_duration_plays_as_a_file() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let clip = shared.join("videos/ckd_traffic.webm");
    let server = HttpFile::serve(std::fs::read(&clip).unwrap());
    let remote = dir.path().join("remote.jsonl");
    let output = start_run(
        &shared,
        &server.url("ckd_traffic.webm"),
        &["--imgsz", "320"],
        &remote,
    )
    .output(LONGEST);
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert!(!log.contains("reconnect"), "a file's end is no loss: {log}");
    // Every frame, with the boxes the local file gives.
    let local = dir.path().join("local.jsonl");
    let output = run_yolo11n(&shared, &clip, &["--imgsz", "320"], &local);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (remote, local) = (frame_records(&remote), frame_records(&local));
    assert_eq!(remote.len(), frames_in(&clip));
    for (r, l) in remote.iter().zip(&local) {
        assert_eq!((r.frame, r.pts), (l.frame, l.pts));
        assert_eq!(r.detections, l.detections, "frame {}", r.frame);
    }
    assert_eq!(remote.len(), local.len());
}

#[test]
fn a_server_that_never_sends_ends_the_run_within_the_timeout() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("frames.jsonl");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("tcp://{}", listener.local_addr().unwrap());
    // Accept whoever comes and hold the connection open, silent, until the test is done
    // with the run (drops `done`, on a failed assertion too).
    let (done, test_done) = channel::<()>();
    let silent = std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let mut held = Vec::new();
        while let Err(TryRecvError::Empty) = test_done.try_recv() {
            if let Ok((connection, _)) = listener.accept() {
                held.push(connection);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        held.len()
    });
    let started = Instant::now();
    let output = start_run(&shared, &url, &["--reconnect-timeout", "3"], &json).output(LONGEST);
    let took = started.elapsed();
    drop(done);
    let log = stderr(&output);
    assert!(!output.status.success(), "{log}");
    assert!(log.contains("no frame for"), "the reason is given: {log}");
    // The model loads first (a few seconds), then 3 s of waiting: under 15 s on an idle
    // machine, more on a busy one.
    let limit = load_scaled(Duration::from_secs(15));
    assert!(took < limit, "{took:?}, over {limit:?} at this load: {log}");
    assert!(silent.join().unwrap() >= 1, "the run connected");
}

#[test]
fn a_refused_port_ends_the_run_with_the_reason_and_no_password() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("frames.jsonl");
    let url = format!("rtsp://admin:hunter2@127.0.0.1:{}/cam", free_port());
    let output = start_run(&shared, &url, &["--reconnect-timeout", "2"], &json).output(LONGEST);
    let log = stderr(&output);
    assert!(!output.status.success(), "{log}");
    assert!(log.contains("Connection refused"), "{log}");
    assert!(log.contains("rtsp://admin:***@127.0.0.1"), "{log}");
    assert!(!log.contains("hunter2"), "the password shows: {log}");
    assert!(!json.exists(), "nothing to write without a frame");
}

#[test]
fn an_mjpeg_feed_over_http_is_read_live_skipping_to_the_newest_frame() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("frames.jsonl");
    let url = format!("http://127.0.0.1:{}/cam.mjpg", free_port());
    // Unpaced, the feed comes far faster than the model runs: a live source never waits
    // for it, so most frames are skipped.
    let mjpeg = ["-c:v", "mjpeg", "-q:v", "5", "-f", "mpjpeg", "-listen", "1"];
    let _server = ffmpeg_server(
        &shared.join("videos/mjpeg_beach_640x360.mjpeg"),
        4.0,
        false,
        &mjpeg,
        &url,
    );
    // Let ffmpeg listen before the run knocks (a refusal would be retried anyway).
    std::thread::sleep(Duration::from_millis(500));
    let output = start_run(&shared, &url, &["--reconnect-timeout", "2"], &json).output(LONGEST);
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    let records = frame_records(&json);
    assert!(records.len() >= 2, "{log}");
    assert!(records.iter().all(|r| (r.width, r.height) == (640, 360)));
    let decoded = records.last().unwrap().frame + 1;
    assert!(
        (records.len() as u64) < decoded,
        "{} frames processed of {decoded} decoded: none skipped",
        records.len()
    );
    assert!(
        log.contains("skipped (the model was slower than the source)"),
        "{log}"
    );
}

/// GStreamer's RTSP server (`tests/servers/rtsp_server.py`) serving `clip` at `mount` with
/// a user and password; its port. `None` (printed) where its packages are not installed.
fn rtsp_server(clip: &Path, mount: &str) -> Option<(Running, u16)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/rtsp_server.py");
    let has_bindings = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import gi; gi.require_version('GstRtspServer', '1.0')",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_bindings {
        assert!(
            std::env::var_os("FOCALYOLO_REQUIRE_SHARED").is_none(),
            "GStreamer's RTSP server is not installed (.ci/run installs it)"
        );
        println!("skipped: GStreamer's RTSP server (gir1.2-gst-rtsp-server-1.0) is not installed");
        return None;
    }
    let mut server = Running::start(
        Command::new("/usr/bin/python3")
            .arg(script)
            .arg(clip)
            .args([mount, "60", "admin", "hunter2"])
            .stdout(Stdio::piped()),
    );
    let mut ready = String::new();
    let stdout = server.0.stdout.as_mut().expect("piped");
    let mut byte = [0u8];
    while !ready.ends_with('\n') && stdout.read(&mut byte).unwrap() == 1 {
        ready.push(byte[0] as char);
    }
    let port = ready
        .trim()
        .strip_prefix("ready ")
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("the RTSP server did not start: {ready:?}"));
    Some((server, port))
}

#[test]
fn an_rtsp_camera_with_a_password_is_read_and_its_faults_are_named() {
    let shared = require_shared!();
    let Some((_server, port)) = rtsp_server(&shared.join("videos/assembly_walking.mp4"), "cam")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("frames.jsonl");
    let address = |credentials: &str, mount: &str| {
        format!("rtsp://admin:{credentials}@127.0.0.1:{port}/{mount}")
    };
    let args = [
        "--imgsz",
        "320",
        "--max-frames",
        "6",
        "--reconnect-timeout",
        "3",
    ];
    let output = start_run(&shared, &address("hunter2", "cam"), &args, &json).output(LONGEST);
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert!(!log.contains("hunter2"), "the password shows: {log}");
    let records = frame_records(&json);
    assert_eq!(records.len(), 6, "{log}");
    assert!(records.iter().all(|r| (r.width, r.height) == (1280, 720)));
    assert!(
        records
            .iter()
            .any(|r| r.detections.iter().any(|d| d.name == "person")),
        "the people walking are found"
    );
    for (credentials, mount, reason) in [
        ("hunter2", "nope", "404 Not Found"),
        ("wrongpass", "cam", "401 Unauthorized"),
    ] {
        let output = start_run(&shared, &address(credentials, mount), &args, &json).output(LONGEST);
        let log = stderr(&output);
        assert!(!output.status.success(), "{log}");
        assert!(log.contains(reason), "{reason}: {log}");
        assert!(!log.contains(credentials), "the password shows: {log}");
    }
}
