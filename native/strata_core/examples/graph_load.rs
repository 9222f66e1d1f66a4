//! Times a follow graph's snapshot encode and decode: `cargo run --release --example graph_load`.
use std::time::Instant;

use strata_core::persist::Persist;
use strata_core::FollowerMap;

fn main() {
    if let Ok(dir) = std::env::var("GRAPH_DIR") {
        let t = Instant::now();
        let bytes =
            std::fs::read(std::path::Path::new(&dir).join("snap-0000000000000000.snap")).unwrap();
        println!("read {:?}", t.elapsed());
        let t = Instant::now();
        let graph = FollowerMap::load(&bytes).unwrap();
        println!("load {:?}", t.elapsed());
        drop(bytes);
        std::mem::forget(graph);
        let t = Instant::now();
        let (g, j, report) = strata_core::journal::open::<FollowerMap, ()>(
            std::path::Path::new(&dir),
            strata_core::journal::SyncMode::Never,
            FollowerMap::new,
            Box::new(|_, _| {}),
        )
        .unwrap();
        println!(
            "open_durable {:?}, {} records, {} edges",
            t.elapsed(),
            report.replayed,
            g.edges()
        );
        let _ = j.close();
        std::mem::forget(g);
        return;
    }
    if let Ok(path) = std::env::var("GRAPH_FILE") {
        if let Ok(bytes) = std::fs::read(&path) {
            let t = Instant::now();
            let back = FollowerMap::load(&bytes).unwrap();
            println!("load {:?}, {} edges", t.elapsed(), back.edges());
            std::mem::forget(back);
            return;
        }
    }
    let (edges, users) = (10_000_000u64, 1_000_000u32);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut pairs: Vec<(u32, u32)> = (0..edges)
        .map(|_| {
            let a = (next() % u64::from(users)) as u32;
            let u = (next() >> 11) as f64 / (1u64 << 53) as f64;
            let b = (f64::from(users) * u.powi(4)) as u32;
            if a == b {
                (a, (b + 1) % users)
            } else {
                (a, b)
            }
        })
        .collect();
    let mut graph = FollowerMap::new();
    let t = Instant::now();
    graph.follow_many(&mut pairs).unwrap();
    println!(
        "build {:?}, {} edges, {} users, memory {} MB",
        t.elapsed(),
        graph.edges(),
        graph.users(),
        graph.memory() >> 20
    );
    let t = Instant::now();
    let bytes = graph.dump();
    println!("dump {:?}, {} MB", t.elapsed(), bytes.len() >> 20);
    if let Ok(path) = std::env::var("GRAPH_FILE") {
        std::fs::write(path, &bytes).unwrap();
    }
    let t = Instant::now();
    let back = FollowerMap::load(&bytes).unwrap();
    println!("load {:?}, {} edges", t.elapsed(), back.edges());
}
