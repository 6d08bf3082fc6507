//! The choice of agent with 1,000 agents and 10,000 waiting conversations (target: under 5 µs per
//! decision; figures in docs/performance.md).
//!
//! - `choose_agent/1000_agents`: the pure policy over 1,000 `AgentView`s in a realistic mix.
//! - `book/conclude_refill`: one routing decision through the routing book. A saturated center
//!   (1,000 members with capacity 3, every auto-distributed one full, 10,000 waiting): an agent
//!   concludes a conversation and the freed slot is filled from the head of the queue at once.
//!   That is what one decision is in steady state under load: capacity frees up, the queue's head
//!   is matched to the best eligible agent, the assignment and its decision record are produced.
//!   Only `RoutingBook::apply` is timed; choosing the conversation to conclude and putting a new
//!   one at the tail (to keep the queue 10,000 deep) are not.
//! - `book/arrive_full_house`: what every new arrival costs in the same overload (nobody is free:
//!   it only queues). An untimed conclusion after each keeps the queue at 10,000.
//!
//! Short by default (`make bench`): 1 s warm-up, 3 s of measurement per benchmark. Criterion's
//! own flags override it, e.g. `cargo bench -p omniroute-benches -- --measurement-time 10`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::decision::{SaturatedBook, agent_views};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine::policy;

const AGENTS: usize = 1_000;
const CAPACITY: u32 = 3;
const WAITING: usize = 10_000;

fn choose_agent(c: &mut Criterion) {
    let views = agent_views(AGENTS, 7);
    let mut group = c.benchmark_group("choose_agent");
    group.throughput(Throughput::Elements(1));
    group.bench_function("1000_agents", |b| b.iter(|| policy::choose_agent(black_box(&views), black_box(&[]))));
    group.finish();
}

fn book(c: &mut Criterion) {
    let mut world = SaturatedBook::new(AGENTS, CAPACITY, WAITING);
    world.check();
    let mut group = c.benchmark_group("book_1000_agents_10000_waiting");
    group.throughput(Throughput::Elements(1));
    group.bench_function("conclude_refill", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let command = world.next_conclusion();
                let now = world.tick();
                let start = Instant::now();
                let outcome = world.book.apply(now, command);
                timed += start.elapsed();
                drop(black_box(outcome));
                world.refill();
            }
            timed
        })
    });
    group.bench_function("arrive_full_house", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let command = world.next_arrival();
                let now = world.tick();
                let start = Instant::now();
                let outcome = world.book.apply(now, command);
                timed += start.elapsed();
                drop(black_box(outcome));
                let conclusion = world.next_conclusion();
                world.apply(conclusion);
            }
            timed
        })
    });
    group.finish();
    assert_eq!(world.book.waiting_count(world.service), WAITING, "the queue kept its depth throughout");
}

fn short() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(50)
}

criterion_group! {
    name = benches;
    config = short();
    targets = choose_agent, book
}
criterion_main!(benches);
