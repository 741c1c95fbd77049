//! The extraction child on its own, for this crate's tests and for trying files by hand:
//! `printf '{"name":"a.md","limits":…}\n' | cat - a.md | extract-child`. Services embed
//! [`extract::child_main`] in their own binary instead.

fn main() -> std::process::ExitCode {
    extract::child_main()
}
