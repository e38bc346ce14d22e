//! Optional durable spool: write-ahead JSONL segments holding the exact bytes that go on
//! the wire, an acknowledged-offset sidecar per segment, ownership by file lock, and replay
//! of orphaned segments (their owner died) from the acknowledged offset.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
#[cfg(unix)]
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::lock;

/// Elsewhere than on Unix, files keep the permissions (ACLs) they inherit from the spool
/// directory: `mode` is a no-op there.
#[cfg(not(unix))]
trait OpenOptionsExt {
    fn mode(&mut self, mode: u32) -> &mut Self;
}

#[cfg(not(unix))]
impl OpenOptionsExt for OpenOptions {
    fn mode(&mut self, _mode: u32) -> &mut Self {
        self
    }
}

/// Positional read (`pread` on Unix, `ReadFile` at an offset on Windows): segments are read
/// back while the writer appends to them, so reads never share a file cursor with it.
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    #[cfg(unix)]
    return std::os::unix::fs::FileExt::read_at(file, buf, offset);
    #[cfg(windows)]
    return std::os::windows::fs::FileExt::seek_read(file, buf, offset);
    #[cfg(not(any(unix, windows)))]
    {
        let _ = (file, buf, offset);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the spool needs positional file reads (Unix or Windows)",
        ))
    }
}

/// [`read_at`] until `buf` is full; end of file first is `UnexpectedEof`.
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match read_at(file, buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "spool segment ended early",
                ))
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Makes the spool directory private to its owner (mode 0700) on Unix; elsewhere it keeps
/// the permissions it inherits from its parent directory.
fn make_private_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// When events are written to the spool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The sender appends as it drains the queue (loses at most one drain tick on kill -9).
    Async,
    /// `emit()` appends before returning (an accepted event survives kill -9).
    Sync,
}

/// Spool settings.
#[derive(Clone, Debug)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    pub mode: Mode,
    pub max_bytes: u64,
    pub max_age: Duration,
    pub segment_bytes: u64,
    pub segment_age: Duration,
}

impl SpoolConfig {
    /// Sets the size cap, and segments of `max_bytes / 64` (4 to 64 MiB), so that a full
    /// spool holds at most about 64 segments (one open descriptor each).
    pub fn set_max_bytes(&mut self, max_bytes: u64) {
        self.max_bytes = max_bytes;
        self.segment_bytes = (max_bytes / 64).clamp(4 * 1024 * 1024, 64 * 1024 * 1024);
    }

    /// Defaults (256 MiB, 7 days, 4 MiB / 60 s segments) for `dir`.
    pub fn new(dir: PathBuf, mode: Mode) -> Self {
        Self {
            dir,
            mode,
            max_bytes: 256 * 1024 * 1024,
            max_age: Duration::from_secs(7 * 24 * 3600),
            segment_bytes: 4 * 1024 * 1024,
            segment_age: Duration::from_secs(60),
        }
    }
}

/// One segment file, locked by its owner for as long as it is open.
#[derive(Debug)]
pub struct Segment {
    path: PathBuf,
    /// The one descriptor (it holds the lock): appends (serialised by the spool's
    /// `current` lock) and positioned reads by the sender (no lock needed).
    file: File,
    /// Bytes of complete lines written; the reader never reads past it.
    size: AtomicU64,
    acked: AtomicU64,
    sealed: AtomicBool,
    deleted: AtomicBool,
    opened: Instant,
    /// About when its first event was written (for the age of the oldest unsent event).
    born: Instant,
    /// Events written and not yet read back.
    unread: AtomicU64,
    /// Claimed from a dead owner: lines are checked as they are read back.
    replayed: bool,
}

impl Segment {
    fn ack_path(&self) -> PathBuf {
        ack_path_of(&self.path)
    }

    fn new(
        path: PathBuf,
        file: File,
        size: u64,
        acked: u64,
        replayed: bool,
        born: Instant,
    ) -> io::Result<Self> {
        Ok(Self {
            path,
            file,
            size: AtomicU64::new(size),
            acked: AtomicU64::new(acked),
            sealed: AtomicBool::new(replayed),
            deleted: AtomicBool::new(false),
            opened: Instant::now(),
            born,
            unread: AtomicU64::new(0),
            replayed,
        })
    }

    /// About when the segment's first event was written.
    pub fn born(&self) -> Instant {
        self.born
    }
}

fn ack_path_of(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".ack");
    PathBuf::from(s)
}

/// Where an event sits in the spool: its segment and the offset just past its line.
#[derive(Clone, Debug)]
pub struct Pos {
    pub seg: Arc<Segment>,
    pub end: u64,
}

/// Why an append failed.
#[derive(Debug)]
pub enum AppendError {
    Full,
    Io(io::Error),
}

/// What was found in orphaned segments at open (their events stay on disk and are read
/// back by the sender like live ones).
#[derive(Debug, Default)]
pub struct Replay {
    pub events: u64,
    pub corrupt_lines: u64,
    pub expired_events: u64,
    pub corrupt_segments: u64,
}

/// Events read back from the spool, oldest first.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<(Vec<u8>, Pos)>,
    /// Events lost because their segment could not be read (already removed from the
    /// spool's unread count).
    pub unreadable: u64,
}

/// The sender's read position: segments not yet fully read, oldest first, and a small
/// read-ahead buffer over the front one.
#[derive(Debug, Default)]
struct Reader {
    segs: VecDeque<Arc<Segment>>,
    /// Offset in the front segment of the first byte of `buf[pos..]`.
    offset: u64,
    buf: Vec<u8>,
    pos: usize,
    /// Inside a line longer than [`MAX_LINE`]: bytes are skipped up to its newline.
    skipping: bool,
}

impl Reader {
    fn push(&mut self, seg: Arc<Segment>) {
        if self.segs.is_empty() {
            self.restart(&seg);
        }
        self.segs.push_back(seg);
    }

    fn restart(&mut self, seg: &Segment) {
        self.offset = seg.acked.load(Ordering::Acquire);
        self.buf.clear();
        self.pos = 0;
        self.skipping = false;
    }

    fn pop(&mut self) {
        self.segs.pop_front();
        if let Some(next) = self.segs.front().cloned() {
            self.restart(&next);
        } else {
            self.buf.clear();
            self.pos = 0;
            self.skipping = false;
        }
        if self.buf.capacity() > 2 * READ_CHUNK {
            self.buf.shrink_to(READ_CHUNK);
        }
    }
}

/// Lines longer than this in a claimed segment are counted as unreadable and skipped.
const MAX_LINE: usize = 32 * 1024 * 1024;
/// Bytes read from disk at a time (the sender's read-ahead window).
const READ_CHUNK: usize = 256 * 1024;

/// `a -= n`, never below zero (the counts are gauges; a mismatch must not wrap).
fn sub(a: &AtomicU64, n: u64) {
    let _ = a.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
        Some(v.saturating_sub(n))
    });
}

/// Whether a spooled line is a JSON document (replayed lines are checked before sending).
fn valid_line(line: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok()
}

/// The spool of one emitter.
#[derive(Debug)]
pub struct Spool {
    pub cfg: SpoolConfig,
    /// `cfg.dir` resolved at open, to recognise our descriptors in `/proc/self/fd`.
    canonical_dir: PathBuf,
    prefix: String,
    seq: AtomicU64,
    current: Mutex<Option<Arc<Segment>>>,
    total: AtomicU64,
    /// Events written and not yet read back by the sender.
    unread: AtomicU64,
    /// Events in the spool not yet acknowledged (or dropped with a reason).
    held: AtomicU64,
    reader: Mutex<Reader>,
}

fn host() -> String {
    fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| {
            h.trim()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect()
        })
        .filter(|h: &String| !h.is_empty())
        .unwrap_or_else(|| "host".to_string())
}

/// Creates, locks and only then publishes a segment: it exists under a name that orphan
/// claiming ignores until the lock is held, so a starting emitter can never claim (and
/// delete) a live segment in the instant between its creation and its locking.
fn open_segment(path: &Path) -> io::Result<File> {
    let staging = staging_path_of(path);
    let f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .open(&staging)?;
    if let Err(e) = f.try_lock() {
        let _ = fs::remove_file(&staging);
        return Err(io::Error::other(e.to_string()));
    }
    if let Err(e) = fs::rename(&staging, path) {
        let _ = fs::remove_file(&staging);
        return Err(e);
    }
    Ok(f)
}

fn staging_path_of(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".new");
    PathBuf::from(s)
}

/// Staging files older than this whose creator holds no lock were left by a crash.
const STALE_STAGING: Duration = Duration::from_secs(60);

fn remove_stale_staging(path: &Path) {
    let Ok(file) = OpenOptions::new().read(true).open(path) else {
        return;
    };
    let old = fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age > STALE_STAGING);
    if old && file.try_lock().is_ok() {
        let _ = fs::remove_file(path);
    }
}

/// What a streaming pass over a claimed segment found.
#[derive(Default)]
struct Scan {
    good: u64,
    corrupt: u64,
    /// Offset just past the last good line (0 when none).
    last_good_end: u64,
}

/// Reads a segment from `start` in bounded chunks, counting good and unreadable lines.
/// A last line without a newline (a torn write) is ignored.
fn scan(file: &File, start: u64) -> io::Result<Scan> {
    let mut out = Scan::default();
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut line: Vec<u8> = Vec::new();
    let mut too_long = false;
    let mut offset = start;
    loop {
        let n = read_at(file, &mut chunk, offset)?;
        if n == 0 {
            return Ok(out);
        }
        let mut rest = &chunk[..n];
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            let end = offset + (n - rest.len() + i + 1) as u64;
            if too_long {
                out.corrupt += 1;
            } else {
                line.extend_from_slice(&rest[..i]);
                if line.len() > MAX_LINE || (!line.is_empty() && !valid_line(&line)) {
                    out.corrupt += 1;
                } else if !line.is_empty() {
                    out.good += 1;
                    out.last_good_end = end;
                }
            }
            line.clear();
            too_long = false;
            rest = &rest[i + 1..];
        }
        if !too_long {
            if line.len() + rest.len() > MAX_LINE {
                too_long = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(rest);
            }
        }
        offset += n as u64;
    }
}

impl Spool {
    /// Opens (creating with mode 0700) the spool directory and claims orphaned segments.
    ///
    /// # Errors
    /// The I/O error when the directory cannot be created or written.
    pub fn open(cfg: SpoolConfig) -> io::Result<(Self, Replay)> {
        fs::create_dir_all(&cfg.dir)?;
        make_private_dir(&cfg.dir)?;
        let start_ns = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let prefix = format!(
            "{}-{}-{}-{:08x}",
            host(),
            crate::core::pid::current(),
            start_ns,
            fastrand::u32(..)
        );
        let canonical_dir = fs::canonicalize(&cfg.dir).unwrap_or_else(|_| cfg.dir.clone());
        let spool = Self {
            cfg,
            canonical_dir,
            prefix,
            seq: AtomicU64::new(0),
            current: Mutex::new(None),
            total: AtomicU64::new(0),
            unread: AtomicU64::new(0),
            held: AtomicU64::new(0),
            reader: Mutex::new(Reader::default()),
        };
        // Prove the directory is writable before promising durability.
        let probe = spool.cfg.dir.join(format!(".{}.probe", spool.prefix));
        fs::write(&probe, b"")?;
        let _ = fs::remove_file(&probe);
        let replay = spool.claim_orphans();
        Ok((spool, replay))
    }

    fn next_path(&self, tag: &str) -> PathBuf {
        let n = self.seq.fetch_add(1, Ordering::AcqRel);
        self.cfg
            .dir
            .join(format!("{}.{}{:06}.jsonl", self.prefix, tag, n))
    }

    /// Bytes currently held by spool segments.
    pub fn bytes(&self) -> u64 {
        self.total.load(Ordering::Acquire)
    }

    /// Events in the spool not yet acknowledged.
    pub fn events(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }

    /// Events written and not yet read back by the sender.
    pub fn unread(&self) -> u64 {
        self.unread.load(Ordering::Acquire)
    }

    /// About when the oldest event not yet read back was written.
    pub fn oldest_unread(&self) -> Option<Instant> {
        let r = lock(&self.reader);
        r.segs
            .iter()
            .find(|s| s.unread.load(Ordering::Acquire) > 0)
            .map(|s| s.born)
    }

    fn claim_orphans(&self) -> Replay {
        let mut out = Replay::default();
        let Ok(entries) = fs::read_dir(&self.cfg.dir) else {
            return out;
        };
        let files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path())
            .collect();
        for p in files
            .iter()
            .filter(|p| p.extension().is_some_and(|x| x == "new"))
        {
            remove_stale_staging(p);
        }
        let mut paths: Vec<PathBuf> = files
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        paths.sort();
        let mut reader = lock(&self.reader);
        for path in paths {
            let Ok(file) = OpenOptions::new().read(true).append(true).open(&path) else {
                continue;
            };
            if file.try_lock().is_err() {
                continue; // a live emitter owns it
            }
            let meta = fs::metadata(&path).ok();
            let now = SystemTime::now();
            let age = meta
                .as_ref()
                .and_then(|m| m.modified().ok())
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default();
            // Its first event is at least as old as the file itself.
            let first_age = meta
                .as_ref()
                .and_then(|m| m.created().ok())
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or(age);
            let born = Instant::now()
                .checked_sub(first_age)
                .unwrap_or_else(Instant::now);
            let size = meta.as_ref().map_or(0, fs::Metadata::len);
            let ack = fs::read_to_string(ack_path_of(&path))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(0)
                .min(size);
            let claimed = self.next_path("r");
            if fs::rename(&path, &claimed).is_err() {
                continue;
            }
            let _ = fs::rename(ack_path_of(&path), ack_path_of(&claimed));
            let found = match scan(&file, ack) {
                Ok(found) => found,
                Err(_) => {
                    let mut bad = claimed.as_os_str().to_owned();
                    bad.push(".corrupt");
                    let _ = fs::rename(&claimed, PathBuf::from(bad));
                    out.corrupt_segments += 1;
                    continue;
                }
            };
            out.corrupt_lines += found.corrupt;
            // Lines after the last good one (torn or garbage) are never sent: treat the
            // segment as ending there.
            let end = found.last_good_end.max(ack);
            let Ok(seg) = Segment::new(claimed.clone(), file, end, ack, true, born) else {
                let _ = fs::rename(&claimed, &path);
                continue;
            };
            let seg = Arc::new(seg);
            self.total.fetch_add(end, Ordering::AcqRel);
            if age > self.cfg.max_age {
                out.expired_events += found.good;
                self.remove(&seg);
                continue;
            }
            if found.good == 0 {
                self.remove(&seg);
                continue;
            }
            seg.unread.store(found.good, Ordering::Release);
            self.unread.fetch_add(found.good, Ordering::AcqRel);
            self.held.fetch_add(found.good, Ordering::AcqRel);
            out.events += found.good;
            reader.push(seg);
        }
        out
    }

    /// The segment to append `len` more bytes to: rotates the current one when it is big,
    /// old or fully acknowledged, and opens a new one (published to the reader) if needed.
    fn writable(
        &self,
        cur: &mut Option<Arc<Segment>>,
        len: u64,
    ) -> Result<Arc<Segment>, AppendError> {
        let rotate = match cur.as_ref() {
            None => true,
            Some(seg) => {
                let size = seg.size.load(Ordering::Acquire);
                // By age only once the sender has read it all: during an outage segments
                // grow to `segment_bytes`, so the open descriptors (one per segment, holding
                // its lock) stay about `max_bytes / segment_bytes`.
                size + len > self.cfg.segment_bytes
                    || (seg.opened.elapsed() > self.cfg.segment_age
                        && seg.unread.load(Ordering::Acquire) == 0)
                    || (size > 0 && seg.acked.load(Ordering::Acquire) >= size)
            }
        };
        if rotate {
            if let Some(old) = cur.take() {
                old.sealed.store(true, Ordering::Release);
                self.maybe_delete(&old);
            }
        }
        if self.total.load(Ordering::Acquire) + len > self.cfg.max_bytes {
            return Err(AppendError::Full);
        }
        if let Some(seg) = cur.as_ref() {
            return Ok(seg.clone());
        }
        let path = self.next_path("s");
        let file = open_segment(&path).map_err(AppendError::Io)?;
        let seg = match Segment::new(path.clone(), file, 0, 0, false, Instant::now()) {
            Ok(seg) => Arc::new(seg),
            Err(e) => {
                let _ = fs::remove_file(&path);
                return Err(AppendError::Io(e));
            }
        };
        lock(&self.reader).push(seg.clone());
        *cur = Some(seg.clone());
        Ok(seg)
    }

    /// Writes whole lines to `seg` and publishes them to the reader. A failed write may
    /// leave a partial line: the segment is then closed for writing at its last whole line.
    fn write_lines(
        &self,
        cur: &mut Option<Arc<Segment>>,
        seg: &Arc<Segment>,
        buf: &[u8],
        lines: u64,
    ) -> Result<u64, AppendError> {
        // The caller holds `current`: appends never interleave.
        if let Err(e) = (&seg.file).write_all(buf) {
            seg.sealed.store(true, Ordering::Release);
            *cur = None;
            self.maybe_delete(seg);
            return Err(AppendError::Io(e));
        }
        let len = buf.len() as u64;
        seg.unread.fetch_add(lines, Ordering::AcqRel);
        self.unread.fetch_add(lines, Ordering::AcqRel);
        self.held.fetch_add(lines, Ordering::AcqRel);
        self.total.fetch_add(len, Ordering::AcqRel);
        // Published last: the reader reads up to `size` only.
        Ok(seg.size.fetch_add(len, Ordering::AcqRel))
    }

    /// Appends one event line.
    ///
    /// # Errors
    /// [`AppendError::Full`] past `max_bytes`; [`AppendError::Io`] when writing fails.
    pub fn append(&self, bytes: &[u8]) -> Result<Pos, AppendError> {
        let len = bytes.len() as u64 + 1;
        let mut cur = lock(&self.current);
        let seg = self.writable(&mut cur, len)?;
        let mut line = Vec::with_capacity(bytes.len() + 1);
        line.extend_from_slice(bytes);
        line.push(b'\n');
        let start = self.write_lines(&mut cur, &seg, &line, 1)?;
        Ok(Pos {
            seg,
            end: start + len,
        })
    }

    /// Appends several event lines with one write. Returns how many were written (a
    /// prefix of `lines`: those that fit under `max_bytes`) and, when not all were, why.
    pub fn append_many(&self, lines: &[&[u8]]) -> (usize, Option<AppendError>) {
        let Some(first) = lines.first() else {
            return (0, None);
        };
        let mut cur = lock(&self.current);
        // One rotation check for the batch (a segment may outgrow `segment_bytes` by one
        // batch).
        let seg = match self.writable(&mut cur, first.len() as u64 + 1) {
            Ok(seg) => seg,
            Err(e) => return (0, Some(e)),
        };
        let room = self
            .cfg
            .max_bytes
            .saturating_sub(self.total.load(Ordering::Acquire));
        let mut buf = Vec::new();
        let mut n = 0usize;
        for line in lines {
            let len = line.len() + 1;
            if (buf.len() + len) as u64 > room {
                break;
            }
            buf.extend_from_slice(line);
            buf.push(b'\n');
            n += 1;
        }
        if n > 0 {
            if let Err(e) = self.write_lines(&mut cur, &seg, &buf, n as u64) {
                return (0, Some(e));
            }
        }
        (n, (n < lines.len()).then_some(AppendError::Full))
    }

    /// Reads up to `max_events` events (and `max_bytes`, at least one event) back from the
    /// spool, oldest first, from where the previous call stopped. Replayed lines that are
    /// not JSON are skipped (they were counted when the segment was claimed).
    pub fn read(&self, max_events: usize, max_bytes: usize) -> Batch {
        let mut out = Batch::default();
        let mut bytes = 0usize;
        let mut r = lock(&self.reader);
        'segs: while out.events.len() < max_events {
            let Some(seg) = r.segs.front().cloned() else {
                break;
            };
            let sealed = seg.sealed.load(Ordering::Acquire);
            let size = seg.size.load(Ordering::Acquire);
            loop {
                if out.events.len() >= max_events {
                    break 'segs;
                }
                let held = r.buf.len() - r.pos;
                if let Some(i) = r.buf[r.pos..].iter().position(|b| *b == b'\n') {
                    let line_start = r.pos;
                    let end = r.offset + i as u64 + 1;
                    if r.skipping {
                        r.skipping = false;
                    } else {
                        let line = &r.buf[line_start..line_start + i];
                        let keep = !line.is_empty()
                            && (!seg.replayed || (line.len() <= MAX_LINE && valid_line(line)));
                        if keep {
                            if !out.events.is_empty() && bytes + line.len() > max_bytes {
                                break 'segs;
                            }
                            bytes += line.len();
                            out.events.push((
                                line.to_vec(),
                                Pos {
                                    seg: seg.clone(),
                                    end,
                                },
                            ));
                        }
                    }
                    r.pos += i + 1;
                    r.offset = end;
                    continue;
                }
                // No whole line buffered: read more of the segment.
                let loaded_to = r.offset + held as u64;
                if loaded_to >= size {
                    if sealed {
                        r.pop();
                        continue 'segs;
                    }
                    break 'segs; // the rest is still being written
                }
                let pos = r.pos;
                r.buf.drain(..pos);
                r.pos = 0;
                if r.buf.len() > MAX_LINE {
                    // A line too long to be an event: skip to its end.
                    r.offset += r.buf.len() as u64;
                    r.buf.clear();
                    r.skipping = true;
                }
                let want = usize::try_from(size - (r.offset + r.buf.len() as u64))
                    .unwrap_or(usize::MAX)
                    .min(READ_CHUNK);
                let have = r.buf.len();
                r.buf.resize(have + want, 0);
                let at = r.offset + have as u64;
                match read_exact_at(&seg.file, &mut r.buf[have..], at) {
                    Ok(()) => {}
                    Err(_) => {
                        // Unreadable: what is left of the segment is lost (counted).
                        let lost = seg.unread.swap(0, Ordering::AcqRel);
                        sub(&self.unread, lost);
                        sub(&self.held, lost);
                        out.unreadable += lost;
                        r.pop();
                        continue 'segs;
                    }
                }
            }
        }
        drop(r);
        let n = out.events.len() as u64;
        if n > 0 {
            if let Some((_, first)) = out.events.first() {
                // Per-segment counts, for the age of the oldest unread event.
                let mut seg = first.seg.clone();
                let mut k = 0u64;
                for (_, p) in &out.events {
                    if !Arc::ptr_eq(&p.seg, &seg) {
                        sub(&seg.unread, k);
                        seg = p.seg.clone();
                        k = 0;
                    }
                    k += 1;
                }
                sub(&seg.unread, k);
            }
            sub(&self.unread, n);
        }
        out
    }

    /// Records delivery (or a counted drop) of events: advances each segment's acknowledged
    /// offset and deletes fully acknowledged, rotated segments.
    pub fn acknowledge<'a>(&self, positions: impl Iterator<Item = &'a Pos>) {
        let mut by_seg: HashMap<*const Segment, (Arc<Segment>, u64)> = HashMap::new();
        let mut count = 0u64;
        for p in positions {
            count += 1;
            let e = by_seg
                .entry(Arc::as_ptr(&p.seg))
                .or_insert((p.seg.clone(), 0));
            e.1 = e.1.max(p.end);
        }
        sub(&self.held, count);
        for (_, (seg, end)) in by_seg {
            let prev = seg.acked.fetch_max(end, Ordering::AcqRel);
            if end > prev && !seg.deleted.load(Ordering::Acquire) {
                let _ = OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(seg.ack_path())
                    .and_then(|mut f| f.write_all(end.to_string().as_bytes()));
            }
            self.maybe_delete(&seg);
        }
    }

    fn maybe_delete(&self, seg: &Arc<Segment>) {
        if seg.sealed.load(Ordering::Acquire)
            && seg.acked.load(Ordering::Acquire) >= seg.size.load(Ordering::Acquire)
        {
            self.remove(seg);
        }
    }

    fn remove(&self, seg: &Arc<Segment>) {
        if !seg.deleted.swap(true, Ordering::AcqRel) {
            let _ = fs::remove_file(&seg.path);
            let _ = fs::remove_file(seg.ack_path());
            let cur = seg.size.load(Ordering::Acquire);
            let _ = self
                .total
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                    Some(t.saturating_sub(cur))
                });
        }
    }

    /// Stops reading (at close): events not yet read back stay in the spool for the next
    /// start. Returns how many there are, and drops the reader's hold on the segments so
    /// that their locks are released.
    pub fn stop_reading(&self) -> u64 {
        let mut r = lock(&self.reader);
        *r = Reader::default();
        self.unread.swap(0, Ordering::AcqRel)
    }

    /// In a forked child, for the parent's spool: closes the inherited descriptors of its
    /// segments, so that the child never keeps the parent's segment locks alive (flock is
    /// shared by every descriptor of an open file; if the parent dies, its segments must be
    /// claimable at once, not only after all of its children exit).
    ///
    /// Reads no lock that a parent thread could have held at the fork: the descriptors are
    /// found in `/proc/self/fd` by path. The parent's `Segment` values must never be dropped
    /// afterwards (the caller leaks them), since their descriptor numbers may be reused.
    /// Returns how many descriptors were closed.
    pub fn close_inherited_descriptors(&self) -> usize {
        let Ok(entries) = fs::read_dir("/proc/self/fd") else {
            return 0;
        };
        let ours = format!("{}.", self.prefix);
        let fds: Vec<i32> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let fd = e.file_name().to_str()?.parse::<i32>().ok()?;
                let target = fs::read_link(e.path()).ok()?;
                let name = target.file_name()?.to_str()?;
                (target.parent() == Some(self.canonical_dir.as_path()) && name.starts_with(&ours))
                    .then_some(fd)
            })
            .collect();
        for &fd in &fds {
            close_fd(fd);
        }
        fds.len()
    }

    /// Seals the open segment (at close), deleting it if everything in it was delivered.
    pub fn seal(&self) {
        if let Some(seg) = lock(&self.current).take() {
            seg.sealed.store(true, Ordering::Release);
            self.maybe_delete(&seg);
        }
    }
}

/// Closes a descriptor that nothing reachable owns any more (see
/// [`Spool::close_inherited_descriptors`]).
#[cfg(unix)]
#[allow(unsafe_code)]
fn close_fd(fd: i32) {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: `fd` was listed in /proc/self/fd as a segment of a spool whose owning values
    // are leaked by the caller and never used or dropped again, so this is its only owner.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
}

/// No `fork` and no /proc/self/fd elsewhere: nothing is ever listed to close.
#[cfg(not(unix))]
fn close_fd(_fd: i32) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool_in(dir: &Path, max_bytes: u64) -> Spool {
        let mut cfg = SpoolConfig::new(dir.to_path_buf(), Mode::Async);
        cfg.max_bytes = max_bytes;
        Spool::open(cfg).unwrap().0
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "fdrs-spool-{name}-{}-{}",
            crate::core::pid::current(),
            fastrand::u64(..)
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn append_many_writes_one_batch_read_back_with_exact_positions() {
        let dir = tmp("many");
        let sp = spool_in(&dir, 1 << 20);
        let lines: Vec<&[u8]> = vec![b"{\"a\":1}", b"{\"b\":22}", b"{\"c\":333}"];
        let (n, err) = sp.append_many(&lines);
        assert!(err.is_none());
        assert_eq!(n, 3);
        assert_eq!((sp.unread(), sp.events(), sp.bytes()), (3, 3, 27));
        let got = sp.read(10, 1 << 20);
        assert_eq!(got.unreadable, 0);
        let ends: Vec<u64> = got.events.iter().map(|(_, p)| p.end).collect();
        assert_eq!(ends, vec![8, 17, 27]);
        let bodies: Vec<&[u8]> = got.events.iter().map(|(b, _)| b.as_slice()).collect();
        assert_eq!(bodies, lines);
        assert_eq!(sp.unread(), 0);
        let path = got.events[0].1.seg.path.clone();
        let data = fs::read(&path).unwrap();
        assert_eq!(data, b"{\"a\":1}\n{\"b\":22}\n{\"c\":333}\n");
        // Acknowledging everything and sealing deletes the segment.
        sp.acknowledge(got.events.iter().map(|(_, p)| p));
        assert_eq!(sp.events(), 0);
        sp.seal();
        assert_eq!(sp.bytes(), 0);
        assert!(!path.exists());
        assert!(sp.read(10, 1 << 20).events.is_empty());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn append_many_stops_at_max_bytes() {
        let dir = tmp("full");
        let sp = spool_in(&dir, 20);
        let lines: Vec<&[u8]> = vec![b"123456789", b"123456789", b"123456789"];
        let (n, err) = sp.append_many(&lines);
        assert_eq!(n, 2);
        assert!(matches!(err, Some(AppendError::Full)));
        assert_eq!(sp.bytes(), 20);
        let (none, err) = sp.append_many(&lines[2..]);
        assert!(none == 0 && matches!(err, Some(AppendError::Full)));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn reader_follows_segments_in_order_with_bounded_batches() {
        let dir = tmp("order");
        let mut cfg = SpoolConfig::new(dir.clone(), Mode::Sync);
        cfg.segment_bytes = 200; // many small segments
        let sp = Spool::open(cfg).unwrap().0;
        let n = 500;
        for i in 0..n {
            sp.append(format!("{{\"i\":{i}}}").as_bytes()).unwrap();
        }
        assert_eq!(sp.unread(), n);
        let mut seen = Vec::new();
        loop {
            let got = sp.read(7, 1 << 20);
            if got.events.is_empty() {
                break;
            }
            assert!(got.events.len() <= 7);
            for (b, _) in &got.events {
                seen.push(String::from_utf8(b.clone()).unwrap());
            }
            sp.acknowledge(got.events.iter().map(|(_, p)| p));
        }
        let want: Vec<String> = (0..n).map(|i| format!("{{\"i\":{i}}}")).collect();
        assert_eq!(seen, want);
        assert_eq!((sp.unread(), sp.events()), (0, 0));
        // Interleaved writes and reads: the reader picks up what is appended later.
        sp.append(b"{\"late\":1}").unwrap();
        let got = sp.read(10, 1 << 20);
        assert_eq!(got.events.len(), 1);
        sp.acknowledge(got.events.iter().map(|(_, p)| p));
        sp.seal();
        // Everything but nothing else remains on disk.
        assert_eq!(sp.bytes(), 0);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn claimed_orphans_are_read_back_lazily_from_their_ack_offset() {
        let dir = tmp("orphan");
        let first = b"{\"a\":1}\n".to_vec();
        let mut data = first.clone();
        data.extend_from_slice(b"{\"b\":2}\nnot json\n\n{\"c\":3}\n{\"torn\":");
        let path = dir.join("deadhost-1-1-00000000.s000000.jsonl");
        fs::write(&path, &data).unwrap();
        fs::write(ack_path_of(&path), first.len().to_string()).unwrap();
        let (sp, replay) = Spool::open(SpoolConfig::new(dir.clone(), Mode::Async)).unwrap();
        assert_eq!((replay.events, replay.corrupt_lines), (2, 1));
        assert_eq!((sp.unread(), sp.events()), (2, 2));
        let got = sp.read(100, 1 << 20);
        let bodies: Vec<&[u8]> = got.events.iter().map(|(b, _)| b.as_slice()).collect();
        assert_eq!(bodies, vec![&b"{\"b\":2}"[..], &b"{\"c\":3}"[..]]);
        assert_eq!(sp.unread(), 0);
        sp.acknowledge(got.events.iter().map(|(_, p)| p));
        assert_eq!(sp.events(), 0);
        assert_eq!(sp.bytes(), 0, "a fully acknowledged orphan is deleted");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn segments_rotate_by_age_only_once_read_and_scale_with_the_cap() {
        let dir = tmp("age");
        let mut cfg = SpoolConfig::new(dir.clone(), Mode::Sync);
        cfg.segment_age = Duration::ZERO; // always "old"
        let sp = Spool::open(cfg).unwrap().0;
        let a = sp.append(b"{}").unwrap();
        let b = sp.append(b"{}").unwrap();
        // Unread data: an outage does not open a segment (and a descriptor) per minute.
        assert!(Arc::ptr_eq(&a.seg, &b.seg));
        assert_eq!(sp.read(10, 1 << 20).events.len(), 2);
        let c = sp.append(b"{}").unwrap();
        assert!(!Arc::ptr_eq(&a.seg, &c.seg), "read back and old: rotated");
        let _ = fs::remove_dir_all(&dir);

        let mut cfg = SpoolConfig::new(dir.clone(), Mode::Sync);
        cfg.set_max_bytes(1 << 30);
        assert_eq!((cfg.max_bytes, cfg.segment_bytes), (1 << 30, 16 << 20));
        cfg.set_max_bytes(4096);
        assert_eq!(cfg.segment_bytes, 4 << 20);
        cfg.set_max_bytes(1 << 40);
        assert_eq!(cfg.segment_bytes, 64 << 20);
    }

    #[test]
    fn segments_appear_only_under_their_final_name() {
        let dir = tmp("staging");
        let sp = spool_in(&dir, 1 << 20);
        sp.append(b"{}").unwrap();
        let names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].ends_with(".jsonl"), "{names:?}");
        let _ = fs::remove_dir_all(&dir);
    }
}
