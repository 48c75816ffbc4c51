//! How the token goes on a request.

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::InvalidToken;

/// Puts a token on a request's headers.
///
/// Implemented by [`Bearer`] (the default), [`Cookie`], [`SetHeader`] and
/// any `Fn(&T, &mut HeaderMap) -> Result<(), InvalidToken>`.
///
/// # Examples
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use tokenflight::http::{Inject, InvalidToken};
///
/// let api_key = |token: &String, headers: &mut HeaderMap| {
///     let value = HeaderValue::from_str(token).map_err(|_| InvalidToken)?;
///     headers.insert("x-api-key", value);
///     Ok(())
/// };
/// let mut headers = HeaderMap::new();
/// api_key.inject(&"k".to_string(), &mut headers).unwrap();
/// assert_eq!(headers["x-api-key"], "k");
/// ```
pub trait Inject<T>: Clone + Send + Sync + 'static {
    /// Adds `token` to `headers`.
    ///
    /// # Errors
    ///
    /// [`InvalidToken`] when the token cannot be a header value; `headers`
    /// are then left as they were.
    fn inject(&self, token: &T, headers: &mut HeaderMap) -> Result<(), InvalidToken>;
}

impl<T, F> Inject<T> for F
where
    F: Fn(&T, &mut HeaderMap) -> Result<(), InvalidToken> + Clone + Send + Sync + 'static,
{
    fn inject(&self, token: &T, headers: &mut HeaderMap) -> Result<(), InvalidToken> {
        self(token, headers)
    }
}

/// A header value that holds a token: marked sensitive, so that HTTP/2's
/// header compression and loggers that honour the mark leave it out.
fn secret(value: impl Into<Vec<u8>>) -> Result<HeaderValue, InvalidToken> {
    let value: Vec<u8> = value.into();
    let mut value = HeaderValue::try_from(value).map_err(|_| InvalidToken)?;
    value.set_sensitive(true);
    Ok(value)
}

/// `Authorization: Bearer <token>`, replacing any `Authorization` header.
///
/// # Examples
///
/// ```
/// use tokenflight::http::{Bearer, Inject};
///
/// let mut headers = http::HeaderMap::new();
/// Bearer.inject(&"abc".to_string(), &mut headers).unwrap();
/// assert_eq!(headers["authorization"], "Bearer abc");
/// assert!(headers["authorization"].is_sensitive());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Bearer;

impl<T: AsRef<str>> Inject<T> for Bearer {
    fn inject(&self, token: &T, headers: &mut HeaderMap) -> Result<(), InvalidToken> {
        let value = secret(format!("Bearer {}", token.as_ref()))?;
        headers.insert(AUTHORIZATION, value);
        Ok(())
    }
}

/// A cookie `<name>=<token>`, added to the request's `Cookie` header (the
/// mini-program recipe's `Cookie: JSESSIONID=<token>`). Other cookies the
/// request carries are kept; one of the same name is replaced.
///
/// # Examples
///
/// ```
/// use tokenflight::http::{Cookie, Inject};
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("cookie", "lang=en; JSESSIONID=old".parse().unwrap());
/// Cookie::new("JSESSIONID").inject(&"abc".to_string(), &mut headers).unwrap();
/// assert_eq!(headers["cookie"], "lang=en; JSESSIONID=abc");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cookie {
    name: String,
}

impl Cookie {
    /// The cookie called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Cookie { name: name.into() }
    }
}

impl<T: AsRef<str>> Inject<T> for Cookie {
    fn inject(&self, token: &T, headers: &mut HeaderMap) -> Result<(), InvalidToken> {
        let prefix = format!("{}=", self.name);
        // Bytes, not `str`: a cookie value may hold any byte a header value
        // may (obs-text included), and every cookie but ours is kept as is.
        let mut value = Vec::new();
        let others = headers
            .get_all(COOKIE)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
            .map(<[u8]>::trim_ascii)
            .filter(|c| !c.is_empty() && !c.starts_with(prefix.as_bytes()));
        for cookie in others {
            value.extend_from_slice(cookie);
            value.extend_from_slice(b"; ");
        }
        value.extend_from_slice(prefix.as_bytes());
        value.extend_from_slice(token.as_ref().as_bytes());
        let value = secret(value)?;
        headers.insert(COOKIE, value);
        Ok(())
    }
}

/// `<name>: <prefix><token>`, replacing any header of that name.
///
/// # Examples
///
/// ```
/// use http::HeaderName;
/// use tokenflight::http::{Inject, SetHeader};
///
/// let mut headers = http::HeaderMap::new();
/// let inject = SetHeader::new(HeaderName::from_static("x-auth-token"), "");
/// inject.inject(&"abc".to_string(), &mut headers).unwrap();
/// assert_eq!(headers["x-auth-token"], "abc");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SetHeader {
    name: HeaderName,
    prefix: String,
}

impl SetHeader {
    /// The header `name`, its value `prefix` followed by the token.
    pub fn new(name: HeaderName, prefix: impl Into<String>) -> Self {
        SetHeader {
            name,
            prefix: prefix.into(),
        }
    }
}

impl<T: AsRef<str>> Inject<T> for SetHeader {
    fn inject(&self, token: &T, headers: &mut HeaderMap) -> Result<(), InvalidToken> {
        let value = secret(format!("{}{}", self.prefix, token.as_ref()))?;
        headers.insert(self.name.clone(), value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_token_leaves_the_headers_alone() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_static("a=1"));
        let bad = "x\r\ny".to_string();
        assert_eq!(
            Cookie::new("S").inject(&bad, &mut headers),
            Err(InvalidToken)
        );
        assert_eq!(Bearer.inject(&bad, &mut headers), Err(InvalidToken));
        assert_eq!(headers.len(), 1);
        assert_eq!(headers[COOKIE], "a=1");
    }

    #[test]
    fn cookies_with_bytes_beyond_ascii_are_kept() {
        let mut headers = HeaderMap::new();
        let theirs = HeaderValue::from_bytes(b"name=caf\xe9; S=old").unwrap();
        headers.insert(COOKIE, theirs);
        Cookie::new("S").inject(&"t", &mut headers).unwrap();
        assert_eq!(headers[COOKIE].as_bytes(), b"name=caf\xe9; S=t");
    }

    #[test]
    fn cookie_on_an_empty_request_is_alone() {
        let mut headers = HeaderMap::new();
        Cookie::new("JSESSIONID")
            .inject(&"t", &mut headers)
            .unwrap();
        assert_eq!(headers[COOKIE], "JSESSIONID=t");
        assert!(headers[COOKIE].is_sensitive());
    }
}
