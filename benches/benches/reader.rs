//! The ID reader's lines/s (`engage::ids::Reader`), per input format.
//!
//! Inputs are generated in a temporary folder when the bench starts, 200,000 lines each, from the
//! same IDs:
//! - `plain`: one ID a line (`ids.txt`);
//! - `csv`: `tweet_id,account,created_at,text` with a quoted text field (`ids.csv`);
//! - `jsonl`: a small Tweet object a line, `id` as a number and `id_str` (`ids.jsonl`), about 180
//!   bytes a line: real exports are larger, so read this as an upper bound in lines/s;
//! - `plain.gz`, `jsonl.gz`: the same files gzipped (`.txt.gz`, `.jsonl.gz`).
//!
//! Each iteration opens the file and pulls every record through `Reader::next_record`, as ingest
//! does; the record count is checked once before timing.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engage::ids::{InputSource, ReadOptions, Reader, Record};
use flate2::write::GzEncoder;
use flate2::Compression;
use std::hint::black_box;

const LINES: u64 = 200_000;

fn id(i: u64) -> u64 {
    // Snowflake-sized IDs, not sorted.
    1_900_000_000_000_000_000 + (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 8)
}

fn write_file(path: &Path, gzip: bool, mut line: impl FnMut(&mut dyn Write, u64)) {
    let file = BufWriter::new(File::create(path).expect("create a bench input"));
    if gzip {
        let mut gz = GzEncoder::new(file, Compression::default());
        (0..LINES).for_each(|i| line(&mut gz, i));
        gz.finish()
            .expect("gzip")
            .flush()
            .expect("write a bench input");
    } else {
        let mut file = file;
        (0..LINES).for_each(|i| line(&mut file, i));
        file.flush().expect("write a bench input");
    }
}

fn plain(w: &mut dyn Write, i: u64) {
    writeln!(w, "{}", id(i)).expect("write");
}

fn csv_row(w: &mut dyn Write, i: u64) {
    if i == 0 {
        writeln!(w, "tweet_id,account,created_at,text").expect("write");
    }
    writeln!(
        w,
        "{},demo,2026-05-{:02}T12:00:00Z,\"launch day, thread {i}\"",
        id(i),
        1 + i % 28
    )
    .expect("write");
}

fn jsonl(w: &mut dyn Write, i: u64) {
    let id = id(i);
    writeln!(
        w,
        "{{\"id\":{id},\"id_str\":\"{id}\",\"created_at\":\"Fri May 01 12:00:00 +0000 2026\",\
         \"text\":\"launch day, thread {i}\",\"user\":{{\"screen_name\":\"demo\"}},\"lang\":\"en\"}}"
    )
    .expect("write");
}

fn read_all(path: &Path) -> u64 {
    let mut reader = Reader::new(
        vec![InputSource::File(path.to_path_buf())],
        ReadOptions::default(),
    );
    let mut ids = 0;
    while let Some(item) = reader.next_record() {
        if let Record::Id { id, .. } = item.expect("readable").record {
            black_box(id);
            ids += 1;
        }
    }
    ids
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let inputs: Vec<(&str, PathBuf)> = vec![
        ("plain", dir.path().join("ids.txt")),
        ("csv", dir.path().join("ids.csv")),
        ("jsonl", dir.path().join("ids.jsonl")),
        ("plain.gz", dir.path().join("ids.txt.gz")),
        ("jsonl.gz", dir.path().join("ids.jsonl.gz")),
    ];
    for (name, path) in &inputs {
        let gzip = name.ends_with(".gz");
        match name.trim_end_matches(".gz") {
            "plain" => write_file(path, gzip, plain),
            "csv" => write_file(path, gzip, csv_row),
            _ => write_file(path, gzip, jsonl),
        }
        assert_eq!(read_all(path), LINES, "{name}: every line is an ID");
        let bytes = std::fs::metadata(path).expect("bench input").len();
        println!(
            "{name}: {LINES} lines, {bytes} bytes on disk ({:.1} bytes a line)",
            bytes as f64 / LINES as f64
        );
    }

    let mut g = c.benchmark_group("reader");
    g.sample_size(20);
    g.throughput(Throughput::Elements(LINES));
    for (name, path) in &inputs {
        g.bench_with_input(BenchmarkId::from_parameter(name), path, |b, path| {
            b.iter(|| read_all(path))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
