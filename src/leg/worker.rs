//! The media driver: a few workers (one OS thread per core), each running all of its legs
//! on one shared 20 ms clock. On every tick a worker drains each leg's non-blocking
//! sockets, runs [`RtpLeg::tick`], sends the packet it produced and hands events to the
//! call. There is no task, timer or wake-up per call: the cost of a call is the work on its
//! packets. Workers are plain threads sleeping to an absolute deadline, not tokio tasks, so
//! a busy async runtime cannot delay the media clock.

use super::rtp::RtpLeg;
use super::{LegCommand, LegEvent, LegTap, MediaApp};
use std::io::ErrorKind;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// The frame period every worker ticks at.
pub const TICK: Duration = Duration::from_millis(20);
/// Most datagrams read from one socket in one tick (a flood cannot starve other legs).
const MAX_READS_PER_TICK: usize = 32;
/// A worker more than this many ticks late skips ahead instead of sending a burst.
const MAX_CATCH_UP_TICKS: u32 = 3;

/// The bound, non-blocking sockets of a leg: RTP, and RTCP unless rtcp-mux.
pub struct LegSockets {
    pub rtp: UdpSocket,
    pub rtcp: Option<UdpSocket>,
}

impl LegSockets {
    /// Binds RTP on `port` and RTCP on `port + 1`, both non-blocking.
    pub fn bind(ip: std::net::IpAddr, port: u16) -> std::io::Result<LegSockets> {
        let rtp = UdpSocket::bind((ip, port))?;
        let rtcp = UdpSocket::bind((ip, port.wrapping_add(1)))?;
        rtp.set_nonblocking(true)?;
        rtcp.set_nonblocking(true)?;
        // Without kernel stamps arrivals are taken at the tick: worse jitter estimates.
        if let Err(e) = super::udp::enable_timestamps(&rtp) {
            tracing::debug!(error = %e, "no SO_TIMESTAMPNS on the RTP socket");
        }
        Ok(LegSockets {
            rtp,
            rtcp: Some(rtcp),
        })
    }

    /// Binds the first free pair handed out by `allocate` (up to 16 tries), giving back
    /// ports another process holds through `release`.
    pub fn bind_free_pair(
        ip: std::net::IpAddr,
        mut allocate: impl FnMut() -> Option<u16>,
        mut release: impl FnMut(u16),
    ) -> Option<(u16, LegSockets)> {
        for _ in 0..16 {
            let port = allocate()?;
            match LegSockets::bind(ip, port) {
                Ok(s) => return Some((port, s)),
                Err(e) => {
                    tracing::debug!(port, error = %e, "RTP port busy; trying the next");
                    release(port);
                }
            }
        }
        None
    }
}

/// A leg a worker can run on its clock: an RTP leg with its sockets, or a stream leg fed by
/// a WebSocket task. `step` must not block.
pub trait PacedLeg: Send {
    /// One tick: take what arrived, run the app, send what is due.
    fn step(&mut self, now: Instant, wall: SystemTime, ntp: u64, buf: &mut [u8]);
    /// True once the leg was told to stop (it is then finished and dropped).
    fn is_done(&self) -> bool;
    /// Final counters and recording; sends [`LegEvent::Stopped`] last.
    fn finish(self: Box<Self>, now: Instant);
}

/// The call's side of a running leg.
pub struct LegHandle {
    pub commands: mpsc::UnboundedSender<LegCommand>,
    pub events: mpsc::UnboundedReceiver<LegEvent>,
}

struct Attach {
    leg: RtpLeg,
    sockets: LegSockets,
    app: Box<dyn MediaApp>,
    /// Apps replaced during the call, kept for their reports.
    retired: Vec<Box<dyn MediaApp>>,
    tap: Option<Box<dyn LegTap>>,
    commands: mpsc::UnboundedReceiver<LegCommand>,
    events: mpsc::UnboundedSender<LegEvent>,
}

/// The set of media workers of a process.
pub struct MediaEngine {
    workers: Vec<Sender<Box<dyn PacedLeg>>>,
    next: AtomicUsize,
    stop: Arc<AtomicBool>,
    threads: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl MediaEngine {
    /// Starts `workers` worker threads (at least one).
    pub fn start(workers: usize) -> Arc<MediaEngine> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut senders = Vec::new();
        let mut threads = Vec::new();
        for i in 0..workers.max(1) {
            let (tx, attach_rx) = std::sync::mpsc::channel::<Box<dyn PacedLeg>>();
            senders.push(tx);
            let stop = stop.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("media-{i}"))
                .spawn(move || run_worker(attach_rx, stop));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => tracing::error!(error = %e, "cannot start a media worker thread"),
            }
        }
        Arc::new(MediaEngine {
            workers: senders,
            next: AtomicUsize::new(0),
            stop,
            threads: std::sync::Mutex::new(threads),
        })
    }

    /// One worker per available core.
    pub fn start_default() -> Arc<MediaEngine> {
        MediaEngine::start(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Runs `leg` with `app` (and an optional recording tap) on the next worker.
    pub fn attach(
        &self,
        leg: RtpLeg,
        sockets: LegSockets,
        app: Box<dyn MediaApp>,
        tap: Option<Box<dyn LegTap>>,
    ) -> LegHandle {
        let (ctx, crx) = mpsc::unbounded_channel();
        let (etx, erx) = mpsc::unbounded_channel();
        let attach = Attach {
            leg,
            sockets,
            app,
            retired: Vec::new(),
            tap,
            commands: crx,
            events: etx,
        };
        self.attach_paced(Box::new(Entry {
            a: attach,
            done: false,
        }));
        LegHandle {
            commands: ctx,
            events: erx,
        }
    }

    /// Runs any paced leg on the next worker. If the engine is shutting down the leg is
    /// finished at once (it reports `Stopped`).
    pub fn attach_paced(&self, leg: Box<dyn PacedLeg>) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        if let Err(std::sync::mpsc::SendError(leg)) = self.workers[i].send(leg) {
            leg.finish(Instant::now());
        }
    }

    /// Stops every leg (each finalizes its recording and reports `Stopped`) and waits for
    /// the workers to end.
    pub async fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let threads: Vec<_> = self
            .threads
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

/// NTP time (RFC 3550 §4) of the wall clock.
fn ntp_now() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() + 2_208_988_800;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

fn is_rtcp(datagram: &[u8]) -> bool {
    // RFC 5761 §4: RTCP packet types 200–204 land on 72–76 with the marker bit.
    datagram.len() >= 2 && (200..=204).contains(&datagram[1])
}

struct Entry {
    a: Attach,
    done: bool,
}

impl PacedLeg for Entry {
    fn is_done(&self) -> bool {
        self.done
    }

    fn step(&mut self, now: Instant, wall: SystemTime, ntp: u64, buf: &mut [u8]) {
        let a = &mut self.a;
        loop {
            match a.commands.try_recv() {
                Ok(LegCommand::ReplaceApp(swap)) => {
                    let old = std::mem::replace(&mut a.app, swap.0);
                    a.retired.push(old);
                }
                Ok(LegCommand::RestoreApp) => {
                    // The original app; the stand-ins since (ringback, bridge) have no report.
                    if !a.retired.is_empty() {
                        a.app = a.retired.swap_remove(0);
                        a.retired.clear();
                    }
                }
                Ok(cmd) => a.leg.command(cmd),
                Err(mpsc::error::TryRecvError::Empty) => break,
                // The call is gone: nobody will stop us.
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    a.leg.command(LegCommand::Stop);
                    break;
                }
            }
        }
        for _ in 0..MAX_READS_PER_TICK {
            match super::udp::recv_with_time(&a.sockets.rtp, buf) {
                Ok((n, _, _)) if is_rtcp(&buf[..n]) => a.leg.on_rtcp(now, ntp, &buf[..n]),
                Ok((n, from, stamp)) => {
                    // The kernel's arrival time, on the monotonic clock.
                    let age = stamp.and_then(|t| wall.duration_since(t).ok());
                    let arrival = age
                        .filter(|a| *a < TICK * 10)
                        .and_then(|a| now.checked_sub(a))
                        .unwrap_or(now);
                    a.leg.on_rtp(arrival, from, &buf[..n]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => continue,
            }
        }
        if let Some(rtcp) = &a.sockets.rtcp {
            for _ in 0..MAX_READS_PER_TICK {
                match rtcp.recv_from(buf) {
                    Ok((n, _)) => a.leg.on_rtcp(now, ntp, &buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => continue,
                }
            }
        }
        let out = a.leg.tick(now, ntp, a.app.as_mut());
        if let Some(dest) = out.rtp_to
            && a.sockets.rtp.send_to(a.leg.rtp_packet(), dest).is_err()
        {
            a.leg.count_send_error();
        }
        if let Some((report, dest)) = out.rtcp {
            let sock = a.sockets.rtcp.as_ref().unwrap_or(&a.sockets.rtp);
            let _ = sock.send_to(&report, dest);
        }
        if let Some(tap) = a.tap.as_mut() {
            tap.push(
                a.leg.ticks().saturating_sub(1),
                a.leg.caller_frame(),
                a.leg.sent_frame(),
            );
        }
        while let Some(ev) = a.leg.poll_event() {
            let _ = a.events.send(ev);
        }
        self.done = a.leg.is_stopped();
    }

    fn finish(mut self: Box<Self>, now: Instant) {
        let mut stats = self.a.leg.stats(now);
        stats.recording = self
            .a
            .tap
            .as_mut()
            .and_then(|t| t.finish())
            .or_else(|| self.a.app.on_stop());
        for old in &mut self.a.retired {
            let key = old.on_stop();
            stats.recording = stats.recording.take().or(key);
        }
        stats.agent = self
            .a
            .retired
            .iter_mut()
            .chain(std::iter::once(&mut self.a.app))
            .find_map(|app| app.take_report())
            .map(Box::new);
        while let Some(ev) = self.a.leg.poll_event() {
            let _ = self.a.events.send(ev);
        }
        let events = self.a.events.clone();
        // Close the sockets before the call hears `Stopped` and releases the ports.
        drop(self);
        let _ = events.send(LegEvent::Stopped(Box::new(stats)));
    }
}

fn run_worker(attach_rx: Receiver<Box<dyn PacedLeg>>, stop: Arc<AtomicBool>) {
    let mut legs: Vec<Box<dyn PacedLeg>> = Vec::new();
    let mut buf = vec![0u8; 2048];
    let mut deadline = Instant::now();
    loop {
        if stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            for e in legs.drain(..) {
                e.finish(now);
            }
            return;
        }
        if legs.is_empty() {
            match attach_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(leg) => legs.push(leg),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            }
            deadline = Instant::now();
        }
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
        let now = Instant::now();
        if now.saturating_duration_since(deadline) > TICK * MAX_CATCH_UP_TICKS {
            tracing::warn!(
                late_ms = now.saturating_duration_since(deadline).as_millis() as u64,
                legs = legs.len(),
                "media worker fell behind; skipping ahead"
            );
            deadline = now;
        }
        deadline += TICK;
        while let Ok(leg) = attach_rx.try_recv() {
            legs.push(leg);
        }
        let wall = SystemTime::now();
        let ntp = ntp_now();
        for e in legs.iter_mut() {
            e.step(now, wall, ntp, &mut buf);
        }
        if legs.iter().any(|e| e.is_done()) {
            let (done, running): (Vec<_>, Vec<_>) = legs.drain(..).partition(|e| e.is_done());
            legs = running;
            for e in done {
                e.finish(now);
            }
        }
    }
}
