//! The NBD backend against real servers started and stopped by the tests (nbdkit's
//! memory plugin over a Unix socket, qemu-nbd over a file on TCP loopback) and against
//! an in-process fake server that breaks the protocol on purpose. Tests needing a
//! missing server skip with the reason (`SWAPDIO_REQUIRE_NBD=1` turns that into a
//! failure). Each test names the rule it pins down.
#![cfg(all(feature = "linux", target_os = "linux"))]

mod nbd_common;
mod support;

use nbd_common::*;
use std::time::Duration;
use support::Scratch;
use swapdio::linux::nbd::{self, proto, NbdConfig};
use swapdio::*;

fn write_failures(pages: &swapdio::testkit::MemPages) -> Vec<(FolioId, Errno)> {
    pages
        .events()
        .into_iter()
        .filter_map(|e| match e {
            SwapEvent::WriteFailed { folio, failure, .. } => Some((folio, failure.errno())),
            _ => None,
        })
        .collect()
}

fn read_failures(pages: &swapdio::testkit::MemPages) -> Vec<(FolioId, Errno)> {
    pages
        .events()
        .into_iter()
        .filter_map(|e| match e {
            SwapEvent::ReadFailed { folio, failure, .. } => Some((folio, failure.errno())),
            _ => None,
        })
        .collect()
}

/// Writes slots 1..=n, reads them back into other pages, checks every byte.
fn roundtrip(rig: &Rig, n: u64, tag: u64) {
    for first in (1..=n).step_by(32) {
        write_run(rig, first, 32.min(n + 1 - first), tag);
    }
    wait_idle(&rig.engine);
    for first in (1..=n).step_by(32) {
        read_run(rig, first, 32.min(n + 1 - first), 256 + first - 1);
    }
    wait_idle(&rig.engine);
    for s in 1..=n {
        assert_eq!(page(&rig.arena, (256 + s - 1) as usize), stamp(s, tag), "slot {s}");
        assert!(rig.pages.state(FolioId(256 + s - 1)).uptodate);
    }
    assert_eq!(rig.pages.violations(), Vec::<String>::new());
    assert_eq!(rig.pages.pins_held(), 0);
}

#[test]
fn export_is_activated_like_a_block_device_after_mkswap() {
    if !have("nbdkit") {
        return;
    }
    let dir = Scratch::new("nbd-activate");
    let server = Server::nbdkit_memory(&dir.0, 8 << 20);
    let before = nbd::check(&server.uri, ModeRequest::Auto);
    assert!(!before.kernel.is_usable(), "no header yet: swapon refuses");
    let h = nbd::mkswap(&server.uri, None).unwrap();
    assert_eq!(h.last_page, (8 << 20) / 4096 - 1);
    let rep = nbd::check(&server.uri, ModeRequest::Auto);
    assert_eq!(rep.kernel.usable_kib(), Some((8 << 20) / 1024 - 4), "every page but the header");
    let act = nbd::activate(&server.uri, ModeRequest::Auto).unwrap();
    assert_eq!(act.report.mode, IoMode::Device);
    assert_eq!(act.report.extents, 1);
}

#[test]
fn nbdkit_memory_over_unix_socket_round_trips_pages_on_several_connections() {
    if !have("nbdkit") {
        return;
    }
    let dir = Scratch::new("nbd-nbdkit");
    let server = Server::nbdkit_memory(&dir.0, 16 << 20);
    let rig = rig(&server.uri, |c| c);
    assert!(rig.backend.export().can_multi_conn(), "nbdkit's memory plugin allows multi-conn");
    assert_eq!(rig.backend.connections(), 4);
    roundtrip(&rig, 200, 3);
    let st = rig.backend.stats();
    assert_eq!(st.submitted, st.completed);
    assert_eq!(rig.backend.nbd_stats().connection_losses, 0);
}

#[test]
fn qemu_nbd_over_a_file_puts_slot_n_at_byte_n_pages() {
    if !have("qemu-nbd") {
        return;
    }
    let dir = Scratch::new("nbd-qemu");
    let server = Server::qemu_nbd_tcp(&dir.0, 8 << 20);
    let rig = rig(&server.uri, |c| c);
    roundtrip(&rig, 100, 5);
    rig.backend.flush().unwrap();
    let bytes = std::fs::read(dir.0.join("disk.raw")).unwrap();
    assert_eq!(&bytes[7 * PAGE..8 * PAGE], &stamp(7, 5)[..], "device mode: slot 7 at byte 7 * 4096");
    assert_eq!(&bytes[4086..4096], b"SWAPSPACE2", "mkswap wrote the header into page 0");
}

#[test]
fn sync_writes_carry_fua_and_flush_reaches_the_server() {
    if !have("nbdkit") {
        return;
    }
    let dir = Scratch::new("nbd-fua");
    let server = Server::nbdkit_memory(&dir.0, 8 << 20);
    let rig = rig(&server.uri, |c| c);
    assert!(rig.backend.export().can_fua() && rig.backend.export().can_flush());
    rig.arena.copy_in(10, &stamp(10, 1));
    rig.pages.prepare_write(FolioId(10));
    rig.engine.write_sync(Folio::small(10, 10), FsContext::MayEnterFs, std::thread::yield_now).unwrap();
    assert_eq!(rig.backend.nbd_stats().fua_writes, 1, "a SYNC write is sent with NBD_CMD_FLAG_FUA");
    write_run(&rig, 20, 4, 1);
    wait_idle(&rig.engine);
    assert_eq!(rig.backend.nbd_stats().fua_writes, 1, "async writes are not");
    rig.backend.flush().unwrap();
    assert_eq!(rig.backend.nbd_stats().flushes, 4, "one flush per connection");
}

#[test]
fn server_killed_mid_run_fails_in_flight_requests_and_loses_nothing_after_restart() {
    if !have("qemu-nbd") {
        return;
    }
    let dir = Scratch::new("nbd-restart");
    let mut server = Server::qemu_nbd_tcp(&dir.0, 8 << 20);
    let rig = rig(&server.uri, |c| NbdConfig { reconnect_wait: Duration::from_millis(300), ..c });
    for first in (1..=96).step_by(32) {
        write_run(&rig, first, 32, 1);
    }
    wait_idle(&rig.engine);
    // New generation of slots 1..=64 while the server dies under them.
    write_run(&rig, 1, 32, 2);
    server.kill();
    write_run(&rig, 33, 32, 2);
    wait_idle(&rig.engine);
    let failed = write_failures(rig.pages);
    assert!(!failed.is_empty(), "the second batch cannot have reached a dead server");
    for (f, e) in &failed {
        assert!(
            [libc::ECONNRESET, libc::ENOTCONN, libc::EPIPE].contains(&e.0),
            "folio {f:?} failed with {e:?}: not a connection errno"
        );
        let st = rig.pages.state(*f);
        assert!(st.dirty && !st.writeback, "failed write of {f:?} redirtied");
    }
    // Reads while the server is down fail cleanly, the pages stay not uptodate.
    read_run(&rig, 70, 4, 400);
    wait_idle(&rig.engine);
    assert_eq!(read_failures(rig.pages).len(), 4);
    assert!(!rig.pages.state(FolioId(400)).uptodate && !rig.pages.state(FolioId(400)).locked);

    server.start();
    // The redirtied pages are written again once the server is back.
    let t = std::time::Instant::now();
    for (f, _) in failed {
        let s = f.0;
        loop {
            rig.pages.prepare_write(f);
            rig.engine.write_sync(Folio::small(s, s), FsContext::MayEnterFs, std::thread::yield_now).ok();
            if !rig.pages.state(f).dirty {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "never reconnected");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert!(rig.backend.nbd_stats().reconnects >= 1);
    for first in (1..=96).step_by(32) {
        read_run(&rig, first, 32, 256 + first - 1);
    }
    wait_idle(&rig.engine);
    for s in 1..=96u64 {
        let tag = if s <= 64 { 2 } else { 1 };
        assert_eq!(page(&rig.arena, (256 + s - 1) as usize), stamp(s, tag), "slot {s} lost or stale");
    }
    assert_eq!(rig.pages.violations(), Vec::<String>::new());
    assert_eq!(rig.pages.pins_held(), 0);
}

#[test]
fn unknown_cookie_drops_the_connection_fails_in_flight_with_eproto_and_reconnects() {
    let dir = Scratch::new("nbd-cookie");
    let fake = FakeServer::start(&dir.0, 1 << 20, &[Behavior::Good, Behavior::Good, Behavior::UnknownCookie]);
    let rig = rig(&fake.uri, |c| c);
    write_run(&rig, 1, 8, 4);
    wait_idle(&rig.engine);
    read_run(&rig, 1, 8, 300);
    wait_idle(&rig.engine);
    let failed = read_failures(rig.pages);
    assert_eq!(failed.len(), 8, "the read answered with a foreign cookie fails");
    assert!(failed.iter().all(|(_, e)| e.0 == proto::EPROTO));
    assert_eq!(rig.backend.nbd_stats().protocol_errors, 1);
    // The next connection behaves: the same read now succeeds.
    let t = std::time::Instant::now();
    while rig.backend.nbd_stats().reconnects == 0 {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(5));
    }
    read_run(&rig, 1, 8, 300);
    wait_idle(&rig.engine);
    for s in 1..=8u64 {
        assert_eq!(page(&rig.arena, (300 + s - 1) as usize), stamp(s, 4));
    }
}

#[test]
fn short_reply_fails_the_read_with_econnreset_and_the_retry_succeeds() {
    let dir = Scratch::new("nbd-short");
    let fake = FakeServer::start(&dir.0, 1 << 20, &[Behavior::Good, Behavior::Good, Behavior::ShortReply]);
    let rig = rig(&fake.uri, |c| c);
    write_run(&rig, 1, 4, 9);
    wait_idle(&rig.engine);
    read_run(&rig, 1, 4, 300);
    wait_idle(&rig.engine);
    let failed = read_failures(rig.pages);
    assert_eq!(failed.len(), 4);
    assert!(failed.iter().all(|(_, e)| e.0 == libc::ECONNRESET), "{failed:?}");
    read_run(&rig, 1, 4, 300);
    wait_idle(&rig.engine);
    for s in 1..=4u64 {
        assert_eq!(page(&rig.arena, (300 + s - 1) as usize), stamp(s, 9));
    }
}

#[test]
fn error_reply_fails_the_write_with_the_servers_errno_and_redirties_it() {
    let dir = Scratch::new("nbd-error");
    // mkswap and activation connections behave; the driver's connection refuses writes.
    let fake = FakeServer::start(&dir.0, 1 << 20, &[Behavior::Good, Behavior::Good, Behavior::ErrorReply]);
    let rig = rig(&fake.uri, |c| c);
    write_run(&rig, 1, 3, 1);
    wait_idle(&rig.engine);
    let failed = write_failures(rig.pages);
    assert_eq!(failed.len(), 3);
    assert!(failed.iter().all(|(_, e)| *e == Errno::ENOSPC));
    assert!(rig.pages.state(FolioId(1)).dirty);
    assert_eq!(rig.backend.nbd_stats().connection_losses, 0, "an error reply is not a protocol error");
    assert_eq!(rig.pages.violations(), Vec::<String>::new());
}

#[test]
fn structured_replies_assemble_reads_from_chunks_in_any_order() {
    let dir = Scratch::new("nbd-structured");
    let b = Behavior::Structured;
    let fake = FakeServer::start(&dir.0, 1 << 20, &[b, b, b, b]);
    let rig = rig(&fake.uri, |c| c);
    assert!(rig.backend.export().structured);
    roundtrip(&rig, 40, 6);
}

#[test]
fn requests_over_the_servers_maximum_payload_complete_short_and_only_the_tail_folios_fail() {
    let dir = Scratch::new("nbd-maxblock");
    let fake = FakeServer::start(&dir.0, 1 << 20, &[Behavior::Good, Behavior::Good, Behavior::SmallMaxBlock]);
    let rig = rig(&fake.uri, |c| c);
    assert_eq!(rig.backend.export().max_payload(), 8192);
    write_run(&rig, 1, 4, 8);
    wait_idle(&rig.engine);
    let failed: Vec<FolioId> = write_failures(rig.pages).into_iter().map(|(f, _)| f).collect();
    assert_eq!(failed, vec![FolioId(3), FolioId(4)], "one 16 KiB request clipped to 8 KiB: folios 3 and 4 redirtied");
    assert!(rig.pages.state(FolioId(3)).dirty && !rig.pages.state(FolioId(1)).dirty);
    read_run(&rig, 1, 2, 300);
    wait_idle(&rig.engine);
    assert_eq!(page(&rig.arena, 300), stamp(1, 8));
    assert_eq!(page(&rig.arena, 301), stamp(2, 8));
    assert_eq!(rig.pages.violations(), Vec::<String>::new());
}
