//! CPU-local steering of a reuseport group: each query goes to the socket of the CPU it
//! arrived on (socket `cpu % sockets`), so no two CPUs' softirqs contend for one socket's
//! queue, where the kernel's default hash of the sender's address and port would mix them.

use std::{io, os::fd::AsRawFd};

/// Attaches the steering program to the reuseport group of `socket` (bound already), a group
/// of `sockets` sockets: the n-th to have joined gets CPU n's queries.
pub fn by_cpu(socket: &impl AsRawFd, sockets: u32) -> io::Result<()> {
    // The classic BPF program: A = the CPU; A %= sockets; return A (the socket's index).
    let mut program = [
        libc::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: (libc::SKF_AD_OFF + libc::SKF_AD_CPU) as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: sockets.max(1),
        },
        libc::sock_filter { code: (libc::BPF_RET | libc::BPF_A) as u16, jt: 0, jf: 0, k: 0 },
    ];
    let prog = libc::sock_fprog { len: program.len() as u16, filter: program.as_mut_ptr() };
    // SAFETY: setsockopt reads a sock_fprog, whose filter points at `program`, alive here.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&raw const prog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if set != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;

    use socket2::{Domain, Protocol, Socket, Type};

    use super::*;

    fn member(addr: std::net::SocketAddr) -> UdpSocket {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
        s.set_reuse_port(true).expect("reuseport");
        s.bind(&addr.into()).expect("bind");
        s.set_nonblocking(true).expect("nonblocking");
        s.into()
    }

    /// Runs `f` on a thread pinned to `cpu`.
    fn on_cpu(cpu: usize, f: impl FnOnce() + Send) {
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: a zeroed cpu_set_t is empty; CPU_SET writes within it.
                let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
                unsafe { libc::CPU_SET(cpu, &mut set) };
                // SAFETY: sched_setaffinity reads the set it is given, for this thread (0).
                let pinned = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
                assert_eq!(pinned, 0, "pin to CPU {cpu}: {}", io::Error::last_os_error());
                f();
            });
        });
    }

    /// Over loopback a datagram is received on the CPU that sent it: from one source port,
    /// the group's default hash gives every query to one socket; steered, each CPU's go to its own.
    #[test]
    fn each_cpus_queries_reach_its_own_socket() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
        if cpus < 2 {
            eprintln!("one CPU: nothing to steer");
            return;
        }
        let first = member("127.0.0.1:0".parse().expect("addr"));
        let addr = first.local_addr().expect("local addr");
        by_cpu(&first, cpus as u32).expect("attach");
        let group: Vec<UdpSocket> = std::iter::once(first).chain((1..cpus).map(|_| member(addr))).collect();
        let sender = UdpSocket::bind("127.0.0.1:0").expect("sender");
        for cpu in 0..cpus {
            on_cpu(cpu, || {
                for _ in 0..5 {
                    sender.send_to(b"query", addr).expect("send");
                }
            });
            let mut buf = [0u8; 16];
            let got: Vec<usize> =
                group.iter().map(|s| std::iter::from_fn(|| s.recv_from(&mut buf).ok()).count()).collect();
            let mut want = vec![0; cpus];
            want[cpu] = 5;
            assert_eq!(got, want, "queries sent from CPU {cpu}, received per socket");
        }
    }
}
