//! Reading the raw values: the environment over `.env`, and the checked readers (numbers in a
//! range, booleans, header-safe strings) that turn one variable into one value or a
//! `ConfigError` naming it. Knows no variable by name; `config` decides which are read.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The variables and their values, after merging `.env` under the real environment.
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// The process environment over `<dir>/.env` (when the file exists).
    pub fn load(dir: &Path) -> Result<Env, ConfigError> {
        let mut vars = HashMap::new();
        let dotenv = dir.join(".env");
        if let Ok(text) = std::fs::read_to_string(&dotenv) {
            vars = parse_dotenv(&text).map_err(|line| ConfigError::DotEnv {
                path: dotenv.clone(),
                line,
            })?;
        }
        for (key, value) in std::env::vars_os() {
            if let (Ok(key), Ok(value)) = (key.into_string(), value.into_string()) {
                vars.insert(key, value);
            }
        }
        Ok(Env { vars })
    }

    /// An environment from explicit pairs (tests and embedded use).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Env {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// The value of `name`; an empty value counts as unset, as in the old service.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    }
}

/// `KEY=VALUE` lines; `#` comments, blank lines, an optional `export ` prefix and matching
/// single or double quotes around the value. Returns the 1-based number of a bad line.
pub(super) fn parse_dotenv(text: &str) -> Result<HashMap<String, String>, usize> {
    let mut vars = HashMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(index + 1);
        };
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(index + 1);
        }
        let value = value.trim();
        let value = match value.as_bytes() {
            [b'"', .., b'"'] | [b'\'', .., b'\''] if value.len() >= 2 => &value[1..value.len() - 1],
            _ => value.split(" #").next().unwrap_or(value).trim_end(),
        };
        vars.insert(key.to_owned(), value.to_owned());
    }
    Ok(vars)
}

#[derive(Debug)]
pub enum ConfigError {
    Invalid {
        variable: String,
        value: String,
        accepted: String,
    },
    Missing {
        variable: &'static str,
        why: &'static str,
    },
    DotEnv {
        path: PathBuf,
        line: usize,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Invalid {
                variable,
                value,
                accepted,
            } => write!(f, "invalid {variable}={value:?}: expected {accepted}"),
            ConfigError::Missing { variable, why } => {
                write!(f, "{variable} is required ({why})")
            }
            ConfigError::DotEnv { path, line } => write!(
                f,
                "cannot parse {} line {line}: expected KEY=VALUE",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

pub(super) fn invalid(variable: &str, value: &str, accepted: &str) -> ConfigError {
    ConfigError::Invalid {
        variable: variable.to_owned(),
        value: value.to_owned(),
        accepted: accepted.to_owned(),
    }
}

pub(super) fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(super) fn seconds(
    env: &Env,
    name: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<Duration, ConfigError> {
    number(env, name, default, min, max).map(Duration::from_secs)
}

pub(super) fn millis(
    env: &Env,
    name: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<Duration, ConfigError> {
    number(env, name, default, min, max).map(Duration::from_millis)
}

pub(super) fn number<T>(env: &Env, name: &str, default: T, min: T, max: T) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + fmt::Display + Copy,
{
    let Some(text) = env.get(name) else {
        return Ok(default);
    };
    match text.parse::<T>() {
        Ok(value) if value >= min && value <= max => Ok(value),
        _ => Err(invalid(
            name,
            text,
            &format!("a number from {min} to {max}"),
        )),
    }
}

/// A value sent as a response header on every response: printable ASCII only, so it can
/// neither break the header block (CR, LF) nor be dropped as non-ASCII.
pub(super) fn header_value(env: &Env, name: &str, default: &str) -> Result<String, ConfigError> {
    let Some(text) = env.get(name) else {
        return Ok(default.to_owned());
    };
    if text
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        Ok(text.to_owned())
    } else {
        Err(invalid(
            name,
            text,
            "printable ASCII (a response header value)",
        ))
    }
}

pub(super) fn boolean(env: &Env, name: &str, default: bool) -> Result<bool, ConfigError> {
    let Some(text) = env.get(name) else {
        return Ok(default);
    };
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(name, text, "true or false")),
    }
}
