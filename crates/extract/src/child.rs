//! The child side of [`extract_isolated`](crate::extract_isolated).

use std::io::{self, BufRead, Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;

use rlimit::Resource;

use crate::error::{ExtractError, Oversize};
use crate::wire::{MAX_HEADER_BYTES, Request, Response};
use crate::{Extracted, Limits, extract_with_limits};

/// The body of the extraction child process: call it from `main` when the binary is started as
/// the child (the service runs itself as `dokko-ingest extract-child`) and return its exit code.
///
/// It reads the request the parent writes on stdin (the file name and the [`Limits`], then the
/// file's bytes), limits its own address space (`RLIMIT_AS` = `max_memory_bytes`) and CPU time
/// (`RLIMIT_CPU` = the timeout rounded up, plus a second), turns core dumps off, extracts with a
/// panic caught and reported as [`ExtractError::Crashed`], writes the result on stdout and
/// exits 0. It exits non-zero only when the parent broke the protocol or a limit cannot be set;
/// it never runs an extraction without its limits. Unix only.
pub fn child_main() -> ExitCode {
    match serve(&mut io::stdin().lock(), &mut io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // stderr is read by the parent; this line is its reason.
            let _ = writeln!(io::stderr(), "extract-child: {message}");
            ExitCode::from(2)
        }
    }
}

fn serve(input: &mut impl BufRead, output: &mut impl Write) -> Result<(), String> {
    let mut header = Vec::new();
    input
        .take(MAX_HEADER_BYTES as u64)
        .read_until(b'\n', &mut header)
        .map_err(|e| format!("cannot read the request: {e}"))?;
    let request: Request = serde_json::from_slice(&header).map_err(|e| format!("malformed request: {e}"))?;
    set_limits(&request.limits)?;

    let result = read_body(input, request.limits.max_input_bytes).and_then(|bytes| {
        panic::catch_unwind(AssertUnwindSafe(|| extract_with_limits(&request.name, &bytes, &request.limits)))
            .unwrap_or_else(|payload| Err(ExtractError::Crashed(panic_reason(payload.as_ref()))))
    });
    write_response(output, result).map_err(|e| format!("cannot write the response: {e}"))
}

/// Applies `limits` to this process. A limit can only be lowered, so each is capped at the
/// current hard limit.
fn set_limits(limits: &Limits) -> Result<(), String> {
    let cpu_seconds =
        limits.timeout.as_secs().saturating_add(u64::from(limits.timeout.subsec_nanos() > 0)).saturating_add(1);
    // SIGXCPU at the soft limit, SIGKILL a second later if that is ignored.
    let wanted = [
        (Resource::AS, limits.max_memory_bytes, limits.max_memory_bytes),
        (Resource::CPU, cpu_seconds, cpu_seconds.saturating_add(1)),
        (Resource::CORE, 0, 0),
    ];
    for (resource, soft, hard) in wanted {
        let (_, current_hard) = resource.get().map_err(|e| format!("cannot read {}: {e}", resource.as_name()))?;
        let hard = hard.min(current_hard);
        resource.set(soft.min(hard), hard).map_err(|e| format!("cannot set {}: {e}", resource.as_name()))?;
    }
    Ok(())
}

fn read_body(input: &mut impl Read, max_input_bytes: u64) -> Result<Vec<u8>, ExtractError> {
    let mut bytes = Vec::new();
    input
        .take(max_input_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| ExtractError::Io(format!("cannot read the file from the parent: {e}")))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > max_input_bytes {
        return Err(ExtractError::TooLarge { what: Oversize::Input, limit: max_input_bytes });
    }
    Ok(bytes)
}

fn write_response(output: &mut impl Write, result: Result<Extracted, ExtractError>) -> io::Result<()> {
    let (response, text) = match result {
        Ok(extracted) => (
            Response::Ok { format: extracted.format, title: extracted.title, text_bytes: extracted.text.len() as u64 },
            extracted.text,
        ),
        Err(error) => (Response::Err(error), String::new()),
    };
    let mut header = serde_json::to_vec(&response).map_err(io::Error::other)?;
    header.push(b'\n');
    output.write_all(&header)?;
    output.write_all(text.as_bytes())?;
    output.flush()
}

/// `panic: <message>` from a caught panic's payload.
fn panic_reason(payload: &(dyn std::any::Any + Send)) -> String {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".to_owned());
    format!("panic: {}", message.chars().take(300).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(name: &str, limits: &Limits, body: &[u8]) -> Vec<u8> {
        let mut bytes =
            serde_json::to_vec(&Request { name: name.to_owned(), limits: limits.clone() }).expect("serialises");
        bytes.push(b'\n');
        bytes.extend_from_slice(body);
        bytes
    }

    #[test]
    fn responds_with_a_header_line_then_the_text() {
        // No `serve` here: it would set this test process's own limits.
        let mut out = Vec::new();
        let extracted = Extracted { format: crate::Format::Text, title: None, text: "héllo".to_owned() };
        write_response(&mut out, Ok(extracted)).expect("writes");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(text, "{\"ok\":{\"format\":\"text\",\"title\":null,\"text_bytes\":6}}\nhéllo");
    }

    #[test]
    fn body_over_the_input_limit_is_refused() {
        let limits = Limits { max_input_bytes: 3, ..Limits::default() };
        let raw = request("a.txt", &limits, b"abcd");
        let mut input = &raw[..];
        let mut header = Vec::new();
        input.read_until(b'\n', &mut header).expect("reads");
        assert!(matches!(
            read_body(&mut input, limits.max_input_bytes),
            Err(ExtractError::TooLarge { what: Oversize::Input, limit: 3 })
        ));
    }

    #[test]
    fn panic_payloads_become_reasons() {
        let payload = panic::catch_unwind(|| panic!("boom {}", 1)).expect_err("panics");
        assert_eq!(panic_reason(payload.as_ref()), "panic: boom 1");
    }
}
