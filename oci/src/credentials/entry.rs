//! `auths` entries of `config.json`, as Docker writes and reads them.

use super::*;

/// The `auths` entry Docker writes for `cred`.
pub(super) fn auths_entry(cred: &Credential) -> Map<String, Value> {
    let mut entry = Map::new();
    match &cred.secret {
        Secret::Password(password) => {
            let auth = BASE64.encode(format!("{}:{password}", cred.username));
            entry.insert("auth".to_owned(), Value::String(auth));
        }
        Secret::IdentityToken(token) => {
            if !cred.username.is_empty() {
                let auth = BASE64.encode(format!("{}:", cred.username));
                entry.insert("auth".to_owned(), Value::String(auth));
            }
            entry.insert("identitytoken".to_owned(), Value::String(token.clone()));
        }
    }
    entry
}

/// Reads one `auths` entry. `auth` (base64 `user:password`) wins over
/// `username`/`password`; an `identitytoken` wins over the password. An
/// entry with none of them (Docker writes `{}` when a helper holds the
/// credential) is `None`.
pub(super) fn decode_entry(path: &Path, key: &str, entry: &Value) -> Result<Option<Credential>> {
    let Value::Object(fields) = entry else {
        return Err(invalid(
            path,
            format!("`auths` entry {key:?} is not an object"),
        ));
    };
    let field = |name: &str| -> Result<&str> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(""),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(invalid(
                path,
                format!("`{name}` of `auths` entry {key:?} is not a string"),
            )),
        }
    };
    let auth = field("auth")?.trim();
    let token = field("identitytoken")?;
    let (username, password) = if auth.is_empty() {
        (field("username")?.to_owned(), field("password")?.to_owned())
    } else {
        let decoded = BASE64
            .decode(auth)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                invalid(
                    path,
                    format!("`auth` of `auths` entry {key:?} is not base64-encoded UTF-8"),
                )
            })?;
        let (user, password) = decoded.split_once(':').ok_or_else(|| {
            invalid(
                path,
                format!("`auth` of `auths` entry {key:?} is not of the form user:password"),
            )
        })?;
        (user.to_owned(), password.trim_end_matches('\0').to_owned())
    };
    if !token.is_empty() {
        return Ok(Some(Credential {
            username,
            secret: Secret::IdentityToken(token.to_owned()),
        }));
    }
    if username.is_empty() && password.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credential {
        username,
        secret: Secret::Password(password),
    }))
}
