//! Optional durable spool: write-ahead JSONL segments holding the exact bytes that go on
//! the wire, an acknowledged-offset sidecar per segment, ownership by file lock, and replay
//! of orphaned segments (their owner died) from the acknowledged offset.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
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
    file: Mutex<File>,
    size: AtomicU64,
    acked: AtomicU64,
    sealed: AtomicBool,
    deleted: AtomicBool,
    opened: Instant,
}

impl Segment {
    fn ack_path(&self) -> PathBuf {
        ack_path_of(&self.path)
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

/// Events recovered from orphaned segments.
#[derive(Debug, Default)]
pub struct Replay {
    pub events: Vec<(Vec<u8>, Pos)>,
    pub corrupt_lines: u64,
    pub expired_events: u64,
    pub corrupt_segments: u64,
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
            std::process::id(),
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
        for path in paths {
            let Ok(file) = OpenOptions::new().read(true).append(true).open(&path) else {
                continue;
            };
            if file.try_lock().is_err() {
                continue; // a live emitter owns it
            }
            let age = fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .unwrap_or_default();
            let ack = fs::read_to_string(ack_path_of(&path))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(0);
            let claimed = self.next_path("r");
            if fs::rename(&path, &claimed).is_err() {
                continue;
            }
            let _ = fs::rename(ack_path_of(&path), ack_path_of(&claimed));
            let mut data = Vec::new();
            let mut reader = &file;
            if reader.read_to_end(&mut data).is_err() {
                let mut bad = claimed.as_os_str().to_owned();
                bad.push(".corrupt");
                let _ = fs::rename(&claimed, PathBuf::from(bad));
                out.corrupt_segments += 1;
                continue;
            }
            let size = data.len() as u64;
            let seg = Arc::new(Segment {
                path: claimed,
                file: Mutex::new(file),
                size: AtomicU64::new(size),
                acked: AtomicU64::new(ack.min(size)),
                sealed: AtomicBool::new(true),
                deleted: AtomicBool::new(false),
                opened: Instant::now(),
            });
            let start = usize::try_from(ack.min(size)).unwrap_or(0);
            let mut offset = start;
            let mut found = Vec::new();
            while offset < data.len() {
                let Some(nl) = data[offset..].iter().position(|b| *b == b'\n') else {
                    break; // torn last line: never acknowledged as written
                };
                let line = &data[offset..offset + nl];
                let end = (offset + nl + 1) as u64;
                offset += nl + 1;
                if line.is_empty() {
                    continue;
                }
                if serde_json::from_slice::<serde_json::Value>(line).is_err() {
                    out.corrupt_lines += 1;
                    continue;
                }
                found.push((
                    line.to_vec(),
                    Pos {
                        seg: seg.clone(),
                        end,
                    },
                ));
            }
            if age > self.cfg.max_age {
                out.expired_events += found.len() as u64;
                self.remove(&seg);
                continue;
            }
            // Lines after the last good one (torn or garbage) are never sent: treat the
            // segment as ending there.
            let last_end = found.last().map_or(ack.min(size), |(_, p)| p.end);
            seg.size
                .store(last_end.max(ack.min(size)), Ordering::Release);
            if found.is_empty() {
                self.remove(&seg);
            } else {
                out.events.extend(found);
            }
        }
        out
    }

    /// Appends one event line.
    ///
    /// # Errors
    /// [`AppendError::Full`] past `max_bytes`; [`AppendError::Io`] when writing fails.
    pub fn append(&self, bytes: &[u8]) -> Result<Pos, AppendError> {
        let len = bytes.len() as u64 + 1;
        let mut cur = lock(&self.current);
        let rotate = match cur.as_ref() {
            None => true,
            Some(seg) => {
                let size = seg.size.load(Ordering::Acquire);
                size + len > self.cfg.segment_bytes
                    || seg.opened.elapsed() > self.cfg.segment_age
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
        if cur.is_none() {
            let path = self.next_path("s");
            let file = open_segment(&path).map_err(AppendError::Io)?;
            *cur = Some(Arc::new(Segment {
                path,
                file: Mutex::new(file),
                size: AtomicU64::new(0),
                acked: AtomicU64::new(0),
                sealed: AtomicBool::new(false),
                deleted: AtomicBool::new(false),
                opened: Instant::now(),
            }));
        }
        let Some(seg) = cur.as_ref() else {
            return Err(AppendError::Io(io::Error::other("no open segment")));
        };
        let mut line = Vec::with_capacity(bytes.len() + 1);
        line.extend_from_slice(bytes);
        line.push(b'\n');
        lock(&seg.file).write_all(&line).map_err(AppendError::Io)?;
        let end = seg.size.fetch_add(len, Ordering::AcqRel) + len;
        self.total.fetch_add(len, Ordering::AcqRel);
        Ok(Pos {
            seg: seg.clone(),
            end,
        })
    }

    /// Appends several event lines with one write. Returns the positions of the lines
    /// written (a prefix of `lines`: those that fit under `max_bytes`) and, when not all
    /// were, why.
    pub fn append_many(&self, lines: &[&[u8]]) -> (Vec<Pos>, Option<AppendError>) {
        let Some(first) = lines.first() else {
            return (Vec::new(), None);
        };
        // One rotation check for the batch (a segment may outgrow `segment_bytes` by one
        // batch), through the single-line path that also opens the segment.
        let head = match self.append(first) {
            Ok(p) => p,
            Err(e) => return (Vec::new(), Some(e)),
        };
        let seg = head.seg.clone();
        let mut out = Vec::with_capacity(lines.len());
        out.push(head);
        let room = self
            .cfg
            .max_bytes
            .saturating_sub(self.total.load(Ordering::Acquire));
        let mut buf = Vec::new();
        let mut lens = Vec::new();
        let mut full = false;
        for line in &lines[1..] {
            let len = line.len() + 1;
            if (buf.len() + len) as u64 > room {
                full = true;
                break;
            }
            buf.extend_from_slice(line);
            buf.push(b'\n');
            lens.push(len as u64);
        }
        if !buf.is_empty() {
            let cur = lock(&self.current);
            // Still the segment the first line went to (rotation happens under this lock).
            if !cur.as_ref().is_some_and(|c| Arc::ptr_eq(c, &seg)) {
                drop(cur);
                return self.append_each(&lines[1..], out);
            }
            if let Err(e) = lock(&seg.file).write_all(&buf) {
                return (out, Some(AppendError::Io(e)));
            }
            let mut end = seg.size.fetch_add(buf.len() as u64, Ordering::AcqRel);
            self.total.fetch_add(buf.len() as u64, Ordering::AcqRel);
            for len in lens {
                end += len;
                out.push(Pos {
                    seg: seg.clone(),
                    end,
                });
            }
        }
        (out, full.then_some(AppendError::Full))
    }

    fn append_each(&self, lines: &[&[u8]], mut out: Vec<Pos>) -> (Vec<Pos>, Option<AppendError>) {
        for line in lines {
            match self.append(line) {
                Ok(p) => out.push(p),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    /// Records delivery (or a counted drop) of events: advances each segment's acknowledged
    /// offset and deletes fully acknowledged, rotated segments.
    pub fn acknowledge<'a>(&self, positions: impl Iterator<Item = &'a Pos>) {
        let mut by_seg: HashMap<*const Segment, (Arc<Segment>, u64)> = HashMap::new();
        for p in positions {
            let e = by_seg
                .entry(Arc::as_ptr(&p.seg))
                .or_insert((p.seg.clone(), 0));
            e.1 = e.1.max(p.end);
        }
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
            std::process::id(),
            fastrand::u64(..)
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn append_many_writes_one_batch_with_exact_positions() {
        let dir = tmp("many");
        let sp = spool_in(&dir, 1 << 20);
        let lines: Vec<&[u8]> = vec![b"{\"a\":1}", b"{\"b\":22}", b"{\"c\":333}"];
        let (pos, err) = sp.append_many(&lines);
        assert!(err.is_none());
        assert_eq!(
            pos.iter().map(|p| p.end).collect::<Vec<_>>(),
            vec![8, 17, 27]
        );
        let data = fs::read(&pos[0].seg.path).unwrap();
        assert_eq!(data, b"{\"a\":1}\n{\"b\":22}\n{\"c\":333}\n");
        assert_eq!(sp.bytes(), 27);
        // Acknowledging everything and sealing deletes the segment.
        sp.acknowledge(pos.iter());
        sp.seal();
        assert_eq!(sp.bytes(), 0);
        assert!(!pos[0].seg.path.exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn append_many_stops_at_max_bytes() {
        let dir = tmp("full");
        let sp = spool_in(&dir, 20);
        let lines: Vec<&[u8]> = vec![b"123456789", b"123456789", b"123456789"];
        let (pos, err) = sp.append_many(&lines);
        assert_eq!(pos.len(), 2);
        assert!(matches!(err, Some(AppendError::Full)));
        assert_eq!(sp.bytes(), 20);
        let (none, err) = sp.append_many(&lines[2..]);
        assert!(none.is_empty() && matches!(err, Some(AppendError::Full)));
        let _ = fs::remove_dir_all(&dir);
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
