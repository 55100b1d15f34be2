//! Errors: kernel results become `std::io::Error` here, once, at the boundary.
//!
//! Setup failures (no io_uring at all, too little locked memory) are turned
//! into messages that say what failed, the likely cause and the fix, because
//! they are what a user sees first on a locked-down host.

use std::io;

/// Converts a CQE result into a `Result`: negative values are `-errno`.
pub(crate) fn cqe_result(result: i32) -> io::Result<u32> {
    if result < 0 {
        Err(io::Error::from_raw_os_error(-result))
    } else {
        Ok(result as u32)
    }
}

/// Converts the return value of a libc call that reports failure with -1.
pub(crate) fn syscall(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Explains an `io_uring_setup` failure in plain words.
pub(crate) fn explain_setup(err: io::Error) -> io::Error {
    let disabled_sysctl =
        std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").ok().and_then(|s| s.trim().parse::<u32>().ok());
    let hint = match err.raw_os_error() {
        Some(libc::ENOSYS) => "this kernel has no io_uring (it needs Linux >= 6.1 built with CONFIG_IO_URING), \
             or a seccomp filter answers ENOSYS for io_uring_setup (Docker's default profile does): \
             run on a newer kernel, or allow the io_uring_setup, io_uring_enter and io_uring_register \
             system calls in the container's seccomp profile (percore's deploy/seccomp.sh writes Docker's \
             default profile with exactly those added: docker run --security-opt seccomp=FILE …)"
            .to_string(),
        Some(libc::EPERM) => match disabled_sysctl {
            Some(n @ 1..) => format!(
                "io_uring is disabled by the kernel.io_uring_disabled sysctl (it is {n}): \
                 set it to 0 with `sysctl -w kernel.io_uring_disabled=0`{}",
                if n == 1 { ", or add this user to the group named by kernel.io_uring_group" } else { "" }
            ),
            _ => "a security policy (seccomp in a container, or an LSM) refuses io_uring_setup: \
                  allow the io_uring_setup, io_uring_enter and io_uring_register system calls \
                  (for Docker: percore's deploy/seccomp.sh, then docker run --security-opt seccomp=FILE …)"
                .to_string(),
        },
        Some(libc::ENOMEM) => "the kernel could not allocate the ring: the locked-memory limit \
             (RLIMIT_MEMLOCK, `ulimit -l`) may be too low on this kernel; raise it, \
             or configure smaller rings"
            .to_string(),
        Some(libc::EINVAL) => "the kernel rejected the ring parameters (ring sizes must be powers \
             of two no larger than 32768 SQ / 65536 CQ entries); check the ring-size settings"
            .to_string(),
        Some(libc::EMFILE | libc::ENFILE) => "out of file descriptors: raise `ulimit -n`".to_string(),
        _ => "unexpected error from io_uring_setup".to_string(),
    };
    io::Error::new(err.kind(), format!("cannot create an io_uring instance: {err}; {hint}"))
}

/// Explains a failure to register a provided-buffer ring.
pub(crate) fn explain_buf_ring(err: io::Error, bytes: usize) -> io::Error {
    let hint = match err.raw_os_error() {
        Some(libc::ENOMEM) => format!(
            "the buffer ring ({bytes} bytes) counts against the locked-memory limit \
             (RLIMIT_MEMLOCK, `ulimit -l`) on this kernel: raise the limit or configure fewer or \
             smaller receive buffers"
        ),
        Some(libc::EINVAL) => "the kernel has no provided-buffer rings (needs Linux >= 5.19)".to_string(),
        Some(libc::EEXIST) => "that buffer group id is already registered on this ring".to_string(),
        _ => "unexpected error".to_string(),
    };
    io::Error::new(err.kind(), format!("cannot register a provided-buffer ring: {err}; {hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_results_become_errno() {
        let err = cqe_result(-libc::ENOSPC).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(cqe_result(42).unwrap(), 42);
    }

    #[test]
    fn setup_errors_say_what_to_do() {
        let msg = explain_setup(io::Error::from_raw_os_error(libc::ENOSYS)).to_string();
        assert!(msg.contains("seccomp"), "{msg}");
        assert!(msg.contains("6.1"), "{msg}");
        let msg = explain_setup(io::Error::from_raw_os_error(libc::EPERM)).to_string();
        assert!(msg.contains("io_uring"), "{msg}");
        let msg = explain_buf_ring(io::Error::from_raw_os_error(libc::ENOMEM), 4096).to_string();
        assert!(msg.contains("RLIMIT_MEMLOCK"), "{msg}");
    }
}
