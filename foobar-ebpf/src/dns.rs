//! DNS queries to a `dns.listen` address answered in XDP, from the answers the daemon's own
//! server rendered (`foobar_common::dns`); what XDP does not answer passes to that server
//! unchanged. Limited per client prefix and answer kind as the server's RRL limits it.

use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::{bpf_csum_diff, bpf_ktime_get_ns, bpf_xdp_load_bytes, bpf_xdp_store_bytes},
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, ProgramArray},
    programs::XdpContext,
};
use foobar_common::{
    addr::FAMILY_V4,
    bytes::PacketBytes,
    counters::Counter,
    csum::CsumDelta,
    dns::{
        Answer, AnswerKey, ListenKey, MAX_ANSWERS, MAX_POINTERS, NAME_MAX, NxTemplate, QTYPE_OWNED, QUERY_MAX,
        RRL_BUCKETS, Reply, RrlBucket, RrlKey, Settings, Verdict, moved_pointer, opt_record, opt_sum, read_query,
        reply, under_apex,
    },
    parse::{ETH_HLEN, Fragment, IPPROTO_UDP, Parsed},
};

use crate::{
    packet::{Frame, copy_length},
    segment::{self, Ip},
    stats::count,
};

#[map(name = "DNS_LISTEN")]
static LISTEN: HashMap<ListenKey, u8> = HashMap::with_max_entries(64, 0);
#[map(name = "DNS_ANSWERS")]
static ANSWERS: HashMap<AnswerKey, Answer> = HashMap::with_max_entries(MAX_ANSWERS, 0);
#[map(name = "DNS_NXDOMAIN")]
static NXDOMAIN: Array<NxTemplate> = Array::with_max_entries(2, 0);
#[map(name = "DNS_SETTINGS")]
static SETTINGS: Array<Settings> = Array::with_max_entries(1, 0);
#[map(name = "DNS_RRL")]
static RRL: LruHashMap<RrlKey, RrlBucket> = LruHashMap::with_max_entries(RRL_BUCKETS, 0);
/// The answer step, in slot 0 (see `foobar_common::dns::STEP_MAP` for why it is not pinned).
#[map(name = "DNS_STEP")]
pub static STEP: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// The query being answered: its bytes (with room for `bpf_csum_diff`'s whole words) and key.
pub struct Work {
    msg: [u8; QUERY_MAX + 4],
    key: AnswerKey,
}

#[map(name = "DNS_WORK")]
static WORK: PerCpuArray<Work> = PerCpuArray::with_max_entries(1, 0);

/// Whether `p` is a UDP datagram to a DNS listen address, for the answer step.
#[inline(always)]
pub fn is_query(p: &Parsed, family: u8) -> bool {
    if p.protocol != IPPROTO_UDP || !matches!(p.fragment, Fragment::None) {
        return false;
    }
    let key = ListenKey { addr: p.dst, port: p.dst_port, family, _pad: 0 };
    // SAFETY: a map lookup; the value is not kept.
    unsafe { LISTEN.get(&key) }.is_some()
}

/// RRL's verdict on an answer of `kind` to `p`'s source, as the userspace limiter decides it.
#[inline(always)]
fn limit(s: &Settings, p: &Parsed, family: u8, kind: u32) -> Verdict {
    if s.interval_ns == 0 {
        return Verdict::Answer;
    }
    let prefix = if family == FAMILY_V4 {
        [p.src[0] & u32::from_ne_bytes([0xff, 0xff, 0xff, 0]), 0, 0, 0]
    } else {
        [p.src[0], p.src[1] & u32::from_ne_bytes([0xff, 0xff, 0xff, 0]), 0, 0]
    };
    let key = RrlKey { prefix, kind };
    // SAFETY: reads the clock.
    let now = unsafe { bpf_ktime_get_ns() };
    let Some(bucket) = RRL.get_ptr_mut(&key) else {
        let mut fresh = RrlBucket::default();
        let verdict = fresh.judge(now, s.interval_ns, s.tolerance_ns, s.slip);
        let _ = RRL.insert(&key, &fresh, 0);
        return verdict;
    };
    // SAFETY: a map value, valid for the program run; racing CPUs may lose an update, as a
    // limiter may (the SYN limiter's compare-and-swap is not worth an answer's cost).
    let bucket = unsafe { &mut *bucket };
    bucket.judge(now, s.interval_ns, s.tolerance_ns, s.slip)
}

/// Answers the query in the frame from the rendered answers, or passes it (counted) to the
/// userspace server: anything unusual, a question with no rendered answer, an answer bigger
/// than the client takes.
#[inline(never)]
pub fn answer(frame: &Frame, p: &Parsed, family: u8) -> u32 {
    match answer_or_pass(frame, p, family) {
        Some(verdict) => verdict,
        None => {
            count(Counter::DnsXdpPassed);
            xdp_action::XDP_PASS
        }
    }
}

#[inline(always)]
fn answer_or_pass(frame: &Frame, p: &Parsed, family: u8) -> Option<u32> {
    let v4 = family == FAMILY_V4;
    let ip_len = if v4 { 20 } else { 40 };
    // Plain headers only (no VLAN tag, IPv4 option or IPv6 extension): the answer is written
    // afresh with them.
    if p.vlans != 0 || p.l3_offset != ETH_HLEN || p.l4_offset != ETH_HLEN + ip_len {
        return None;
    }
    let settings = SETTINGS.get(0)?;
    if settings.generation == 0 {
        return None;
    }
    let udp_len = u16::from_be_bytes(frame.load::<[u8; 2]>(p.l4_offset + 4)?) as usize;
    let msg_len = udp_len.checked_sub(8)?;
    let len = copy_length(msg_len, QUERY_MAX)?;
    let w = WORK.get_ptr_mut(0)?;
    // SAFETY: this CPU's slot for the program run.
    let w = unsafe { &mut *w };
    // SAFETY: copies `len` (at most QUERY_MAX) bytes of the frame into the slot's buffer.
    if unsafe { bpf_xdp_load_bytes(frame.0.ctx.cast(), (p.l4_offset + 8) as u32, w.msg.as_mut_ptr().cast(), len) } != 0
    {
        return None;
    }
    let msg: &[u8; QUERY_MAX] = w.msg.first_chunk()?;
    let q = read_query(msg, len as usize, &mut w.key)?;
    // Its length, carried through map memory: the verifier then knows only its bound, so the
    // states every way through the name's labels leave merge here (instead of each walking
    // the rest of the program).
    let question_len = crate::packet::carried(q.question_len);
    w.key.generation = settings.generation;
    // A name the zone owns has its own answer; another under the apex, the NXDOMAIN template's
    // with its pointers moved.
    // SAFETY: a map lookup returns a pointer valid for this program run.
    let owned = unsafe { ANSWERS.get(&w.key) };
    let moved = if owned.is_none() { Some(nxdomain(&mut w.key, settings.generation)?) } else { None };
    let a = match (owned, moved) {
        (Some(a), _) => a,
        (None, Some((t, _))) => &t.answer,
        (None, None) => return None,
    };
    let verdict = limit(settings, p, family, a.kind);
    if verdict != Verdict::Answer {
        count(Counter::DnsXdpRateLimited);
    }
    if verdict == Verdict::Drop {
        return Some(xdp_action::XDP_DROP);
    }
    let slip = verdict == Verdict::Slip;
    let Reply { flags, counts, body_len, opt, len: dns_len } = reply(a, &q, question_len, slip)?;
    let id = [msg[0], msg[1]];
    // Every length the copies take, checked while the query can still be passed on: once the
    // frame is rewritten, a failure can only drop it.
    let question = copy_length(question_len, NAME_MAX + 4)?;
    let body = if body_len > 0 { copy_length(body_len, a.body.len())? } else { 0 };
    let smac = frame.load::<[u8; 6]>(0)?;
    let dmac = frame.load::<[u8; 6]>(6)?;
    let udp = p.l4_offset;
    if !segment::resize(frame, udp + 8 + dns_len) {
        return None;
    }
    let ip = Ip { v4, protocol: IPPROTO_UDP, dont_fragment: false, src: &p.dst, dst: &p.src };
    if !segment::headers(frame, &smac, &dmac, &ip, 8 + dns_len) {
        return Some(xdp_action::XDP_DROP);
    }
    let Some(header) = frame.window_mut::<20>(udp) else { return Some(xdp_action::XDP_DROP) };
    header[0..2].copy_from_slice(&p.dst_port.to_be_bytes());
    header[2..4].copy_from_slice(&p.src_port.to_be_bytes());
    header[4..6].copy_from_slice(&((8 + dns_len) as u16).to_be_bytes());
    header[6..8].copy_from_slice(&[0, 0]);
    header[8..10].copy_from_slice(&id);
    header[10..12].copy_from_slice(&flags.to_be_bytes());
    header[12..14].copy_from_slice(&1u16.to_be_bytes());
    for (i, c) in counts.iter().enumerate() {
        header[14 + 2 * i..16 + 2 * i].copy_from_slice(&c.to_be_bytes());
    }
    let mut sum = CsumDelta::new();
    let words = if v4 { 1 } else { 4 };
    sum.addr(&[0; 4], &p.src, words);
    sum.addr(&[0; 4], &p.dst, words);
    sum.word(0, u16::from(IPPROTO_UDP));
    sum.word(0, (8 + dns_len) as u16);
    sum.bytes(header);
    // The question, copied back as the client wrote it (its name's case kept).
    let question_at = (udp + 20) as u32;
    for i in 0..3 {
        w.msg[(12 + question as usize + i) & (QUERY_MAX - 1)] = 0;
    }
    // SAFETY: the slot's buffer holds the question from byte 12, zero-padded to whole words.
    let question_sum = unsafe {
        let from = w.msg.as_mut_ptr().add(12);
        if bpf_xdp_store_bytes(frame.0.ctx.cast(), question_at, from.cast(), question) != 0 {
            return Some(xdp_action::XDP_DROP);
        }
        bpf_csum_diff(core::ptr::null_mut(), 0, from.cast(), (question + 3) & !3, 0)
    };
    if question_sum < 0 {
        return Some(xdp_action::XDP_DROP);
    }
    sum.partial(question_sum as u32);
    let body_at = question_at + question;
    if body > 0 {
        // SAFETY: writes `body` bytes of the answer (a map value with room for them) into the
        // frame, which was sized for them.
        if unsafe { bpf_xdp_store_bytes(frame.0.ctx.cast(), body_at, a.body.as_ptr() as *mut _, body) } != 0 {
            return Some(xdp_action::XDP_DROP);
        }
        sum.shifted(a.sum, question & 1 == 1);
        if let Some((t, by)) = moved
            && move_pointers(frame, t, by, body_at as usize, &mut sum).is_none()
        {
            return Some(xdp_action::XDP_DROP);
        }
    }
    if opt {
        let opt_at = body_at as usize + body_len;
        if !frame.store(opt_at, opt_record(q.edns_size)) {
            return Some(xdp_action::XDP_DROP);
        }
        sum.shifted(opt_sum(q.edns_size), opt_at & 1 == 1);
    }
    let check = match sum.apply(0xffff) {
        0 => 0xffff,
        c => c,
    };
    if !frame.store(udp + 6, check.to_be_bytes()) {
        return Some(xdp_action::XDP_DROP);
    }
    count(if slip { Counter::DnsXdpSlipped } else { Counter::DnsXdpAnswered });
    Some(xdp_action::XDP_TX)
}

/// For a name under the apex that the zone does not own: the NXDOMAIN template of generation
/// `generation`, and how much longer the name is than the template's probe. A name it owns
/// (asked a type with no rendered answer) is the server's.
#[inline(never)]
fn nxdomain(key: &mut AnswerKey, generation: u32) -> Option<(&'static NxTemplate, i32)> {
    key.qtype = QTYPE_OWNED;
    // SAFETY: a map lookup; the value is not kept.
    if unsafe { ANSWERS.get(&*key) }.is_some() {
        return None;
    }
    let t = NXDOMAIN.get(generation & 1)?;
    if t.generation != generation {
        return None;
    }
    let prefix = under_apex(key, t)?;
    Some((t, prefix as i32 - i32::from(t.probe_prefix)))
}

/// Moves each compression pointer of `t`'s answer, written at `body_at`, by `by` bytes (the
/// query's name is that much longer than the probe's), the checksum following.
#[inline(never)]
fn move_pointers(frame: &Frame, t: &NxTemplate, by: i32, body_at: usize, sum: &mut CsumDelta) -> Option<()> {
    for i in 0..MAX_POINTERS {
        if i as u32 >= t.pointer_count {
            break;
        }
        let pos = t.pointers[i] as usize;
        if pos > t.answer.body.len() - 2 {
            return None;
        }
        let old = u16::from_be_bytes([t.answer.body[pos], t.answer.body[pos + 1]]);
        let new = moved_pointer(old, by);
        let at = body_at + pos;
        if !frame.store(at, new.to_be_bytes()) {
            return None;
        }
        if at & 1 == 1 {
            sum.word(old.swap_bytes(), new.swap_bytes());
        } else {
            sum.word(old, new);
        }
    }
    Some(())
}

/// The answer step's program body, from the handoff slot.
#[inline(always)]
pub fn run(ctx: &XdpContext) -> u32 {
    crate::handoff::run(ctx, |frame, h| answer(frame, &h.parsed, h.family))
}
