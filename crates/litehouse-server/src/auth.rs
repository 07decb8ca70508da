//! Tokens: the admin token, API tokens with scopes, and the check every request passes.
//!
//! API tokens live in a JSON file beside the database (mode 0600), holding only the SHA-256
//! of each token, so a leaked file does not leak tokens. A file rather than a table, because
//! the same code then serves SQLite and PostgreSQL, the CLI can manage tokens while the
//! server runs without opening the database, and the server looks at the file's modification
//! time on each check (re-reading it only when it changed) so a revoke takes effect at once. Every comparison is of equal-length digests in constant time.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use axum::http::{HeaderMap, header};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// What a token may do. Each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read collections and documents.
    Read,
    /// Also create, change and delete them.
    Write,
    /// Also the `/api/debug` routes.
    Admin,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        })
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(name: &str) -> Result<Scope, String> {
        match name {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            "admin" => Ok(Scope::Admin),
            _ => Err(format!("unknown scope {name:?}: use read, write or admin")),
        }
    }
}

/// One API token as stored: never the token itself, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    /// Public id, used to revoke.
    pub id: String,
    /// A label chosen at creation.
    pub name: String,
    /// What the token may do.
    pub scope: Scope,
    /// Lowercase hex SHA-256 of the token.
    pub hash: String,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
    /// For a device token: the one device id it may sync as (and it may do nothing else).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// What a presented token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    scope: Scope,
    device: Option<String>,
}

/// Most characters of a device id.
const MAX_DEVICE_ID: usize = 128;

/// Whether `device` can name a device: 1 to 128 of `A-Z a-z 0-9 - _ . :`.
pub fn valid_device_id(device: &str) -> bool {
    (1..=MAX_DEVICE_ID).contains(&device.len())
        && device
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TokenFileContents {
    tokens: Vec<TokenRecord>,
}

/// The API token file. Writes replace the file atomically with mode 0600.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use litehouse_server::{Scope, TokenFile};
/// let file = TokenFile::new(dir.path().join("tokens.json"));
/// let (record, token) = file.create("ci", Scope::Read)?;
/// assert_eq!(file.blocking_lookup(&token)?, Some(Scope::Read));
/// assert!(file.revoke(&record.id)?);
/// assert_eq!(file.blocking_lookup(&token)?, None);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct TokenFile {
    path: PathBuf,
    /// The parsed file as of its last modification time and length: a request carrying a
    /// token then costs one `stat`, not a read and a parse, until the file changes (a
    /// `litehouse token` command replaces it, which changes both).
    parsed: std::sync::Arc<std::sync::Mutex<Option<Parsed>>>,
}

#[derive(Debug)]
struct Parsed {
    modified: std::time::SystemTime,
    len: u64,
    contents: TokenFileContents,
}

impl TokenFile {
    /// The file at `path` (created on the first [`TokenFile::create`]).
    pub fn new(path: impl Into<PathBuf>) -> TokenFile {
        TokenFile {
            path: path.into(),
            parsed: std::sync::Arc::default(),
        }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates a token; returns its record and the token, which is shown only this once.
    ///
    /// # Errors
    /// The file cannot be read, parsed or written.
    pub fn create(&self, name: &str, scope: Scope) -> io::Result<(TokenRecord, String)> {
        self.create_record(name, scope, None)
    }

    /// Creates a device token: it may push and pull (`/api/sync/...`) as `device` only, and
    /// nothing else.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use litehouse_server::TokenFile;
    /// let file = TokenFile::new(dir.path().join("tokens.json"));
    /// let (record, _token) = file.create_device("till 3", "till-3")?;
    /// assert_eq!(record.device.as_deref(), Some("till-3"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// An invalid device id (see [`valid_device_id`]); the file cannot be read or written.
    pub fn create_device(&self, name: &str, device: &str) -> io::Result<(TokenRecord, String)> {
        if !valid_device_id(device) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{device:?} is not a device id: use 1 to 128 of A-Z a-z 0-9 - _ . :"),
            ));
        }
        self.create_record(name, Scope::Write, Some(device.to_owned()))
    }

    fn create_record(
        &self,
        name: &str,
        scope: Scope,
        device: Option<String>,
    ) -> io::Result<(TokenRecord, String)> {
        let mut contents = self.read()?;
        let token = generate_token();
        let record = TokenRecord {
            id: random_hex(6),
            name: name.to_owned(),
            scope,
            hash: hex(&digest(&token)),
            created_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs()),
            device,
        };
        contents.tokens.push(record.clone());
        self.write(&contents)?;
        Ok((record, token))
    }

    /// Every token record.
    ///
    /// # Errors
    /// The file cannot be read or parsed.
    pub fn list(&self) -> io::Result<Vec<TokenRecord>> {
        Ok(self.read()?.tokens)
    }

    /// Removes the token with this id; `false` when there is none.
    ///
    /// # Errors
    /// The file cannot be read, parsed or written.
    pub fn revoke(&self, id: &str) -> io::Result<bool> {
        let mut contents = self.read()?;
        let before = contents.tokens.len();
        contents.tokens.retain(|record| record.id != id);
        if contents.tokens.len() == before {
            return Ok(false);
        }
        self.write(&contents)?;
        Ok(true)
    }

    /// The scope of `token`, or `None` when no record matches (blocking file read).
    ///
    /// # Errors
    /// The file cannot be read or parsed.
    pub fn blocking_lookup(&self, token: &str) -> io::Result<Option<Scope>> {
        Ok(find_grant(&self.read()?, token).map(|grant| grant.scope))
    }

    /// Async twin of [`TokenFile::blocking_lookup`].
    ///
    /// # Errors
    /// As [`TokenFile::blocking_lookup`].
    pub async fn lookup(&self, token: &str) -> io::Result<Option<Scope>> {
        Ok(self.grant(token).await?.map(|grant| grant.scope))
    }

    /// What `token` grants, or `None` when no record matches.
    pub(crate) async fn grant(&self, token: &str) -> io::Result<Option<Grant>> {
        let metadata = match tokio::fs::metadata(&self.path).await {
            Ok(metadata) => metadata,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        let (modified, len) = (metadata.modified()?, metadata.len());
        {
            let parsed = self
                .parsed
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?;
            if let Some(parsed) = parsed.as_ref()
                && parsed.modified == modified
                && parsed.len == len
            {
                return Ok(find_grant(&parsed.contents, token));
            }
        }
        let contents = match tokio::fs::read(&self.path).await {
            Ok(bytes) => parse(&bytes)?,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        let grant = find_grant(&contents, token);
        if let Ok(mut parsed) = self.parsed.lock() {
            *parsed = Some(Parsed {
                modified,
                len,
                contents,
            });
        }
        Ok(grant)
    }

    fn read(&self) -> io::Result<TokenFileContents> {
        match std::fs::read(&self.path) {
            Ok(bytes) => parse(&bytes),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(TokenFileContents::default()),
            Err(err) => Err(err),
        }
    }

    fn write(&self, contents: &TokenFileContents) -> io::Result<()> {
        let text = serde_json::to_vec_pretty(contents).map_err(io::Error::other)?;
        let temporary = self.path.with_extension("tmp");
        write_private(&temporary, &text)?;
        std::fs::rename(&temporary, &self.path)
    }
}

fn parse(bytes: &[u8]) -> io::Result<TokenFileContents> {
    serde_json::from_slice(bytes).map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))
}

fn find_grant(contents: &TokenFileContents, token: &str) -> Option<Grant> {
    let presented = hex(&digest(token));
    // Check every record, so the time taken does not depend on which one matched.
    let mut found = None;
    for record in &contents.tokens {
        if bool::from(record.hash.as_bytes().ct_eq(presented.as_bytes())) {
            found = Some(Grant {
                scope: record.scope,
                device: record.device.clone(),
            });
        }
    }
    found
}

/// Reads the admin token from `path`, or generates one and writes it there with mode 0600.
///
/// # Errors
/// The file cannot be read or created, or it is empty.
pub fn load_or_create_admin_token(path: &Path) -> io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim().to_owned();
            if token.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is empty: delete it to generate a new token",
                        path.display()
                    ),
                ));
            }
            Ok(token)
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let token = generate_token();
            write_private(path, format!("{token}\n").as_bytes())?;
            Ok(token)
        }
        Err(err) => Err(err),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// A new random token: `lh_` and 64 hex digits (256 bits).
pub fn generate_token() -> String {
    format!("lh_{}", random_hex(32))
}

fn random_hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    let raw: Vec<u8> = (0..bytes).map(|_| rng.random()).collect();
    hex(&raw)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

/// The request check: who is asking, and may they.
#[derive(Debug, Clone)]
pub(crate) struct Auth {
    admin_digest: [u8; 32],
    token_file: Option<TokenFile>,
    require_token: bool,
}

impl Auth {
    pub(crate) fn new(
        admin_token: &str,
        token_file: Option<TokenFile>,
        require_token: bool,
    ) -> Auth {
        Auth {
            admin_digest: digest(admin_token),
            token_file,
            require_token,
        }
    }

    /// Succeeds when the request may use a route that needs `needed`. Data routes
    /// (`needed` below admin) are open without a token unless `require_token`; a token that
    /// is sent must be valid either way.
    /// On success, the device a device token authenticates (`None` for other tokens and
    /// for no token). A device token may only use the sync routes (`sync`).
    pub(crate) async fn check(
        &self,
        headers: &HeaderMap,
        needed: Scope,
        sync: bool,
    ) -> Result<Option<String>, ApiError> {
        let Some(token) = bearer(headers)? else {
            if needed == Scope::Admin {
                return Err(ApiError::unauthorized("this route needs the admin token"));
            }
            if self.require_token {
                return Err(ApiError::unauthorized("this server requires a token"));
            }
            return Ok(None);
        };
        let grant = if bool::from(digest(token).ct_eq(&self.admin_digest)) {
            Some(Grant {
                scope: Scope::Admin,
                device: None,
            })
        } else {
            match &self.token_file {
                Some(file) => file.grant(token).await.map_err(ApiError::internal)?,
                None => None,
            }
        };
        match grant {
            None => Err(ApiError::unauthorized("the token is not valid")),
            Some(Grant {
                device: Some(_), ..
            }) if !sync => Err(ApiError::forbidden(
                "a device token may only use /api/sync/push and /api/sync/pull",
            )),
            Some(Grant { scope, .. }) if scope < needed => Err(ApiError::forbidden(format!(
                "a {scope} token cannot do this; it needs {needed}"
            ))),
            Some(Grant { device, .. }) => Ok(device),
        }
    }
}

fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(|token| Some(token.trim()))
        .ok_or_else(|| ApiError::unauthorized("expected Authorization: Bearer TOKEN"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_token_is_created_private_and_reused() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("admin-token");
        let first = load_or_create_admin_token(&path)?;
        assert!(first.starts_with("lh_") && first.len() == 67);
        assert_eq!(load_or_create_admin_token(&path)?, first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path)?.permissions().mode() & 0o777,
                0o600
            );
        }
        Ok(())
    }

    #[test]
    fn token_file_stores_hashes_only() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = TokenFile::new(dir.path().join("tokens.json"));
        let (record, token) = file.create("ci", Scope::Write)?;
        let text = std::fs::read_to_string(file.path())?;
        assert!(!text.contains(&token));
        assert!(text.contains(&record.hash));
        assert_eq!(file.blocking_lookup(&token)?, Some(Scope::Write));
        assert_eq!(file.blocking_lookup("lh_wrong")?, None);
        assert_eq!(file.list()?.len(), 1);
        assert!(!file.revoke("nope")?);
        Ok(())
    }
}
