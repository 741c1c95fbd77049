//! The `--name value` flags of the services' operator commands (`<service> admin …`).

/// Parsed `--name value` (or `--name=value`) pairs; a repeated flag keeps its last value.
pub struct Flags {
    pairs: Vec<(String, String)>,
    usage: &'static str,
}

impl Flags {
    /// Parses `args`; `usage` is appended to every error.
    pub fn parse(args: &[String], usage: &'static str) -> anyhow::Result<Self> {
        let mut pairs = Vec::new();
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            let Some(name) = arg.strip_prefix("--") else { anyhow::bail!("unexpected argument {arg:?}\n{usage}") };
            let (name, value) = match name.split_once('=') {
                Some((name, value)) => (name.to_owned(), value.to_owned()),
                None => {
                    let value = rest.next().ok_or_else(|| anyhow::anyhow!("--{name} needs a value\n{usage}"))?;
                    (name.to_owned(), value.clone())
                }
            };
            pairs.push((name, value));
        }
        Ok(Self { pairs, usage })
    }

    pub fn optional(&self, name: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn required(&self, name: &str) -> anyhow::Result<&str> {
        self.optional(name).ok_or_else(|| anyhow::anyhow!("--{name} is required\n{}", self.usage))
    }
}

#[cfg(test)]
mod tests {
    use super::Flags;

    #[test]
    fn flags_parse_both_forms_and_explain_what_is_missing() {
        let args: Vec<String> = ["--name", "acme", "--role=member", "--name", "globex"].map(String::from).to_vec();
        let flags = Flags::parse(&args, "usage: x").expect("parses");
        assert_eq!(flags.required("name").ok(), Some("globex"));
        assert_eq!(flags.optional("role"), Some("member"));
        assert!(flags.required("email").err().is_some_and(|e| e.to_string().contains("--email is required")));
        assert!(Flags::parse(&["stray".to_owned()], "u").is_err());
        assert!(Flags::parse(&["--name".to_owned()], "u").is_err());
    }
}
