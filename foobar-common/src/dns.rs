//! DNS answered from XDP: the maps the daemon fills with answers its own server rendered, and
//! the reading of a query, which decides whether XDP answers it or passes it on unchanged.
//!
//! Only plain queries are answered in the kernel: one question of class IN, standard opcode,
//! no flags but RD, at most a plain EDNS OPT (version 0, no DO bit, no options: no cookies),
//! nothing after it. Anything else is the userspace server's, which answers it as before.

/// The listen addresses (`dns.listen`) XDP answers at: [`ListenKey`] → 1.
pub const LISTEN_MAP: &str = "DNS_LISTEN";
/// The rendered answers: [`AnswerKey`] → [`Answer`].
pub const ANSWERS_MAP: &str = "DNS_ANSWERS";
/// The NXDOMAIN answer for names under the apex that the zone does not own: [`NxTemplate`]
/// in slot `generation % 2`.
pub const NXDOMAIN_MAP: &str = "DNS_NXDOMAIN";
/// One [`Settings`]: which generation of answers is current, and RRL's limits.
pub const SETTINGS_MAP: &str = "DNS_SETTINGS";
/// Response rate limiting's buckets: [`RrlKey`] → [`RrlBucket`].
pub const RRL_MAP: &str = "DNS_RRL";
/// The program array holding the answer step, [`XDP_DNS_PROGRAM`], in slot 0. Not pinned: a
/// data plane kept without its daemon stops answering, instead of answering a frozen zone.
pub const STEP_MAP: &str = "DNS_STEP";
/// The XDP program that answers a query, reached by tail call.
pub const XDP_DNS_PROGRAM: &str = "xdp_dns_answer";

/// Longest name in wire format (RFC 1035: 255 bytes with its length bytes and the root).
pub const NAME_MAX: usize = 255;
/// Most bytes of a message XDP reads: a query is its header, one question and an OPT.
pub const QUERY_MAX: usize = 512;
/// Most bytes of an answer's sections XDP writes (what a plain UDP answer may hold).
pub const BODY_MAX: usize = 512;
/// Answers tracked at once (names × types, two generations).
pub const MAX_ANSWERS: u32 = 4096;
/// RRL buckets tracked at once (an LRU map: the oldest go first).
pub const RRL_BUCKETS: u32 = 65_536;
/// The RRL bucket every NXDOMAIN shares, as random names must.
pub const KIND_NXDOMAIN: u32 = u32::MAX;
/// The type an owned name's marker is keyed by among the answers: a name the zone owns is
/// never answered from the NXDOMAIN template, whatever type is asked of it. Queries of this
/// type (0, reserved) are never answered from the map.
pub const QTYPE_OWNED: u16 = 0;

/// Header flag bits (the header's second 16-bit word).
pub const FLAG_QR: u16 = 0x8000;
pub const FLAG_TC: u16 = 0x0200;
pub const FLAG_RD: u16 = 0x0100;
/// A query's flags, other than RD, that XDP answers with (none: AD, CD and the rest go to userspace).
const QUERY_FLAGS_ANSWERED: u16 = FLAG_RD;

const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
/// Bytes of an OPT record with no options.
pub const OPT_LEN: usize = 11;

/// A DNS listen address: its address words as packets carry them, port in host order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct ListenKey {
    pub addr: [u32; 4],
    pub port: u16,
    pub family: u8,
    pub _pad: u8,
}

/// A question, as answers are keyed: the name in wire format, lowercased, zero after its end.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct AnswerKey {
    /// Answers are written under a new generation, made current, then the old ones removed:
    /// a query meets the old zone or the new one, never a mix.
    pub generation: u32,
    pub qtype: u16,
    pub name_len: u16,
    pub name: [u8; 256],
}

impl Default for AnswerKey {
    fn default() -> Self {
        AnswerKey { generation: 0, qtype: 0, name_len: 0, name: [0; 256] }
    }
}

/// The answer to one question: the header words after the ID (RD is copied from the query
/// on top of `flags`) and the sections after the question, as the userspace server renders them.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct Answer {
    /// The RRL bucket of this answer: one per (name, type), or [`KIND_NXDOMAIN`].
    pub kind: u32,
    pub flags: u16,
    pub answers: u16,
    pub authorities: u16,
    pub additionals: u16,
    pub len: u16,
    pub _pad: u16,
    /// The one's-complement sum of `body[..len]` as 16-bit big-endian words from its start.
    pub sum: u32,
    pub body: [u8; BODY_MAX],
}

impl Default for Answer {
    fn default() -> Self {
        Answer {
            kind: 0,
            flags: 0,
            answers: 0,
            authorities: 0,
            additionals: 0,
            len: 0,
            _pad: 0,
            sum: 0,
            body: [0; 512],
        }
    }
}

/// Most compression pointers an NXDOMAIN answer may hold (its SOA's owner, names and slack).
pub const MAX_POINTERS: usize = 8;

/// The NXDOMAIN answer rendered for a probe name (one label before the apex): for another
/// name under the apex, XDP moves each compression pointer by the names' length difference.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct NxTemplate {
    /// The generation this slot holds (a slot of another is not answered from).
    pub generation: u32,
    /// Bytes of the probe's first label (with its length byte), before the apex.
    pub probe_prefix: u16,
    pub apex_len: u16,
    /// The apex in wire format, lowercase.
    pub apex: [u8; 256],
    /// Where in `answer.body` each compression pointer is, and how many there are.
    pub pointers: [u16; MAX_POINTERS],
    pub pointer_count: u32,
    pub answer: Answer,
}

impl Default for NxTemplate {
    fn default() -> Self {
        NxTemplate {
            generation: 0,
            probe_prefix: 0,
            apex_len: 0,
            apex: [0; 256],
            pointers: [0; MAX_POINTERS],
            pointer_count: 0,
            answer: Answer::default(),
        }
    }
}

/// Bytes of `key`'s name before `t`'s apex, if the name lies strictly under the apex (its
/// labels end on the apex); `None` otherwise.
#[inline(never)]
pub fn under_apex(key: &AnswerKey, t: &NxTemplate) -> Option<usize> {
    let (len, apex) = (key.name_len as usize, t.apex_len as usize);
    if apex == 0 || len <= apex || len > NAME_MAX {
        return None;
    }
    let prefix = len - apex;
    // Each byte leaves at once or goes on: the verifier walks one path through the loop.
    for i in 0..256 {
        if i >= apex {
            break;
        }
        if key.name[(prefix + i) & 255] != t.apex[i] {
            return None;
        }
    }
    // The apex must start on a label of the name. The position is a byte, which the
    // verifier sees bounded (a read name's labels end within its 255 bytes: it never wraps).
    let mut at: u8 = 0;
    for _ in 0..128 {
        if usize::from(at) >= prefix {
            break;
        }
        at = at.wrapping_add(key.name[usize::from(at)]).wrapping_add(1);
    }
    (usize::from(at) == prefix).then_some(prefix)
}

/// What XDP's answering follows, in slot 0 of [`SETTINGS_MAP`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct Settings {
    /// The generation of [`AnswerKey`]s to answer from; 0: answer nothing (all to userspace).
    pub generation: u32,
    /// RRL: every `slip`-th limited answer goes out empty with TC (0: all limited ones dropped).
    pub slip: u32,
    /// RRL's GCRA per (client prefix, kind), as the userspace limiter's; interval 0: no limit.
    pub interval_ns: u64,
    pub tolerance_ns: u64,
}

/// An RRL bucket's key: the client's /24 (IPv4) or /56 (IPv6) and the answer's kind.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct RrlKey {
    pub prefix: [u32; 4],
    pub kind: u32,
}

/// An RRL bucket: its GCRA theoretical arrival time and the answers over the limit so far.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct RrlBucket {
    pub tat_ns: u64,
    pub over: u32,
    pub _pad: u32,
}

/// What response rate limiting does with one answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Answer,
    /// Over the limit: sent empty with TC set.
    Slip,
    /// Over the limit: not sent.
    Drop,
}

impl RrlBucket {
    /// Counts one answer at `now` against this bucket (GCRA of `interval_ns`, bursts up to
    /// `tolerance_ns` ahead), every `slip`-th one over the limit slipped (0: none). The
    /// userspace limiter and XDP's both judge by this.
    #[inline(always)]
    pub fn judge(&mut self, now: u64, interval_ns: u64, tolerance_ns: u64, slip: u32) -> Verdict {
        match crate::firewall::gcra(self.tat_ns, now, interval_ns, tolerance_ns) {
            Some(next) => {
                self.tat_ns = next;
                Verdict::Answer
            }
            None => {
                self.over = self.over.wrapping_add(1);
                if slip > 0 && self.over % slip == 0 { Verdict::Slip } else { Verdict::Drop }
            }
        }
    }
}

/// A query XDP may answer, as [`read_query`] found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Query {
    pub flags: u16,
    /// Bytes of the question (name, type and class), which start at byte 12.
    pub question_len: usize,
    /// Whether the client sent an OPT, and the UDP payload size it offered (0 without).
    /// Not an `Option`: LLVM leaves a `None`'s payload unwritten, a register the verifier
    /// then refuses to see stored.
    pub edns: bool,
    pub edns_size: u16,
}

/// `b` lowercased if it is an ASCII capital (a name's length bytes, below 64, never are).
/// Without a branch: the kernel's verifier would walk both ways for every byte of a name.
#[inline(always)]
pub fn lower(b: u8) -> u8 {
    let capital = (u32::from(b.wrapping_sub(b'A')).wrapping_sub(26) >> 31) as u8;
    b | (capital << 5)
}

/// All ones if `i < n`, else zero, without a branch (as [`lower`]).
#[inline(always)]
fn below(i: usize, n: usize) -> u8 {
    0u8.wrapping_sub(((i as u32).wrapping_sub(n as u32) >> 31) as u8)
}

#[inline(always)]
fn at(msg: &[u8; QUERY_MAX], i: usize) -> u8 {
    msg[i & (QUERY_MAX - 1)]
}

#[inline(always)]
fn word(msg: &[u8; QUERY_MAX], i: usize) -> u16 {
    u16::from_be_bytes([at(msg, i), at(msg, i + 1)])
}

/// Reads the DNS message `msg[..len]`: a query XDP answers, with its question's name
/// lowercased into `key` (zero past its end); `None` for anything userspace must answer.
/// Out of line: inlined, LLVM's reuse of its pointer arithmetic confuses the verifier.
#[inline(never)]
pub fn read_query(msg: &[u8; QUERY_MAX], len: usize, key: &mut AnswerKey) -> Option<Query> {
    if !(17..=QUERY_MAX).contains(&len) {
        return None;
    }
    let flags = word(msg, 2);
    let counts = (word(msg, 4), word(msg, 6), word(msg, 8), word(msg, 10));
    if flags & !QUERY_FLAGS_ANSWERED != 0 || counts.0 != 1 || counts.1 != 0 || counts.2 != 0 || counts.3 > 1 {
        return None;
    }
    // The name's labels, to its root: at most 128 steps of at least two bytes each.
    let mut end = 12;
    for _ in 0..128 {
        let l = at(msg, end) as usize;
        if l == 0 {
            break;
        }
        if l > 63 {
            return None;
        }
        end += l + 1;
        if end >= 12 + NAME_MAX {
            return None;
        }
    }
    if at(msg, end) != 0 {
        return None;
    }
    let name_len = end + 1 - 12;
    for i in 0..256 {
        key.name[i] = lower(at(msg, 12 + i)) & below(i, name_len);
    }
    key.name_len = name_len as u16;
    key.qtype = word(msg, end + 1);
    if key.qtype == QTYPE_OWNED || word(msg, end + 3) != CLASS_IN {
        return None;
    }
    let question_len = name_len + 4;
    let after = 12 + question_len;
    let (edns, edns_size) = if counts.3 == 1 {
        // A plain OPT: the root name, type 41, no extended rcode, version 0, no DO bit,
        // no options; and nothing after it.
        let plain = at(msg, after) == 0
            && word(msg, after + 1) == TYPE_OPT
            && word(msg, after + 5) == 0
            && word(msg, after + 7) == 0
            && word(msg, after + 9) == 0;
        if !plain || len != after + OPT_LEN {
            return None;
        }
        (true, word(msg, after + 3))
    } else {
        if len != after {
            return None;
        }
        (false, 0)
    };
    Some(Query { flags, question_len, edns, edns_size })
}

/// How the answer to a query goes out: its header words and what follows the question.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub flags: u16,
    /// Answer, authority and additional counts (the OPT among the additionals).
    pub counts: [u16; 3],
    /// Bytes of the answer's sections written after the question.
    pub body_len: usize,
    /// Whether it ends with an OPT record ([`opt_record`]).
    pub opt: bool,
    /// Bytes of the whole DNS message.
    pub len: usize,
}

/// The reply to `q` (its question `question_len` bytes) from `a`, or, `slip`ped, empty with
/// TC; `None` when it does not fit what the client takes (the server then truncates it). XDP
/// and the userspace server's fast path both write by this.
#[inline(always)]
pub fn reply(a: &Answer, q: &Query, question_len: usize, slip: bool) -> Option<Reply> {
    let body_len = if slip { 0 } else { a.len as usize };
    let opt = q.edns && !slip;
    let len = 12 + question_len + body_len + if opt { OPT_LEN } else { 0 };
    let room = if opt && q.edns_size > 512 { q.edns_size as usize } else { 512 };
    if len > room {
        return None;
    }
    let flags = a.flags | FLAG_QR | (q.flags & FLAG_RD) | if slip { FLAG_TC } else { 0 };
    let counts = if slip { [0; 3] } else { [a.answers, a.authorities, a.additionals + u16::from(opt)] };
    Some(Reply { flags, counts, body_len, opt, len })
}

/// A compression pointer of the NXDOMAIN template moved `by` bytes (the asked name is that
/// much longer than the probe).
#[inline(always)]
pub fn moved_pointer(old: u16, by: i32) -> u16 {
    0xc000 | ((i32::from(old & 0x3fff) + by) as u16 & 0x3fff)
}

/// The OPT record an answer to an EDNS query ends with, as the userspace server writes it:
/// the client's payload size, at least 512.
#[inline(always)]
pub fn opt_record(offered: u16) -> [u8; OPT_LEN] {
    let size = if offered < 512 { 512 } else { offered };
    let s = size.to_be_bytes();
    [0, 0, TYPE_OPT as u8, s[0], s[1], 0, 0, 0, 0, 0, 0]
}

/// The one's-complement sum of [`opt_record`]`(offered)` as [`sum`] gives it.
#[inline(always)]
pub fn opt_sum(offered: u16) -> u32 {
    let s = opt_record(offered);
    let total = (u32::from(TYPE_OPT) << 8) + u32::from(s[3]) + (u32::from(s[4]) << 8);
    (total & 0xffff) + (total >> 16)
}

/// The one's-complement sum of `bytes` as 16-bit big-endian words (the last one padded).
pub fn sum(bytes: &[u8]) -> u32 {
    let mut s: u32 = 0;
    for c in bytes.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        s = (s & 0xffff) + (s >> 16);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(bytes: &[u8]) -> ([u8; QUERY_MAX], usize) {
        let mut m = [0u8; QUERY_MAX];
        m[..bytes.len()].copy_from_slice(bytes);
        (m, bytes.len())
    }

    fn query(flags: u16, name: &[u8], qtype: u16, opt: Option<[u8; OPT_LEN]>) -> Vec<u8> {
        let mut q = vec![0x12, 0x34];
        q.extend(flags.to_be_bytes());
        q.extend([0, 1, 0, 0, 0, 0, 0, u8::from(opt.is_some())]);
        q.extend(name);
        q.extend(qtype.to_be_bytes());
        q.extend([0, 1]);
        if let Some(o) = opt {
            q.extend(o);
        }
        q
    }

    const WWW: &[u8] = b"\x03WwW\x06FooBar\x03com\x00";

    #[test]
    fn a_plain_query_is_read_and_its_name_lowercased() {
        let (m, len) = message(&query(FLAG_RD, WWW, 1, None));
        let mut key = AnswerKey { name: [0xaa; 256], ..AnswerKey::default() };
        let q = read_query(&m, len, &mut key).expect("answered");
        assert_eq!(q, Query { flags: FLAG_RD, question_len: WWW.len() + 4, edns: false, edns_size: 0 });
        assert_eq!(&key.name[..WWW.len()], b"\x03www\x06foobar\x03com\x00");
        assert!(key.name[WWW.len()..].iter().all(|&b| b == 0), "stale bytes after the name");
        assert_eq!((key.qtype, key.name_len as usize), (1, WWW.len()));
    }

    #[test]
    fn a_plain_opt_gives_its_size() {
        let (m, len) = message(&query(0, WWW, 28, Some(opt_record(1232))));
        let q = read_query(&m, len, &mut AnswerKey::default()).expect("answered");
        assert_eq!((q.edns, q.edns_size), (true, 1232));
        assert_eq!(opt_record(100), opt_record(512), "a size below 512 is answered as 512");
    }

    #[test]
    fn anything_unusual_is_left_to_userspace() {
        let mut do_bit = opt_record(1232);
        do_bit[7] = 0x80;
        let mut version = opt_record(1232);
        version[6] = 1;
        let mut options = query(0, WWW, 1, Some(opt_record(1232)));
        options[WWW.len() + 16 + 10] = 4;
        options.extend([0, 10, 0, 0]);
        let pointer = query(0, b"\x03www\xc0\x0c", 1, None);
        let long_label = query(0, &[&[64u8][..], &[b'a'; 64], &[0]].concat(), 1, None);
        let mut trailing = query(0, WWW, 1, None);
        trailing.push(0);
        let mut chaos = query(0, WWW, 1, None);
        let class = chaos.len() - 1;
        chaos[class] = 3;
        for (what, bytes) in [
            ("a response", query(FLAG_QR, WWW, 1, None)),
            ("opcode NOTIFY", query(4 << 11, WWW, 1, None)),
            ("AD", query(0x0020, WWW, 1, None)),
            ("CD", query(0x0010, WWW, 1, None)),
            ("DO", query(0, WWW, 1, Some(do_bit))),
            ("EDNS version 1", query(0, WWW, 1, Some(version))),
            ("an EDNS option", options),
            ("a compressed name", pointer),
            ("a 64-byte label", long_label),
            ("a trailing byte", trailing),
            ("class CH", chaos),
            ("type 0", query(0, WWW, 0, None)),
            ("a header alone", query(0, b"", 1, None)[..12].to_vec()),
        ] {
            let (m, len) = message(&bytes);
            assert_eq!(read_query(&m, len, &mut AnswerKey::default()), None, "{what}");
        }
        let mut two = query(0, WWW, 1, None);
        two[5] = 2;
        let (m, len) = message(&two);
        assert_eq!(read_query(&m, len, &mut AnswerKey::default()), None, "two questions");
    }

    #[test]
    fn names_under_the_apex_are_found_on_label_boundaries() {
        let mut t = NxTemplate::default();
        let apex = b"\x06foobar\x03com\x00";
        t.apex[..apex.len()].copy_from_slice(apex);
        t.apex_len = apex.len() as u16;
        let key = |name: &[u8]| {
            let mut k = AnswerKey { name_len: name.len() as u16, ..AnswerKey::default() };
            k.name[..name.len()].copy_from_slice(name);
            k
        };
        assert_eq!(under_apex(&key(b"\x07nothere\x06foobar\x03com\x00"), &t), Some(8));
        assert_eq!(under_apex(&key(b"\x01a\x01b\x06foobar\x03com\x00"), &t), Some(4));
        assert_eq!(under_apex(&key(apex), &t), None, "the apex itself");
        assert_eq!(under_apex(&key(b"\x07example\x03com\x00"), &t), None, "another zone");
        assert_eq!(under_apex(&key(b"\x09notfoobar\x03com\x00"), &t), None, "a suffix inside a label");
        assert_eq!(under_apex(&key(b"\x02xy\x06foobar\x03org\x00"), &t), None);
    }

    #[test]
    fn lower_changes_capitals_alone() {
        for b in 0..=255u8 {
            assert_eq!(lower(b), b.to_ascii_lowercase(), "{b}");
        }
    }

    #[test]
    fn the_opt_sum_is_its_bytes_sum() {
        for size in [0, 512, 1232, 4096, 65535] {
            assert_eq!(opt_sum(size), sum(&opt_record(size)), "{size}");
        }
    }

    #[test]
    fn the_longest_name_is_read_and_one_longer_is_not() {
        let name = |total: usize| {
            // Labels of 63 then the rest, to make a wire name of `total` bytes.
            let mut n = Vec::new();
            let mut left = total - 1;
            while left > 0 {
                let l = (left - 1).min(63);
                n.push(l as u8);
                n.extend(std::iter::repeat_n(b'x', l));
                left -= l + 1;
            }
            n.push(0);
            n
        };
        let (m, len) = message(&query(0, &name(255), 1, None));
        assert_eq!(read_query(&m, len, &mut AnswerKey::default()).map(|q| q.question_len), Some(259));
        let (m, len) = message(&query(0, &name(256), 1, None));
        assert_eq!(read_query(&m, len, &mut AnswerKey::default()), None);
    }
}
