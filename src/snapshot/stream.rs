//! Reading an archive with decompression on its own thread: a producer decompresses into
//! 1 MB buffers over a bounded channel (4 in flight), the consumer parses tar and hashes.
//! Two cores, like `zstd -d | tar -x`, without the pipe; memory stays at a few MB.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

pub struct ArchiveReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
    /// Compressed bytes consumed so far (to say where a corrupt stream broke).
    pub compressed: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<()>>,
}

struct Counting<R> {
    inner: R,
    n: Arc<AtomicU64>,
}
impl<R: Read> Read for Counting<R> {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(b)?;
        self.n.fetch_add(k as u64, Ordering::Relaxed);
        Ok(k)
    }
}

impl ArchiveReader {
    pub fn open(path: &Path) -> io::Result<ArchiveReader> {
        let f = File::open(path)?;
        let compressed = Arc::new(AtomicU64::new(0));
        let counting = Counting { inner: f, n: compressed.clone() };
        let mut dec = zstd::stream::read::Decoder::with_buffer(io::BufReader::with_capacity(1 << 20, counting))?;
        let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(4);
        let counter = compressed.clone();
        let handle = std::thread::spawn(move || loop {
            let mut chunk = vec![0u8; 1 << 20];
            let mut filled = 0;
            let r = loop {
                match dec.read(&mut chunk[filled..]) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        filled += n;
                        if filled == chunk.len() {
                            break Ok(());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            chunk.truncate(filled);
            let end = filled == 0 || r.is_err();
            if filled > 0 && tx.send(Ok(chunk)).is_err() {
                return;
            }
            if let Err(e) = r {
                let at = counter.load(Ordering::Relaxed);
                let _ = tx.send(Err(io::Error::new(
                    e.kind(),
                    format!("the compressed stream is corrupt or truncated at or before byte {at} of the archive file (zstd: {e})"),
                )));
                return;
            }
            if end {
                return;
            }
        });
        Ok(ArchiveReader { rx, buf: Vec::new(), pos: 0, done: false, compressed, handle: Some(handle) })
    }
}

impl Read for ArchiveReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(b)) => {
                    self.buf = b;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for ArchiveReader {
    fn drop(&mut self) {
        // Unblock the producer, then wait for it.
        let rx = std::mem::replace(&mut self.rx, sync_channel(1).1);
        drop(rx);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
