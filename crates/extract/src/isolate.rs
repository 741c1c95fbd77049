//! The parent side: run one extraction in a child process and turn however it ended into a
//! result.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStderr, ChildStdin, ChildStdout, Command};

use crate::error::{ExtractError, Oversize};
use crate::wire::{MAX_HEADER_BYTES, Request, Response, short_name};
use crate::{Extracted, Limits};

/// How much of the child's stderr is kept to explain a crash (the end of it).
const STDERR_TAIL_BYTES: usize = 16 * 1024;

/// Extracts text from `bytes` in a child process, so that a parser that panics, loops, recurses
/// too deep or allocates without bound costs one file instead of the service.
///
/// Runs `program args…` (a binary whose `main` calls [`child_main`](crate::child_main) for those
/// arguments) with an empty environment, sends it `name`, `limits` and `bytes` on stdin, and reads
/// the result from stdout. The child limits its own address space and CPU time from `limits`;
/// this side enforces [`Limits::timeout`] on the whole exchange (the child is killed and reaped
/// when it runs out), refuses a text over [`Limits::max_output_bytes`] without reading it, and
/// reads stdout and stderr with bounds, so a misbehaving child cannot make the parent block or
/// grow. The child is killed if this future is dropped.
///
/// How the child ended maps to the error: a panic is [`ExtractError::Crashed`] with the panic
/// message; running out of address space is [`ExtractError::OutOfMemory`]; the deadline or the
/// CPU limit is [`ExtractError::Timeout`]; another signal or exit is `Crashed`; failing to start
/// it is [`ExtractError::Io`]. Errors the extraction itself reports (unsupported, corrupt, too
/// large) come back as they are. Unix only.
pub async fn extract_isolated(
    program: &Path,
    args: &[&str],
    name: &str,
    bytes: &[u8],
    limits: &Limits,
) -> Result<Extracted, ExtractError> {
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limits.max_input_bytes {
        return Err(ExtractError::TooLarge { what: Oversize::Input, limit: limits.max_input_bytes });
    }
    let mut request = serde_json::to_vec(&Request { name: short_name(name).to_owned(), limits: limits.clone() })
        .map_err(|e| ExtractError::Io(format!("cannot encode the request: {e}")))?;
    request.push(b'\n');

    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ExtractError::Io(format!("cannot start {}: {e}", program.display())))?;
    let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(ExtractError::Io("the child's pipes are missing".to_owned()));
    };

    let exchange = async {
        let mut feed = Box::pin(feed(stdin, &request, bytes));
        let mut reply = Box::pin(read_reply(stdout, limits));
        // The reply decides: a child may answer (an error, say) without reading all its input,
        // and one that never reads must not block the parent on a full pipe.
        let reply = tokio::select! {
            reply = &mut reply => reply,
            () = &mut feed => reply.await,
        };
        drop(feed);
        if !matches!(reply, Reply::Closed(_)) {
            // Answered, or talking nonsense: either way nothing more is wanted from it.
            let _ = child.start_kill();
        }
        (reply, child.wait().await)
    };
    let outcome = tokio::time::timeout(limits.timeout, async { tokio::join!(exchange, stderr_tail(stderr)) }).await;

    match outcome {
        Ok(((reply, status), stderr)) => {
            let status = status.map_err(|e| ExtractError::Io(format!("cannot wait for the child: {e}")))?;
            conclude(reply, status, &stderr, limits)
        }
        Err(_elapsed) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            Err(ExtractError::Timeout(limits.timeout))
        }
    }
}

/// Writes the request and the file, then closes stdin. Write errors are left to the reply (a
/// child that exits early closes the pipe; its exit says why).
async fn feed(mut stdin: ChildStdin, request: &[u8], bytes: &[u8]) {
    if stdin.write_all(request).await.is_ok() && stdin.write_all(bytes).await.is_ok() {
        let _ = stdin.shutdown().await;
    }
}

/// What came back on stdout.
#[derive(Debug)]
enum Reply {
    /// A complete response.
    Answer(Result<Extracted, ExtractError>),
    /// Stdout ended before a complete response: the child died or exited; its status says why.
    Closed(String),
    /// Something that is not a response.
    Garbled(String),
}

async fn read_reply(stdout: ChildStdout, limits: &Limits) -> Reply {
    let mut stdout = BufReader::new(stdout);
    let mut header = Vec::new();
    let limit = MAX_HEADER_BYTES as u64;
    if let Err(e) = (&mut stdout).take(limit).read_until(b'\n', &mut header).await {
        return Reply::Closed(format!("reading its output failed: {e}"));
    }
    if header.last() != Some(&b'\n') {
        return if header.len() >= MAX_HEADER_BYTES {
            Reply::Garbled("its output does not start with a response header".to_owned())
        } else {
            Reply::Closed("it gave no response".to_owned())
        };
    }
    let response: Response = match serde_json::from_slice(&header) {
        Ok(response) => response,
        Err(e) => return Reply::Garbled(format!("malformed response header: {e}")),
    };
    let (format, title, text_bytes) = match response {
        Response::Err(error) => return Reply::Answer(Err(error)),
        Response::Ok { format, title, text_bytes } => (format, title, text_bytes),
    };
    if text_bytes > u64::try_from(limits.max_output_bytes).unwrap_or(u64::MAX) {
        return Reply::Answer(Err(ExtractError::TooLarge {
            what: Oversize::Output,
            limit: u64::try_from(limits.max_output_bytes).unwrap_or(u64::MAX),
        }));
    }
    // Bounded by the output limit just checked.
    let mut text = Vec::with_capacity(usize::try_from(text_bytes).unwrap_or(0));
    if let Err(e) = (&mut stdout).take(text_bytes).read_to_end(&mut text).await {
        return Reply::Closed(format!("reading its output failed: {e}"));
    }
    if (text.len() as u64) < text_bytes {
        return Reply::Closed("its response was cut short".to_owned());
    }
    match String::from_utf8(text) {
        Ok(text) => Reply::Answer(Ok(Extracted { format, title, text })),
        Err(_) => Reply::Garbled("its text is not UTF-8".to_owned()),
    }
}

/// Reads stderr to the end, keeping its last [`STDERR_TAIL_BYTES`].
async fn stderr_tail(stderr: ChildStderr) -> String {
    let mut tail = Vec::new();
    let mut stderr = stderr;
    let mut chunk = [0u8; 4096];
    while let Some(n) = read_some(&mut stderr, &mut chunk).await {
        tail.extend_from_slice(&chunk[..n]);
        if tail.len() > 2 * STDERR_TAIL_BYTES {
            tail.drain(..tail.len() - STDERR_TAIL_BYTES);
        }
    }
    let start = tail.len().saturating_sub(STDERR_TAIL_BYTES);
    String::from_utf8_lossy(&tail[start..]).into_owned()
}

async fn read_some(reader: &mut (impl AsyncRead + Unpin), buf: &mut [u8]) -> Option<usize> {
    match reader.read(buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}

/// The result of a finished child: its answer if it gave one, otherwise why it died.
fn conclude(reply: Reply, status: ExitStatus, stderr: &str, limits: &Limits) -> Result<Extracted, ExtractError> {
    let reason = match reply {
        Reply::Answer(result) => return result,
        Reply::Garbled(reason) => return Err(ExtractError::Crashed(reason)),
        Reply::Closed(reason) => reason,
    };
    // Rust's allocation-failure handler prints this, then aborts.
    if stderr.contains("memory allocation of") {
        return Err(ExtractError::OutOfMemory { limit: limits.max_memory_bytes });
    }
    if stderr.contains("has overflowed its stack") {
        return Err(ExtractError::Crashed("stack overflow".to_owned()));
    }
    // A panic that escaped `catch_unwind` (a build with `panic = "abort"`).
    if let Some(message) = panic_message(stderr) {
        return Err(ExtractError::Crashed(format!("panic: {message}")));
    }
    if let Some(signal) = status.signal() {
        return Err(match signal {
            SIGXCPU => ExtractError::Timeout(limits.timeout),
            SIGKILL => ExtractError::Crashed("killed by SIGKILL (the system may have run out of memory)".to_owned()),
            signal => ExtractError::Crashed(format!("killed by {}", signal_name(signal))),
        });
    }
    let last_line = stderr.lines().rev().find(|l| !l.trim().is_empty());
    Err(ExtractError::Crashed(match (status.code(), last_line) {
        (Some(0), _) => reason,
        (Some(code), Some(line)) => format!("exited with status {code}: {}", line.trim()),
        (Some(code), None) => format!("exited with status {code}"),
        (None, _) => reason,
    }))
}

const SIGKILL: i32 = 9;
const SIGXCPU: i32 = 24;

fn signal_name(signal: i32) -> String {
    let name = match signal {
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        25 => "SIGXFSZ",
        31 => "SIGSYS",
        _ => return format!("signal {signal}"),
    };
    name.to_owned()
}

/// The message of a panic report on stderr (`thread 'main' panicked at file:line:col:` then the
/// message on the next line).
fn panic_message(stderr: &str) -> Option<String> {
    let mut lines = stderr.lines();
    lines.find(|l| l.contains("panicked at"))?;
    lines.next().map(|l| l.trim().chars().take(300).collect::<String>()).filter(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    fn signalled(signal: i32) -> ExitStatus {
        ExitStatus::from_raw(signal)
    }

    fn closed() -> Reply {
        Reply::Closed("it gave no response".to_owned())
    }

    #[test]
    fn deaths_map_to_reasons() {
        let limits = Limits::default();
        let oom = "memory allocation of 1073741824 bytes failed\n";
        assert!(matches!(conclude(closed(), signalled(6), oom, &limits), Err(ExtractError::OutOfMemory { .. })));
        assert!(matches!(conclude(closed(), signalled(SIGXCPU), "", &limits), Err(ExtractError::Timeout(_))));
        let panicked = "thread 'main' panicked at src/lib.rs:1:2:\nindex out of bounds\nnote: …";
        assert_eq!(
            conclude(closed(), signalled(6), panicked, &limits),
            Err(ExtractError::Crashed("panic: index out of bounds".to_owned()))
        );
        assert_eq!(
            conclude(closed(), signalled(11), "", &limits),
            Err(ExtractError::Crashed("killed by SIGSEGV".to_owned()))
        );
        assert_eq!(
            conclude(closed(), exited(2), "extract-child: malformed request\n", &limits),
            Err(ExtractError::Crashed("exited with status 2: extract-child: malformed request".to_owned()))
        );
        assert_eq!(
            conclude(closed(), exited(0), "", &limits),
            Err(ExtractError::Crashed("it gave no response".to_owned()))
        );
    }
}
