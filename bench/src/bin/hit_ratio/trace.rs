//! Trace reader for the formats described in /work/shared/traces/README.md.
//!
//! Every format is turned into a stream of `u64` keys. Decompression (.zst, .gz, .xz) happens
//! in-process with pure-Rust crates (ruzstd, flate2/miniz_oxide, lzma-rs).
//!
//! Format detection is by file name / path; an explicit `fmt:` prefix (for example
//! `be64:/path/to/file.gz`) overrides it. Tags: arc, lirs, be32, be64, adaptsize, txt,
//! oracleGeneral, msr-csv, meta-kv-csv.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ARC paper `.lis`: `start num ignore reqno`, expands to `num` keys.
    Arc,
    /// LIRS: one decimal key per line; skip blank and `*` lines.
    Lirs,
    /// Raw big-endian u32 keys.
    Be32,
    /// Raw big-endian u64 keys.
    Be64,
    /// `seq id size`; key = hash(id, size).
    AdaptSize,
    /// One decimal key per line.
    Txt,
    /// libCacheSim oracleGeneral: 24-byte LE records, key = obj_id.
    OracleGeneral,
    /// MSR Cambridge CSV; expands [offset, offset+size) into 4 KiB pages.
    MsrCsv,
    /// CacheLib kvcache trace-replay CSV; GET / GET_LEASE requests, repeated op_count times.
    MetaKvCsv,
}

impl Format {
    pub fn tag(self) -> &'static str {
        match self {
            Format::Arc => "arc",
            Format::Lirs => "lirs",
            Format::Be32 => "be32",
            Format::Be64 => "be64",
            Format::AdaptSize => "adaptsize",
            Format::Txt => "txt",
            Format::OracleGeneral => "oracleGeneral",
            Format::MsrCsv => "msr-csv",
            Format::MetaKvCsv => "meta-kv-csv",
        }
    }

    pub fn from_tag(s: &str) -> Option<Format> {
        Some(match s.to_ascii_lowercase().as_str() {
            "arc" => Format::Arc,
            "lirs" => Format::Lirs,
            "be32" => Format::Be32,
            "be64" => Format::Be64,
            "adaptsize" => Format::AdaptSize,
            "txt" => Format::Txt,
            "oraclegeneral" => Format::OracleGeneral,
            "msr-csv" | "msr" => Format::MsrCsv,
            "meta-kv-csv" | "meta" => Format::MetaKvCsv,
            _ => return None,
        })
    }
}

#[derive(Debug)]
pub enum TraceError {
    /// The file (or a directory on its path) does not exist or cannot be opened.
    Open { path: PathBuf, source: io::Error },
    /// Reading or decompressing failed.
    Read { path: PathBuf, source: io::Error },
    /// The format could not be determined from the name.
    UnknownFormat { path: PathBuf },
    /// A line or record could not be parsed.
    Parse {
        path: PathBuf,
        line: u64,
        msg: String,
    },
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceError::Open { path, source } => {
                let what = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() && !p.is_dir() => {
                        format!(" (directory {} does not exist)", p.display())
                    }
                    _ => String::new(),
                };
                write!(
                    f,
                    "cannot open trace file {}{}: {}",
                    path.display(),
                    what,
                    source
                )
            }
            TraceError::Read { path, source } => {
                write!(f, "error reading trace file {}: {}", path.display(), source)
            }
            TraceError::UnknownFormat { path } => write!(
                f,
                "cannot tell the trace format of {} from its name; prefix the path with a \
                 format tag, e.g. `be32:{}` (tags: arc, lirs, be32, be64, adaptsize, txt, \
                 oracleGeneral, msr-csv, meta-kv-csv)",
                path.display(),
                path.display()
            ),
            TraceError::Parse { path, line, msg } => {
                write!(f, "{}:{}: {}", path.display(), line, msg)
            }
        }
    }
}

impl std::error::Error for TraceError {}

/// A trace spec: a path plus a format (detected or explicit).
#[derive(Debug, Clone)]
pub struct TraceSpec {
    pub path: PathBuf,
    pub format: Format,
}

impl TraceSpec {
    /// Parse `path` or `fmt:path`.
    pub fn parse(arg: &str) -> Result<TraceSpec, TraceError> {
        if let Some((pre, rest)) = arg.split_once(':') {
            if let Some(format) = Format::from_tag(pre) {
                return Ok(TraceSpec {
                    path: PathBuf::from(rest),
                    format,
                });
            }
        }
        let path = PathBuf::from(arg);
        if path.is_dir() {
            return Err(TraceError::Open {
                path,
                source: io::Error::other("is a directory, not a trace file"),
            });
        }
        let format =
            detect_format(&path).ok_or_else(|| TraceError::UnknownFormat { path: path.clone() })?;
        Ok(TraceSpec { path, format })
    }
}

/// Detect the format from the file name and the directory it sits in.
pub fn detect_format(path: &Path) -> Option<Format> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    let full = path.to_string_lossy().to_ascii_lowercase();
    let base = strip_compression(&name);
    if base.contains("oraclegeneral") {
        return Some(Format::OracleGeneral);
    }
    if base.ends_with(".lis") {
        return Some(Format::Arc);
    }
    if base.contains("adaptsize") || base.contains("adapt_size") {
        return Some(Format::AdaptSize);
    }
    if base.ends_with(".txt") {
        return Some(Format::Txt);
    }
    if base.contains("cache2k") || base.contains("cloudphysics-w106") || base.contains("w106.trace")
    {
        return Some(Format::Be32);
    }
    if base.contains("scarab") || base.contains("corda") {
        return Some(Format::Be64);
    }
    if base.ends_with(".csv") {
        if base.contains("msr") || base.contains("cambridge") {
            return Some(Format::MsrCsv);
        }
        if base.contains("kv_trace") || base.contains("meta") || base.contains("cachelib") {
            return Some(Format::MetaKvCsv);
        }
        return None;
    }
    if base.ends_with(".txt") {
        return Some(Format::Txt);
    }
    if full.contains("/lirs/") || base.ends_with(".lirs") || base.ends_with(".trace") {
        // plain `.trace` files outside the known binary ones are LIRS text
        if full.contains("/arc/") {
            return Some(Format::Arc);
        }
        return Some(Format::Lirs);
    }
    if full.contains("/arc/") {
        return Some(Format::Arc);
    }
    None
}

fn strip_compression(name: &str) -> &str {
    for ext in [".zst", ".gz", ".xz"] {
        if let Some(s) = name.strip_suffix(ext) {
            return s;
        }
    }
    name
}

/// Open a file and wrap it in the right decompressor, chosen by extension.
pub fn open_decompressed(path: &Path) -> Result<Box<dyn BufRead>, TraceError> {
    let file = File::open(path).map_err(|e| TraceError::Open {
        path: path.to_path_buf(),
        source: e,
    })?;
    if path.is_dir() {
        return Err(TraceError::Open {
            path: path.to_path_buf(),
            source: io::Error::other("is a directory, not a trace file"),
        });
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let buf = BufReader::with_capacity(1 << 20, file);
    let rd: Box<dyn BufRead> = if name.ends_with(".zst") {
        let mut raw = Vec::new();
        let mut buf = buf;
        buf.read_to_end(&mut raw).map_err(|e| TraceError::Read {
            path: path.to_path_buf(),
            source: e,
        })?;
        let dec = ruzstd::decoding::StreamingDecoder::new(Cursor::new(raw)).map_err(|e| {
            TraceError::Read {
                path: path.to_path_buf(),
                source: io::Error::other(format!("zstd: {e}")),
            }
        })?;
        Box::new(BufReader::with_capacity(
            1 << 20,
            MultiFrameZstd { inner: Some(dec) },
        ))
    } else if name.ends_with(".gz") {
        Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::bufread::MultiGzDecoder::new(buf),
        ))
    } else if name.ends_with(".xz") {
        // lzma-rs decodes into a writer; the largest .xz here expands to ~21 MB.
        let mut input = buf;
        let mut out = Vec::new();
        lzma_rs::xz_decompress(&mut input, &mut out).map_err(|e| TraceError::Read {
            path: path.to_path_buf(),
            source: io::Error::other(format!("xz: {e:?}")),
        })?;
        Box::new(Cursor::new(out))
    } else {
        Box::new(buf)
    };
    Ok(rd)
}

/// ruzstd's StreamingDecoder decodes one frame; this continues with the next frame while
/// compressed input remains (the whole compressed file is held in memory; the largest here is 3 MB).
struct MultiFrameZstd {
    inner:
        Option<ruzstd::decoding::StreamingDecoder<Cursor<Vec<u8>>, ruzstd::decoding::FrameDecoder>>,
}

impl Read for MultiFrameZstd {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(dec) = self.inner.as_mut() else {
                return Ok(0);
            };
            let n = dec.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let src = self.inner.take().unwrap().into_inner();
            if (src.position() as usize) >= src.get_ref().len() {
                return Ok(0);
            }
            let dec = ruzstd::decoding::StreamingDecoder::new(src)
                .map_err(|e| io::Error::other(format!("zstd: next frame: {e}")))?;
            self.inner = Some(dec);
        }
    }
}

/// Stream every key of a trace through `f`. Returns the number of keys produced.
pub fn for_each_key<F: FnMut(u64)>(spec: &TraceSpec, mut f: F) -> Result<u64, TraceError> {
    let path = spec.path.as_path();
    let mut rd = open_decompressed(path)?;
    let rerr = |e: io::Error| TraceError::Read {
        path: path.to_path_buf(),
        source: e,
    };
    let perr = |line: u64, msg: String| TraceError::Parse {
        path: path.to_path_buf(),
        line,
        msg,
    };
    let mut count = 0u64;
    match spec.format {
        Format::Be32 | Format::Be64 | Format::OracleGeneral => {
            let rec = match spec.format {
                Format::Be32 => 4,
                Format::Be64 => 8,
                _ => 24,
            };
            let mut buf = vec![0u8; rec * 65536];
            let mut fill = 0usize;
            loop {
                let n = rd.read(&mut buf[fill..]).map_err(rerr)?;
                fill += n;
                let whole = fill / rec * rec;
                for r in buf[..whole].chunks_exact(rec) {
                    let k = match spec.format {
                        Format::Be32 => u32::from_be_bytes(r.try_into().unwrap()) as u64,
                        Format::Be64 => u64::from_be_bytes(r.try_into().unwrap()),
                        _ => u64::from_le_bytes(r[4..12].try_into().unwrap()),
                    };
                    f(k);
                    count += 1;
                }
                buf.copy_within(whole..fill, 0);
                fill -= whole;
                if n == 0 {
                    if fill != 0 {
                        return Err(perr(
                            count,
                            format!("trailing {fill} bytes, not a whole {rec}-byte record"),
                        ));
                    }
                    break;
                }
            }
        }
        Format::Arc
        | Format::Lirs
        | Format::Txt
        | Format::AdaptSize
        | Format::MsrCsv
        | Format::MetaKvCsv => {
            let mut line = String::new();
            let mut lineno = 0u64;
            // meta-kv-csv: column indices from the header
            let mut meta_cols: Option<(usize, usize, usize)> = None; // key, op, op_count
            loop {
                line.clear();
                let n = rd.read_line(&mut line).map_err(rerr)?;
                if n == 0 {
                    break;
                }
                lineno += 1;
                let t = line.trim();
                match spec.format {
                    Format::Lirs | Format::Txt => {
                        if t.is_empty() || t == "*" {
                            continue;
                        }
                        let k: u64 = t
                            .parse()
                            .map_err(|_| perr(lineno, format!("not an integer key: {t:?}")))?;
                        f(k);
                        count += 1;
                    }
                    Format::Arc => {
                        if t.is_empty() {
                            continue;
                        }
                        let mut it = t.split_ascii_whitespace();
                        let start: u64 = it
                            .next()
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| perr(lineno, format!("bad arc line: {t:?}")))?;
                        let num: u64 = it
                            .next()
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| perr(lineno, format!("bad arc line: {t:?}")))?;
                        for k in start..start + num {
                            f(k);
                            count += 1;
                        }
                    }
                    Format::AdaptSize => {
                        if t.is_empty() {
                            continue;
                        }
                        let mut it = t.split_ascii_whitespace();
                        let _seq = it.next();
                        let id: u64 = it
                            .next()
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| perr(lineno, format!("bad adaptsize line: {t:?}")))?;
                        let size: u64 = it
                            .next()
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| perr(lineno, format!("bad adaptsize line: {t:?}")))?;
                        f(mix64(id ^ mix64(size.wrapping_add(0x9E37_79B9_7F4A_7C15))));
                        count += 1;
                    }
                    Format::MsrCsv => {
                        if t.is_empty() {
                            continue;
                        }
                        let cols: Vec<&str> = t.split(',').collect();
                        if cols.len() < 6 {
                            return Err(perr(lineno, format!("expected 7 columns: {t:?}")));
                        }
                        if lineno == 1 && cols[4].parse::<u64>().is_err() {
                            continue; // header
                        }
                        let off: u64 = cols[4]
                            .parse()
                            .map_err(|_| perr(lineno, format!("bad offset {:?}", cols[4])))?;
                        let size: u64 = cols[5]
                            .parse()
                            .map_err(|_| perr(lineno, format!("bad size {:?}", cols[5])))?;
                        let first = off / 4096;
                        let last = (off + size.max(1) - 1) / 4096;
                        for p in first..=last {
                            f(p);
                            count += 1;
                        }
                    }
                    Format::MetaKvCsv => {
                        if t.is_empty() {
                            continue;
                        }
                        let cols: Vec<&str> = t.split(',').collect();
                        let Some((ki, oi, ci)) = meta_cols else {
                            let pos = |name: &str| cols.iter().position(|c| c.trim() == name);
                            match (pos("key"), pos("op"), pos("op_count")) {
                                (Some(a), Some(b), Some(c)) => meta_cols = Some((a, b, c)),
                                _ => {
                                    return Err(perr(
                                        lineno,
                                        "meta-kv-csv: header without key/op/op_count".into(),
                                    ))
                                }
                            }
                            continue;
                        };
                        let need = ki.max(oi).max(ci);
                        if cols.len() <= need {
                            return Err(perr(lineno, format!("too few columns: {t:?}")));
                        }
                        let op = cols[oi].trim();
                        if op == "GET" || op == "GET_LEASE" {
                            let reps: u64 = cols[ci].trim().parse().unwrap_or(1).max(1);
                            let k = fnv1a(cols[ki].trim().as_bytes());
                            for _ in 0..reps {
                                f(k);
                                count += 1;
                            }
                        }
                    }
                    _ => unreachable!(),
                }
            }
        }
    }
    Ok(count)
}

/// Load a whole trace into memory.
pub fn load(spec: &TraceSpec) -> Result<Vec<u64>, TraceError> {
    let mut v = Vec::new();
    for_each_key(spec, |k| v.push(k))?;
    Ok(v)
}

pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn fnv1a(b: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &x in b {
        h ^= x as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
