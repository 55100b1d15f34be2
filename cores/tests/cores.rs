//! percore-cores against real threads and rings: round trips, replies to the
//! right task, no message lost or duplicated (property test), parked shards
//! woken promptly, stop with work in flight, panics, start-up failures, more
//! shards than CPUs, pinning and thread names.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use percore_cores::{
    broadcast, current, launch, launch_with, post, shard_for, spawn_on, stats, stop, stopping, submit_to, Config,
    CoreSet, LaunchError, MeshError,
};
use percore_io::time;
use proptest::prelude::*;

fn shards(n: usize) -> Config {
    Config { cores: CoreSet::Count(n), grace: Duration::from_secs(5), ..Config::default() }
}

#[test]
fn shards_run_pinned_with_names_and_dense_ids() {
    let running = launch(shards(2), |shard| async move {
        let name = std::thread::current().name().unwrap().to_string();
        // SAFETY: sched_getcpu takes no arguments.
        let cpu = unsafe { libc::sched_getcpu() };
        (shard, current(), name, cpu)
    })
    .unwrap();
    let placement = running.placement().clone();
    let outputs = running.join().unwrap();
    for (i, output) in outputs.into_iter().enumerate() {
        let (shard, current, name, cpu) = output.unwrap();
        assert_eq!(shard.id, i);
        assert_eq!(shard.count, 2);
        assert_eq!(current, shard);
        assert_eq!(name, format!("percore-shard-{i}"));
        assert_eq!(Some(cpu as usize), placement.cpus[i], "shard {i} is pinned");
    }
}

/// `launch_with` hands each shard its own value (a listener, say), with
/// nothing shared to take it from; `post` runs a closure on another shard
/// with no reply.
#[test]
fn each_shard_is_handed_its_own_value_and_posts_arrive() {
    let values: Vec<String> = (0..3).map(|i| format!("value {i}")).collect();
    let mut given = values.clone().into_iter().map(Some).collect::<Vec<_>>();
    let running = launch_with(
        shards(3),
        move |id| given[id].take().expect("given once"),
        |shard, value: String| async move {
            // Each shard posts its id to the next; the next records it.
            thread_local! { static GOT: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) }; }
            let next = (shard.id + 1) % shard.count;
            post(next, move || GOT.with(|g| g.borrow_mut().push(shard.id))).unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            while GOT.with(|g| g.borrow().is_empty()) && Instant::now() < deadline {
                time::sleep(Duration::from_millis(1)).await;
            }
            let got = GOT.with(|g| g.borrow().clone());
            (value, got)
        },
    )
    .unwrap();
    let outputs: Vec<(String, Vec<usize>)> = running.join().unwrap().into_iter().map(Option::unwrap).collect();
    for (i, (value, got)) in outputs.iter().enumerate() {
        assert_eq!(value, &values[i]);
        assert_eq!(got, &vec![(i + 2) % 3], "shard {i} heard from the shard before it");
    }
}

#[test]
fn replies_reach_the_task_that_asked() {
    let running = launch(shards(2), |shard| async move {
        let other = 1 - shard.id;
        let mut handles = Vec::new();
        for task in 0..200u64 {
            handles.push(percore_io::spawn(async move {
                for round in 0..20u64 {
                    let x = task * 1000 + round;
                    let reply = time::timeout(Duration::from_secs(5), submit_to(other, move || (x * 2, current().id)));
                    let (doubled, ran_on) = reply.await.expect("a reply was lost").unwrap();
                    assert_eq!(doubled, x * 2, "task {task} got another task's reply");
                    assert_eq!(ran_on, other);
                }
            }));
        }
        for h in handles {
            h.await;
        }
        // spawn_on runs a !Send future on the other shard.
        let y = spawn_on(other, move || async move {
            let local = std::rc::Rc::new(41);
            time::sleep(Duration::from_millis(1)).await;
            *local + 1
        })
        .await
        .unwrap();
        assert_eq!(y, 42);
        // On the current shard, submit_to runs at once.
        assert_eq!(submit_to(shard.id, || 7).await.unwrap(), 7);
        // A shard that does not exist is an error, not a hang.
        assert_eq!(submit_to(9, || ()).await.unwrap_err(), MeshError::NoSuchShard { shard: 9, count: 2 });
        broadcast(current).await.unwrap().into_iter().map(|s| s.id).collect::<Vec<_>>()
    })
    .unwrap();
    for output in running.join().unwrap() {
        assert_eq!(output.unwrap(), vec![0, 1], "broadcast gathers in shard order");
    }
}

thread_local! {
    static RECEIVED: RefCell<HashMap<(usize, u32), u32>> = RefCell::new(HashMap::new());
}

/// Every sender shard fires `messages` concurrent requests at shard 0, each
/// recording `(sender, sequence)` there. Returns what shard 0 recorded.
fn flood(shard_count: usize, messages: u32, tasks: u32) -> HashMap<(usize, u32), u32> {
    let running = launch(shards(shard_count), move |shard| async move {
        if shard.id == 0 {
            let expected = (shard.count as u64 - 1) * u64::from(messages);
            let start = Instant::now();
            loop {
                let total: u64 = RECEIVED.with(|r| r.borrow().values().map(|&n| u64::from(n)).sum());
                if total >= expected {
                    break;
                }
                assert!(start.elapsed() < Duration::from_secs(30), "messages lost: {total}/{expected}");
                time::sleep(Duration::from_millis(1)).await;
            }
            // Let any duplicate arrive before reporting.
            time::sleep(Duration::from_millis(20)).await;
            return RECEIVED.with(|r| r.take());
        }
        let from = shard.id;
        let mut handles = Vec::new();
        for t in 0..tasks {
            handles.push(percore_io::spawn(async move {
                let mut seq = t;
                while seq < messages {
                    let request = submit_to(0, move || {
                        RECEIVED.with(|r| *r.borrow_mut().entry((from, seq)).or_default() += 1);
                    });
                    time::timeout(Duration::from_secs(10), request).await.expect("a request was lost").unwrap();
                    seq += tasks;
                }
            }));
        }
        for h in handles {
            h.await;
        }
        HashMap::new()
    })
    .unwrap();
    running.join().unwrap().into_iter().next().unwrap().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn no_message_is_lost_or_duplicated(shard_count in 2usize..5, messages in 1u32..3000, tasks in 1u32..64) {
        let received = flood(shard_count, messages, tasks);
        for from in 1..shard_count {
            for seq in 0..messages {
                prop_assert_eq!(received.get(&(from, seq)).copied(), Some(1), "sender {} seq {}", from, seq);
            }
        }
        prop_assert_eq!(received.len(), (shard_count - 1) * messages as usize);
    }
}

#[test]
fn a_parked_shard_is_woken_promptly() {
    let running = launch(shards(2), |shard| async move {
        if shard.id == 1 {
            return None;
        }
        let mut latencies = Vec::new();
        for _ in 0..50 {
            // Let shard 1 go idle and park in its ring.
            time::sleep(Duration::from_millis(2)).await;
            let start = Instant::now();
            time::timeout(Duration::from_secs(5), submit_to(1, || ()))
                .await
                .expect("a parked shard was not woken")
                .unwrap();
            latencies.push(start.elapsed());
        }
        latencies.sort();
        let gathered = stats::gather().await.unwrap();
        Some((latencies[latencies.len() / 2], latencies[latencies.len() - 1], gathered))
    })
    .unwrap();
    let (median, max, gathered) = running.join().unwrap().remove(0).unwrap().unwrap();
    // Typically tens of microseconds; the bound only rules out a missed
    // wake-up (which would wait for an unrelated event).
    assert!(median < Duration::from_millis(5), "median parked round trip {median:?}");
    assert!(max < Duration::from_millis(100), "worst parked round trip {max:?}");
    assert!(gathered[1].io.doorbell_wakeups >= 10, "shard 1 was rung out of its parked state: {:?}", gathered[1]);
    assert!(gathered[0].messages_out >= 50 && gathered[1].messages_in >= 50, "{gathered:?}");
    assert!(gathered[0].wakeups_sent >= 10, "{gathered:?}");
}

#[test]
fn stop_with_work_in_flight_ends_within_the_grace_period() {
    use std::sync::{Arc, Mutex};
    let config = Config { grace: Duration::from_millis(300), ..shards(2) };
    // Outcomes of the requests, recorded as they arrive (the requesting main
    // may itself be dropped at its own deadline).
    let outcomes: Arc<Mutex<Vec<Result<(), MeshError>>>> = Arc::default();
    let recorded = outcomes.clone();
    let start = Instant::now();
    let running = launch(config, move |shard| {
        let recorded = recorded.clone();
        async move {
            if shard.id == 1 {
                stopping().await;
                return;
            }
            // Work on shard 1 that would never finish by itself.
            for _ in 0..20 {
                let recorded = recorded.clone();
                percore_io::spawn(async move {
                    let result = spawn_on(1, || time::sleep(Duration::from_secs(3600))).await;
                    recorded.lock().unwrap().push(result);
                });
            }
            time::sleep(Duration::from_millis(20)).await;
            stop();
            stopping().await;
        }
    })
    .unwrap();
    running.join().unwrap();
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(3), "stop took {elapsed:?}: work in flight must not hold it up");
    // No request can have succeeded; those whose error reply arrived before
    // shard 0 left say which shard stopped.
    for outcome in outcomes.lock().unwrap().iter() {
        assert_eq!(*outcome, Err(MeshError::Stopped { shard: 1 }));
    }
}

#[test]
fn a_panicking_shard_is_reported_and_stops_the_others() {
    let start = Instant::now();
    let running = launch(shards(3), |shard| async move {
        if shard.id == 2 {
            time::sleep(Duration::from_millis(20)).await;
            panic!("shard two gives up");
        }
        stopping().await;
        shard.id
    })
    .unwrap();
    let err = running.join().unwrap_err();
    match err {
        LaunchError::ShardPanicked { shard, message } => {
            assert_eq!(shard, 2);
            assert_eq!(message, "shard two gives up");
        }
        other => panic!("unexpected {other}"),
    }
    assert!(start.elapsed() < Duration::from_secs(3), "the others stopped promptly");
}

#[test]
fn more_shards_than_cpus_still_works() {
    let cpus = percore_cores::allowed_cpus().len();
    let running = launch(shards(cpus + 2), |shard| async move {
        let next = (shard.id + 1) % shard.count;
        submit_to(next, move || next).await.unwrap()
    })
    .unwrap();
    assert_eq!(running.placement().cpus.iter().filter(|c| c.is_none()).count(), 2);
    let outputs = running.join().unwrap();
    assert_eq!(outputs.len(), cpus + 2);
    for (i, out) in outputs.iter().enumerate() {
        assert_eq!(*out, Some((i + 1) % (cpus + 2)));
    }
}

#[test]
fn start_up_failures_name_the_shard_and_the_cause() {
    let ring = percore_io::RingConfig { sq_entries: 3, ..Default::default() };
    let config = Config { runtime: percore_io::Builder::default().ring(ring), ..shards(2) };
    let err = launch(config, |_| async {}).unwrap_err();
    match &err {
        LaunchError::ShardStart { shard: 0, cause, .. } => assert!(cause.contains("powers of two"), "{cause}"),
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().starts_with("shard 0"), "{err}");
    let err = launch(Config { cores: CoreSet::List(vec![4096]), ..Config::default() }, |_| async {}).unwrap_err();
    assert!(err.to_string().contains("CPU 4096 is not in this process's affinity mask"), "{err}");
}

#[test]
fn a_stop_handle_stops_from_outside() {
    let running = launch(shards(2), |shard| async move {
        stopping().await;
        shard.id
    })
    .unwrap();
    let handle = running.stop_handle();
    std::thread::sleep(Duration::from_millis(20));
    handle.stop();
    handle.stop();
    assert_eq!(running.join().unwrap(), vec![Some(0), Some(1)]);
}

#[test]
fn shard_for_is_stable() {
    // Fixed values: the mapping must not change between builds or runs.
    assert_eq!(shard_for("a/b/c.txt", 4), shard_for("a/b/c.txt", 4));
    let spread: Vec<usize> = (0..1000).map(|i| shard_for(&format!("file-{i}"), 4)).collect();
    for s in 0..4 {
        let n = spread.iter().filter(|&&x| x == s).count();
        assert!((150..350).contains(&n), "shard {s} owns {n} of 1000 keys");
    }
    assert_eq!(shard_for(&42u64, 7), shard_for(&42u64, 7));
    // Pinned values: a change means keys move between shards.
    assert_eq!(shard_for("", 3), 1);
    assert_eq!(shard_for("docs/readme.md", 16), shard_for(&String::from("docs/readme.md"), 16));
}

#[test]
fn unless_stopping_ends_a_wait_at_a_stop_and_passes_a_result_through() {
    let running = launch(shards(1), |_shard| async move {
        let quick = percore_cores::unless_stopping(async { 7 }).await;
        let start = Instant::now();
        percore_io::spawn(async {
            time::sleep(Duration::from_millis(30)).await;
            stop();
        });
        let forever = percore_cores::unless_stopping(time::sleep(Duration::from_secs(3600))).await;
        (quick, forever.is_none(), start.elapsed())
    })
    .unwrap();
    let (quick, ended, waited) = running.join().unwrap().into_iter().next().flatten().expect("the shard's result");
    assert_eq!(quick, Some(7));
    assert!(ended, "the endless wait ends with None at the stop");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}
