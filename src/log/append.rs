//! Appending whole records to one file when the disk may take only part of a write.
//!
//! A full disk (ENOSPC, EDQUOT) makes write(2) store what fits and refuse the rest, so a batch
//! can stop in the middle of a record. Left there, the fragment would be glued to the next
//! record once space returns (`…127.88.01796023838.590 …`). So a cut record is cut back off the
//! file at once: the file only ever holds whole records. Where the file cannot be shortened
//! (an append-only file, `chattr +a`), the rest of the record is owed instead and written before
//! anything else, so the line is completed, never glued.
//!
//! Cutting back still lets a reader (`tail -f`) see the fragment for a moment, so where the
//! filesystem can, a batch's blocks are reserved first (fallocate, size unchanged): a batch that
//! does not fit is then refused before a byte is written, and never appears even briefly.

use std::fs::File;
use std::io::{self, Write};

/// A file that can drop its last bytes.
pub trait CutBack {
    /// Removes the last `bytes` bytes.
    fn cut_back(&mut self, bytes: u64) -> io::Result<()>;

    /// Reserves room for `bytes` more at the end without changing the file's size, so the
    /// write that follows cannot run out of space. `Ok(false)` when the filesystem cannot.
    fn reserve(&mut self, _bytes: u64) -> io::Result<bool> {
        Ok(false)
    }
}

impl CutBack for File {
    fn reserve(&mut self, bytes: u64) -> io::Result<bool> {
        use rustix::fs::{FallocateFlags, fallocate};
        let metadata = self.metadata()?;
        // A FIFO, terminal or socket (`stdio:/dev/stdout`) has no blocks to reserve, and
        // fallocate refuses it (ESPIPE, ENODEV): write to it as it is.
        if !metadata.is_file() {
            return Ok(false);
        }
        let len = metadata.len();
        match fallocate(&*self, FallocateFlags::KEEP_SIZE, len, bytes) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn cut_back(&mut self, bytes: u64) -> io::Result<()> {
        let len = self.metadata()?.len();
        // Shortened by someone else meanwhile (copytruncate): never extend the file with zeros.
        let keep = len
            .checked_sub(bytes)
            .ok_or_else(|| io::Error::other("the file shrank while a record was being cut back"))?;
        self.set_len(keep)
    }
}

/// What one append did, in records (lines).
#[derive(Debug, Default)]
pub struct Outcome {
    /// Records now whole in the file (an owed record that got completed counts here).
    pub written: u64,
    /// Records that will never reach the file.
    pub lost: u64,
    /// Why not everything was written.
    pub error: Option<io::Error>,
}

/// One log file that receives whole newline-terminated records only.
pub struct RecordFile<F> {
    file: F,
    /// The rest of a cut record that could not be cut back; written before anything else.
    owed: Vec<u8>,
}

impl<F: Write + CutBack> RecordFile<F> {
    pub fn new(file: F) -> RecordFile<F> {
        RecordFile { file, owed: Vec::new() }
    }

    pub fn get_ref(&self) -> &F {
        &self.file
    }

    /// True while a cut record waits to be completed.
    pub fn owes(&self) -> bool {
        !self.owed.is_empty()
    }

    /// Appends `records`: whole lines, each ending in `\n`. Records before the point where the
    /// disk refused are kept; the cut one is removed (or owed) and the rest are lost.
    pub fn append(&mut self, records: &[u8]) -> Outcome {
        let mut outcome = Outcome::default();
        if self.owes() {
            let (done, error) = write_some(&mut self.file, &self.owed);
            self.owed.drain(..done);
            if let Some(error) = error {
                outcome.lost = count_records(records);
                outcome.error = Some(error);
                return outcome;
            }
            outcome.written = 1;
        }
        if !records.is_empty()
            && let Err(error) = self.file.reserve(records.len() as u64)
        {
            // No room for the whole batch: none of it is written, so no reader sees a fragment.
            outcome.lost = count_records(records);
            outcome.error = Some(error);
            return outcome;
        }
        let (done, error) = write_some(&mut self.file, records);
        let Some(error) = error else {
            outcome.written += count_records(records);
            return outcome;
        };
        let cut_start = records[..done].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        outcome.written += count_records(&records[..cut_start]);
        outcome.lost = count_records(&records[cut_start..]);
        if cut_start < done && self.file.cut_back((done - cut_start) as u64).is_err() {
            let cut_end = records[done..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(records.len(), |i| done + i + 1);
            self.owed = records[done..cut_end].to_vec();
            outcome.lost -= 1;
        }
        outcome.error = Some(error);
        outcome
    }

    /// Before the file is let go: a last try to complete an owed record. The record is lost
    /// (and stays cut) when that fails too.
    pub fn close(mut self) -> Outcome {
        if !self.owes() {
            return Outcome::default();
        }
        let mut outcome = self.append(b"");
        if self.owes() {
            outcome.lost += 1;
        }
        outcome
    }
}

/// Writes as much of `buf` as the file takes; returns how much and the error that stopped it.
fn write_some(file: &mut impl Write, buf: &[u8]) -> (usize, Option<io::Error>) {
    let mut done = 0;
    while done < buf.len() {
        match file.write(&buf[done..]) {
            Ok(0) => return (done, Some(io::ErrorKind::WriteZero.into())),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (done, Some(e)),
        }
    }
    (done, None)
}

pub(crate) fn count_records(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disk that takes `room` more bytes, then refuses with ENOSPC (short writes included,
    /// as write(2) does), and can be shortened or not.
    struct TinyDisk {
        stored: Vec<u8>,
        room: usize,
        can_cut: bool,
    }

    impl Write for TinyDisk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
            let n = buf.len().min(self.room);
            self.stored.extend_from_slice(&buf[..n]);
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A disk whose reservations fail: a full filesystem that supports fallocate.
    struct ReservedFull(TinyDisk);

    impl Write for ReservedFull {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl CutBack for ReservedFull {
        fn cut_back(&mut self, bytes: u64) -> io::Result<()> {
            self.0.cut_back(bytes)
        }
        fn reserve(&mut self, bytes: u64) -> io::Result<bool> {
            if bytes as usize > self.0.room {
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
            Ok(true)
        }
    }

    #[test]
    fn a_batch_that_cannot_be_reserved_writes_nothing() {
        let disk = TinyDisk {
            stored: b"a\n".to_vec(),
            room: 5,
            can_cut: true,
        };
        let mut file = RecordFile::new(ReservedFull(disk));
        let outcome = file.append(b"bb\ncc\n");
        assert_eq!((outcome.written, outcome.lost), (0, 2));
        assert!(outcome.error.is_some());
        assert_eq!(file.get_ref().0.stored, b"a\n", "not even a fragment was written");
        let outcome = file.append(b"dd\n");
        assert_eq!((outcome.written, outcome.lost), (1, 0));
        assert_eq!(file.get_ref().0.stored, b"a\ndd\n");
    }

    impl CutBack for TinyDisk {
        fn cut_back(&mut self, bytes: u64) -> io::Result<()> {
            if !self.can_cut {
                return Err(io::Error::from_raw_os_error(1)); // EPERM: append-only
            }
            let keep = self.stored.len() - bytes as usize;
            self.stored.truncate(keep);
            self.room += bytes as usize;
            Ok(())
        }
    }

    fn disk(room: usize, can_cut: bool) -> RecordFile<TinyDisk> {
        RecordFile::new(TinyDisk {
            stored: Vec::new(),
            room,
            can_cut,
        })
    }

    fn stored(file: &RecordFile<TinyDisk>) -> &str {
        std::str::from_utf8(&file.get_ref().stored).unwrap()
    }

    #[test]
    fn a_record_cut_by_a_full_disk_is_removed_and_counted() {
        let mut file = disk(15, true);
        let outcome = file.append(b"first\nsecond\nthird\n");
        assert_eq!((outcome.written, outcome.lost), (2, 1));
        assert_eq!(outcome.error.unwrap().raw_os_error(), Some(28));
        assert_eq!(stored(&file), "first\nsecond\n");
        assert!(!file.owes());
    }

    #[test]
    fn after_space_returns_the_next_record_starts_on_its_own_line() {
        let mut file = disk(9, true);
        assert_eq!(file.append(b"first\nsecond\n").lost, 1);
        file.file.room = 100;
        let outcome = file.append(b"third\n");
        assert_eq!((outcome.written, outcome.lost), (1, 0));
        assert_eq!(stored(&file), "first\nthird\n");
    }

    #[test]
    fn a_disk_full_at_a_record_boundary_loses_whole_records_only() {
        let mut file = disk(6, true);
        let outcome = file.append(b"first\nsecond\nthird\n");
        assert_eq!((outcome.written, outcome.lost), (1, 2));
        assert_eq!(stored(&file), "first\n");
        let outcome = file.append(b"fourth\n");
        assert_eq!((outcome.written, outcome.lost), (0, 1));
        assert_eq!(stored(&file), "first\n");

        // The same where the file cannot be shortened: nothing was cut, so nothing is owed.
        let mut file = disk(6, false);
        let outcome = file.append(b"first\nsecond\nthird\n");
        assert_eq!((outcome.written, outcome.lost), (1, 2));
        assert!(!file.owes(), "a record that never started is lost, not owed");
    }

    #[test]
    fn a_file_that_cannot_be_shortened_gets_the_cut_record_completed_first() {
        let mut file = disk(9, false);
        let outcome = file.append(b"first\nsecond\nthird\n");
        // "second" is owed, not lost; "third" is lost.
        assert_eq!((outcome.written, outcome.lost), (1, 1));
        assert!(file.owes());
        // Still full: the new record is lost, the owed one still waits.
        let outcome = file.append(b"fourth\n");
        assert_eq!((outcome.written, outcome.lost), (0, 1));
        file.file.room = 100;
        let outcome = file.append(b"fifth\n");
        assert_eq!((outcome.written, outcome.lost), (2, 0));
        assert_eq!(stored(&file), "first\nsecond\nfifth\n");
        assert!(!file.owes());
    }

    #[test]
    fn closing_with_an_owed_record_tries_once_more() {
        let mut file = disk(3, false);
        file.append(b"first\n");
        file.file.room = 100;
        let outcome = file.close();
        assert_eq!((outcome.written, outcome.lost), (1, 0));

        let mut file = disk(3, false);
        file.append(b"first\n");
        let outcome = file.close();
        assert_eq!((outcome.written, outcome.lost), (0, 1));
        assert!(outcome.error.is_some());
    }

    /// A real file: cutting back shortens it by exactly the bytes asked, and a file someone
    /// else shortened meanwhile is refused rather than grown with zeros.
    #[test]
    fn a_real_file_is_cut_back_by_the_bytes_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let mut file = File::create(&path).unwrap();
        file.write_all(b"whole\nhalf a rec").unwrap();
        file.cut_back(10).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"whole\n");
        assert!(file.cut_back(100).is_err(), "a cut longer than the file is refused");
        assert_eq!(std::fs::read(&path).unwrap(), b"whole\n");
    }

    /// A real file: a reservation holds blocks without changing the size, and is reported as
    /// impossible only where the filesystem cannot reserve at all.
    #[test]
    fn a_real_reservation_holds_blocks_or_says_it_cannot() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let mut file = File::create(&path).unwrap();
        file.write_all(b"whole\n").unwrap();
        let blocks_before = file.metadata().unwrap().blocks();
        let reserved = file.reserve(1 << 20).unwrap();
        let after = file.metadata().unwrap();
        assert_eq!(after.len(), 6, "a reservation never changes the size");
        if reserved {
            assert!(
                after.blocks() >= blocks_before + (1 << 20) / 512,
                "a reservation said to hold must hold the blocks ({} → {} blocks)",
                blocks_before,
                after.blocks()
            );
        } else {
            use rustix::fs::{FallocateFlags, fallocate};
            let direct = fallocate(&file, FallocateFlags::KEEP_SIZE, 6, 1 << 20);
            assert!(
                matches!(direct, Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS)),
                "reported impossible although the filesystem reserves: {direct:?}"
            );
        }
    }

    #[test]
    fn a_pipe_takes_records_without_a_reservation() {
        let (read_end, write_end) = rustix::pipe::pipe().unwrap();
        let mut file = RecordFile::new(File::from(write_end));
        let outcome = file.append(b"first\nsecond\n");
        assert_eq!((outcome.written, outcome.lost), (2, 0), "{:?}", outcome.error);
        drop(file);
        let mut got = String::new();
        io::Read::read_to_string(&mut File::from(read_end), &mut got).unwrap();
        assert_eq!(got, "first\nsecond\n");
    }
}
