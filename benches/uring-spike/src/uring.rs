//! Variant (b): one thread per worker, one io_uring per thread. Every connection's receives and
//! sends are SQEs; each loop iteration submits all of them that became due and waits for the
//! next completions in a single io_uring_enter, so one system call serves every ready connection.
//! Connections arrive through one multishot accept. Same shape as the epoll variant: one
//! keep-alive backend connection per client connection, one operation in flight per connection.
//!
//! With `--fixed-files on`, sockets are registered files (the ring's own descriptor table), which
//! spares the kernel a file lookup and reference count per operation.
//!
//! Not done (spike): registered (fixed) buffers, which receives only get through provided buffer
//! rings (READ_FIXED on a socket takes the slower generic read path, and the few dozen bytes of a
//! request cost little to map), and linking a send to the receive that follows it.

use crate::framing::{frame, Frame};
use crate::{Config, BUF_SIZE};
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

const ACCEPT: u64 = u64::MAX;
/// IORING_RECVSEND_POLL_FIRST: the receive waits for readiness before its first try. Every
/// receive here follows our own send of a request or an answer, whose reply cannot be there yet,
/// so the first try would only fail with EAGAIN.
const POLL_FIRST: u16 = 1;
/// Registered-file slots per worker with `--fixed-files on`: two per connection.
const FILE_SLOTS: u32 = 16 * 1024;

/// What the one operation in flight for a connection is.
#[derive(Clone, Copy)]
enum State {
    ClientRecv,
    Connect,
    BackendSend,
    BackendRecv,
    ClientSend,
}

/// `client` and `backend` are descriptors, or registered-file slots with `--fixed-files on`.
struct Conn {
    client: RawFd,
    backend: Option<RawFd>,
    state: State,
    /// Bytes from the client (requests) and from the backend (answers), from index 0.
    from_client: Box<[u8]>,
    client_len: usize,
    from_backend: Box<[u8]>,
    backend_len: usize,
    /// Length of the message being sent and how much of it went.
    message: usize,
    sent: usize,
}

struct Worker {
    ring: IoUring,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    listener: RawFd,
    recv_ioprio: u16,
    /// Added to every socket SQE: FIXED_FILE when sockets are registered files.
    sqe_flags: squeue::Flags,
    /// The backend's address, pointed to by every connect SQE; lives as long as the ring.
    backend: libc::sockaddr_in,
}

pub fn run(listener: TcpListener, config: Config) -> io::Result<()> {
    let SocketAddr::V4(backend) = config.backend else {
        return Err(io::Error::other("the uring variant takes an IPv4 backend"));
    };
    let backend = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: backend.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*backend.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let mut worker = Worker {
        ring: new_ring()?,
        conns: Vec::new(),
        free: Vec::new(),
        listener: listener.as_raw_fd(),
        recv_ioprio: if config.poll_first { POLL_FIRST } else { 0 },
        sqe_flags: squeue::Flags::empty(),
        backend,
    };
    if config.fixed_files {
        worker.ring.submitter().register_files_sparse(FILE_SLOTS)?;
        worker.sqe_flags = squeue::Flags::FIXED_FILE;
    }
    worker.push(
        opcode::AcceptMulti::new(types::Fd(worker.listener))
            .build()
            .user_data(ACCEPT),
    )?;
    let mut completions = Vec::with_capacity(1024);
    loop {
        // The one system call of an iteration: everything queued goes in, completions come out.
        match worker.ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
        completions.clear();
        completions.extend(
            worker
                .ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for &(user_data, result, flags) in &completions {
            if user_data == ACCEPT {
                worker.accepted(result, flags)?;
            } else {
                worker.completed(user_data as usize, result)?;
            }
        }
    }
}

/// SINGLE_ISSUER and DEFER_TASKRUN (kernel 6.1+) run completions only inside our own
/// io_uring_enter instead of interrupting the thread; older kernels get a plain ring.
fn new_ring() -> io::Result<IoUring> {
    let entries = 4096;
    match IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(2 * entries)
        .build(entries)
    {
        Ok(ring) => Ok(ring),
        Err(_) => IoUring::builder().setup_cqsize(2 * entries).build(entries),
    }
}

impl Worker {
    fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        // SAFETY: every buffer and address an entry points to is owned by a connection (boxed,
        // so it does not move) or by the worker, and a connection is only freed when its one
        // operation in flight has completed.
        while unsafe { self.ring.submission().push(&entry) }.is_err() {
            self.ring.submit()?;
        }
        Ok(())
    }

    fn accepted(&mut self, result: i32, flags: u32) -> io::Result<()> {
        if !cqueue::more(flags) {
            let accept = opcode::AcceptMulti::new(types::Fd(self.listener))
                .build()
                .user_data(ACCEPT);
            self.push(accept)?;
        }
        if result < 0 {
            return Ok(()); // e.g. EMFILE: the multishot accept goes on or was re-armed above
        }
        set_nodelay(result);
        let id = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        let Some(client) = self.adopt(result, 2 * id) else {
            self.free.push(id);
            return Ok(());
        };
        self.conns[id] = Some(Conn {
            client,
            backend: None,
            state: State::ClientRecv,
            from_client: vec![0; BUF_SIZE].into_boxed_slice(),
            client_len: 0,
            from_backend: vec![0; BUF_SIZE].into_boxed_slice(),
            backend_len: 0,
            message: 0,
            sent: 0,
        });
        self.recv_client(id)
    }

    fn completed(&mut self, id: usize, result: i32) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(id).and_then(Option::as_mut) else {
            return Ok(());
        };
        let ok = match conn.state {
            State::Connect => result == 0,
            _ => result > 0,
        };
        if !ok {
            // End of stream, an error or a refused connect: the spike closes both sides.
            self.close(id);
            return Ok(());
        }
        let n = result as usize;
        match conn.state {
            State::ClientRecv => {
                conn.client_len += n;
                self.request_in(id)
            }
            State::Connect => self.send_backend(id),
            State::BackendSend => {
                conn.sent += n;
                if conn.sent < conn.message {
                    return self.send_backend(id);
                }
                conn.from_client
                    .copy_within(conn.message..conn.client_len, 0);
                conn.client_len -= conn.message;
                self.recv_backend(id)
            }
            State::BackendRecv => {
                conn.backend_len += n;
                match frame(&conn.from_backend[..conn.backend_len]) {
                    Frame::Complete(len) => {
                        (conn.message, conn.sent) = (len, 0);
                        self.send_client(id)
                    }
                    Frame::Incomplete if conn.backend_len < BUF_SIZE => self.recv_backend(id),
                    _ => {
                        self.close(id);
                        Ok(())
                    }
                }
            }
            State::ClientSend => {
                conn.sent += n;
                if conn.sent < conn.message {
                    return self.send_client(id);
                }
                conn.from_backend
                    .copy_within(conn.message..conn.backend_len, 0);
                conn.backend_len -= conn.message;
                self.request_in(id)
            }
        }
    }

    /// After bytes from the client: forwards a whole request, or reads on.
    fn request_in(&mut self, id: usize) -> io::Result<()> {
        let Some(conn) = self.conns[id].as_mut() else {
            return Ok(());
        };
        match frame(&conn.from_client[..conn.client_len]) {
            Frame::Complete(len) => {
                (conn.message, conn.sent) = (len, 0);
                if conn.backend.is_some() {
                    return self.send_backend(id);
                }
                // SAFETY: plain socket(2); the result is checked.
                let fd = unsafe {
                    libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0)
                };
                if fd < 0 {
                    self.close(id);
                    return Ok(());
                }
                set_nodelay(fd);
                let Some(fd) = self.adopt(fd, 2 * id + 1) else {
                    self.close(id);
                    return Ok(());
                };
                let Some(conn) = self.conns[id].as_mut() else {
                    return Ok(());
                };
                conn.backend = Some(fd);
                conn.state = State::Connect;
                let addr = &self.backend as *const libc::sockaddr_in as *const libc::sockaddr;
                let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
                let entry = opcode::Connect::new(types::Fd(fd), addr, len).build();
                let entry = entry.flags(self.sqe_flags).user_data(id as u64);
                self.push(entry)
            }
            Frame::Incomplete if conn.client_len < BUF_SIZE => self.recv_client(id),
            _ => {
                self.close(id);
                Ok(())
            }
        }
    }

    fn recv_client(&mut self, id: usize) -> io::Result<()> {
        let Some(conn) = self.conns[id].as_mut() else {
            return Ok(());
        };
        conn.state = State::ClientRecv;
        let buf = &mut conn.from_client[conn.client_len..];
        let entry = opcode::Recv::new(types::Fd(conn.client), buf.as_mut_ptr(), buf.len() as u32);
        self.push(
            entry
                .ioprio(self.recv_ioprio)
                .build()
                .flags(self.sqe_flags)
                .user_data(id as u64),
        )
    }

    fn recv_backend(&mut self, id: usize) -> io::Result<()> {
        let Some(conn) = self.conns[id].as_mut() else {
            return Ok(());
        };
        let Some(fd) = conn.backend else {
            return Ok(());
        };
        conn.state = State::BackendRecv;
        let buf = &mut conn.from_backend[conn.backend_len..];
        let entry = opcode::Recv::new(types::Fd(fd), buf.as_mut_ptr(), buf.len() as u32);
        self.push(
            entry
                .ioprio(self.recv_ioprio)
                .build()
                .flags(self.sqe_flags)
                .user_data(id as u64),
        )
    }

    fn send_backend(&mut self, id: usize) -> io::Result<()> {
        let Some(conn) = self.conns[id].as_mut() else {
            return Ok(());
        };
        let Some(fd) = conn.backend else {
            return Ok(());
        };
        conn.state = State::BackendSend;
        let buf = &conn.from_client[conn.sent..conn.message];
        let entry = opcode::Send::new(types::Fd(fd), buf.as_ptr(), buf.len() as u32);
        self.push(
            entry
                .flags(libc::MSG_NOSIGNAL)
                .build()
                .flags(self.sqe_flags)
                .user_data(id as u64),
        )
    }

    fn send_client(&mut self, id: usize) -> io::Result<()> {
        let Some(conn) = self.conns[id].as_mut() else {
            return Ok(());
        };
        conn.state = State::ClientSend;
        let buf = &conn.from_backend[conn.sent..conn.message];
        let entry = opcode::Send::new(types::Fd(conn.client), buf.as_ptr(), buf.len() as u32);
        self.push(
            entry
                .flags(libc::MSG_NOSIGNAL)
                .build()
                .flags(self.sqe_flags)
                .user_data(id as u64),
        )
    }

    /// The handle SQEs name `fd` by: `fd` itself, or registered-file `slot` (then `fd` is
    /// closed, the ring holding its own reference). None when the slot cannot be had.
    fn adopt(&mut self, fd: RawFd, slot: usize) -> Option<RawFd> {
        if self.sqe_flags.is_empty() {
            return Some(fd);
        }
        let registered = slot < FILE_SLOTS as usize
            && self
                .ring
                .submitter()
                .register_files_update(slot as u32, &[fd])
                .is_ok();
        close_fd(fd);
        registered.then_some(slot as RawFd)
    }

    /// Frees a connection whose one operation has completed (so no SQE points into it).
    fn close(&mut self, id: usize) {
        if let Some(conn) = self.conns[id].take() {
            for handle in std::iter::once(conn.client).chain(conn.backend) {
                if self.sqe_flags.is_empty() {
                    close_fd(handle);
                } else {
                    let _ = self
                        .ring
                        .submitter()
                        .register_files_update(handle as u32, &[-1]);
                }
            }
            self.free.push(id);
        }
    }
}

fn close_fd(fd: RawFd) {
    // SAFETY: called once per descriptor this worker opened, when nothing uses it any more.
    unsafe { libc::close(fd) };
}

fn set_nodelay(fd: RawFd) {
    // SAFETY: `fd` is a socket this worker just opened or accepted and still holds.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    // A failure only costs latency.
    let _ = socket2::SockRef::from(&fd).set_tcp_nodelay(true);
}
